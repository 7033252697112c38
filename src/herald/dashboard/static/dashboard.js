// Optional comforts; every page works without them (without JavaScript, a live page
// reloads itself every 5 s through <noscript>).
//
// A page with data-refresh follows the live view (live.py): an EventSource on
// /dashboard/stream says what changed, and the page fetches itself again and swaps
// in its parts marked data-live (each has an id), so nothing reloads and nothing
// typed or scrolled is lost. A part with data-watch follows only the notification
// it names. Where the stream cannot be had (refused, no EventSource), the page
// reloads every 5 s as before. The "Live" box switches all of it off. A form with
// data-confirm asks first.
(function () {
  "use strict";
  var body = document.body, box = document.getElementById("auto-refresh");
  var url = body.dataset.refresh, state = document.getElementById("live-state");
  var MIN_GAP = 1000, CHARTS_EVERY = 10000;

  document.addEventListener("submit", function (event) {
    var ask = event.target.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) event.preventDefault();
  });
  if (!box || !url) return;

  var source = null, reloader = null, ticker = null, busy = false, again = false, last = 0;
  var deferred = false;
  box.parentElement.hidden = false;
  box.checked = localStorage.getItem("herald-refresh") !== "off";
  box.onchange = function () {
    localStorage.setItem("herald-refresh", box.checked ? "on" : "off");
    if (box.checked) start(); else stop();
  };

  function say(text) { if (state) state.textContent = text ? "(" + text + ")" : ""; }

  function typing() {
    var active = document.activeElement;
    return active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active !== box;
  }

  // The old way: reload the page (at its URL without a one-off notice) every 5 s.
  function reloadEvery5s() {
    if (source) { source.close(); source = null; }
    if (ticker) { clearInterval(ticker); ticker = null; }
    if (reloader) return;
    say("reloading every 5 s");
    reloader = setInterval(function () {
      if (!typing() && !String(window.getSelection())) location.replace(url);
    }, 5000);
  }

  // Fetch this page again and swap in its live parts; at most one fetch at a time and
  // one a second, and none while the tab is hidden (it catches up when shown).
  function refresh() {
    if (busy || document.hidden || Date.now() - last < MIN_GAP) {
      again = true;
      if (!busy && !document.hidden) setTimeout(flush, MIN_GAP - (Date.now() - last));
      return;
    }
    busy = true; again = false; last = Date.now();
    fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}}).then(function (answer) {
      // Sent to sign in (the session ended): go there. A passing error: keep what is shown.
      if (answer.redirected) { location.replace(url); return null; }
      return answer.ok ? answer.text() : null;
    }).then(function (html) {
      if (html !== null) swap(new DOMParser().parseFromString(html, "text/html"));
    }).catch(function () { /* the stream's own error handling decides */ }).then(function () {
      busy = false;
      if (again) setTimeout(flush, MIN_GAP);
    });
  }

  function flush() { if (again) refresh(); }

  function swap(fresh) {
    document.querySelectorAll("[data-live][id]").forEach(function (part) {
      var next = fresh.getElementById(part.id);
      if (!next) return;
      if (part.contains(document.activeElement)) {
        deferred = true;  // not under the operator's cursor: when the focus leaves
        return;
      }
      part.replaceWith(document.importNode(next, true));
    });
    body.dataset.updated = String(Date.now());
  }

  function watched() {
    return Array.prototype.map.call(document.querySelectorAll("[data-watch]"), function (el) {
      return el.dataset.watch;
    });
  }

  function onChange(event) {
    var news = JSON.parse(event.data), ids = watched();
    if (news.more || !ids.length || ids.some(function (id) { return news.ids.indexOf(id) >= 0; })) {
      refresh();
    }
  }

  function onQueues(event) {
    var shown = document.querySelector("[data-paused]");
    if (!shown) return;
    var paused = JSON.parse(event.data).paused.slice().sort().join(",");
    var mine = shown.dataset.paused.split(",").filter(Boolean).sort().join(",");
    if (paused !== mine) refresh();
  }

  function start() {
    if (!window.EventSource) { reloadEvery5s(); return; }
    if (reloader) { clearInterval(reloader); reloader = null; }
    var stream = body.dataset.stream;
    source = new EventSource("/dashboard/stream" + (stream ? "?after=" + encodeURIComponent(stream) : ""));
    source.addEventListener("open", function () { say("live"); body.dataset.live = "open"; });
    source.addEventListener("change", onChange);
    source.addEventListener("queues", onQueues);
    source.addEventListener("error", function () {
      // CONNECTING: the browser reopens it by itself (the stream ended, or the server
      // restarts). CLOSED: refused for good (429, signed out): reload every 5 s instead.
      if (source && source.readyState === EventSource.CLOSED) reloadEvery5s();
      else say("reconnecting");
    });
    if (document.getElementById("charts")) ticker = setInterval(refresh, CHARTS_EVERY);
  }

  function stop() {
    if (source) { source.close(); source = null; }
    if (reloader) { clearInterval(reloader); reloader = null; }
    if (ticker) { clearInterval(ticker); ticker = null; }
    say("");
  }

  document.addEventListener("visibilitychange", flush);
  document.addEventListener("focusout", function () {
    if (deferred) { deferred = false; again = true; setTimeout(flush, 0); }
  });
  if (box.checked) start();
})();
