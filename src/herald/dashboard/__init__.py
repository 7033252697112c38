"""Herald's operator dashboard: HTML pages at ``/dashboard``, kept out of the OpenAPI document.

``routes.py`` holds the pages and forms, ``pages.py`` the rendering and error
pages, ``csrf.py`` the rules that decide which form posts are honoured,
``login.py`` signing in and out, ``sessions.py`` the session cookie;
``templates/`` and ``static/`` are served from the package, so the dashboard
needs nothing from the network.
"""
