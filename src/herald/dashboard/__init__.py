"""Herald's operator dashboard: HTML pages at ``/dashboard``, kept out of the OpenAPI document.

``routes.py`` holds the pages and forms, ``pages.py`` the rendering and error
pages, ``csrf.py`` the rules that decide which form posts are honoured,
``login.py`` signing in and out, ``sessions.py`` the session cookie,
``create.py`` the create form, ``live.py`` the live view's event stream and
``charts.py`` the overview's charts;
``templates/`` and ``static/`` are served from the package, so the dashboard
needs nothing from the network.
"""
