// Optional comforts; every page works without them. A page with data-refresh reloads
// every 5 s (to that URL, so a one-off notice is not repeated) unless switched off or
// the operator is typing; a form with data-confirm asks first.
(function () {
  var box = document.getElementById("auto-refresh"), url = document.body.dataset.refresh;
  if (box && url) {
    box.parentElement.hidden = false;
    box.checked = localStorage.getItem("herald-refresh") !== "off";
    box.onchange = function () { localStorage.setItem("herald-refresh", box.checked ? "on" : "off"); };
    setInterval(function () {
      var typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName) && document.activeElement !== box;
      if (box.checked && !typing && !String(window.getSelection())) location.replace(url);
    }, 5000);
  }
  document.addEventListener("submit", function (event) {
    var ask = event.target.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) event.preventDefault();
  });
})();
