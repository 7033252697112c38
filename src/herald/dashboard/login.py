"""Signing in to the dashboard and out of it: the login page, its form, lockouts, logout.

A login is checked in this order, cheapest refusal first, and no answer tells
whether an account exists:

1. The form comes from this dashboard (``csrf.check``) and echoes the token of
   the cookie set with the page (``Sessions.login_challenge``): without it,
   another site could sign a browser in to an account of the attacker's.
2. The client address has request budget left: the same per-address budget
   the guard spends for callers guessing API keys (``HERALD_ANONYMOUS_RATE_LIMIT``).
3. Email and password are within bounds (scrypt's cost must not grow with input).
4. Neither the account nor the client address is locked. Five failed logins in
   15 minutes lock either for 15 minutes (``store.access``): the account lock
   stops many addresses guessing one password, the address lock stops one
   address trying one password on many accounts. Locked: 429 with
   ``Retry-After``, and the password is not even checked.
5. The password, hashed with scrypt in a thread so the event loop goes on
   serving, against the user's hash, or against ``DUMMY_HASH`` when there is no
   such user so a wrong email takes as long as a wrong password. A disabled
   user fails exactly like a wrong password.

A success clears the account's count (never the address's: one valid account
must not buy a password sprayer fresh tries), opens a session, sets its cookie
(``HttpOnly``, ``SameSite=Lax``, ``Secure`` over https) and redirects to
``next`` when that is a dashboard page.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from ..access import DUMMY_HASH, MAX_PASSWORD, Scope, parse_rate, verify_password
from ..api.authz import requires
from ..store.access import LOCK_AFTER, LOCK_SECONDS
from . import csrf
from .pages import LOGIN, PREFIX, PageRoute, read_form, render, safe_next
from .sessions import COOKIE, LOGIN_COOKIE

log = structlog.get_logger("herald.dashboard")

router = APIRouter(include_in_schema=False, route_class=PageRoute)

#: RFC 5321's longest forward path, less its angle brackets.
MAX_EMAIL = 254
LOGIN_TOKEN_SECONDS = 3600
FAILED = "That email and password do not match an account that may sign in."
LOCKED = "Too many sign-in attempts: try again in {minutes} minute{s}."
STALE = "This sign-in form had expired or came from elsewhere. It is fresh now: try again."
TOO_LONG = f"An email has at most {MAX_EMAIL} characters, a password at most {MAX_PASSWORD}."


def _secure(request: Request) -> bool:
    """Over https (uvicorn takes the scheme from a trusted proxy's X-Forwarded-Proto)."""
    return request.url.scheme == "https"


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _page(request: Request, status_code: int, next_page: str, message: str | None = None,
                email: str = "", headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    """The login page, with a token for its form and the cookie that token is checked against."""
    nonce, token = await request.app.state.sessions.login_challenge(
        request.cookies.get(LOGIN_COOKIE)
    )
    answer = render(request, "login.html", status_code, section=None, refresh=False,
                    next=next_page, message=message, email=email, csrf=token)  # fmt: skip
    answer.set_cookie(LOGIN_COOKIE, nonce, max_age=LOGIN_TOKEN_SECONDS, path=LOGIN,
                      secure=_secure(request), httponly=True, samesite="strict")  # fmt: skip
    answer.headers.update(headers or {})
    return answer


async def _locked(request: Request, next_page: str, seconds: float, email: str) -> Response:
    wait = max(1, math.ceil(seconds))
    minutes = max(1, math.ceil(wait / 60))
    text = LOCKED.format(minutes=minutes, s="" if minutes == 1 else "s")
    return await _page(request, 429, next_page, text, email, {"Retry-After": str(wait)})


@router.get("/login")
async def login_page(request: Request) -> Response:
    return await _page(request, 200, safe_next(request.query_params.get("next", ""), PREFIX))


@router.post("/login")
async def login(request: Request) -> Response:
    csrf.check(request)
    form = await read_form(request)
    next_page = safe_next(form.get("next", ""), PREFIX)
    sessions = request.app.state.sessions
    if not await sessions.login_answered(request.cookies.get(LOGIN_COOKIE), form.get("csrf", "")):
        return await _page(request, 403, next_page, STALE)
    engine: Any = request.app.state.engine
    address = _address(request)
    wait = await request.app.state.budgets.spend(
        f"anon:{address}", parse_rate(engine.settings.anonymous_rate_limit)
    )
    if wait:
        return await _locked(request, next_page, wait, "")
    email = form.get("email", "").strip().lower()
    password = form.get("password", "")
    if len(email) > MAX_EMAIL or len(password) > MAX_PASSWORD:
        return await _page(request, 400, next_page, TOO_LONG)
    if not email or not password:
        return await _page(request, 401, next_page, FAILED, email)

    access = engine.store.access
    subjects = {"account": f"account:{email}", "address": f"address:{address}"}
    now = time.time()
    until = max([await access.locked_until(subject) for subject in subjects.values()])
    if until > now:
        return await _locked(request, next_page, until - now, email)
    # Each attempt is counted before its password is checked, so parallel guesses
    # cannot all slip in under the lock: past the fifth they are refused unchecked.
    counts = {kind: await access.login_attempt(subject, now) for kind, subject in subjects.items()}
    if max(counts.values()) > LOCK_AFTER:
        return await _locked(request, next_page, LOCK_SECONDS, email)
    user = await access.user(email)
    stored = user.password_hash if user is not None else DUMMY_HASH
    matches = await asyncio.to_thread(verify_password, password, stored)
    if user is None or user.disabled or not matches:
        log.info("login_failed", address=address)
        locked = 0.0
        for kind, subject in subjects.items():
            if counts[kind] >= LOCK_AFTER:
                until_then = now + LOCK_SECONDS
                await access.lock(subject, until_then)
                log.warning("login_locked", subject_kind=kind, subject=subject,
                            address=address, seconds=round(until_then - now))  # fmt: skip
                locked = max(locked, until_then)
        if locked:
            return await _locked(request, next_page, locked - now, email)
        return await _page(request, 401, next_page, FAILED, email)

    await access.login_forgive(subjects["address"])
    await access.login_succeeded(subjects["account"])
    earlier = request.cookies.get(COOKIE)
    if earlier:  # a browser signing in again (perhaps as someone else) keeps one session
        await sessions.close(earlier)
    cookie, _ = await sessions.open(user)
    log.info("login", user=user.email, tenant=user.tenant_id, address=address)
    answer = RedirectResponse(next_page, status_code=303, headers={"Cache-Control": "no-store"})
    answer.set_cookie(COOKIE, cookie, path="/", secure=_secure(request), httponly=True,
                      samesite="lax")  # fmt: skip
    answer.delete_cookie(LOGIN_COOKIE, path=LOGIN, secure=_secure(request), httponly=True,
                         samesite="strict")  # fmt: skip
    return answer


@router.post("/logout", dependencies=[requires(Scope.READ)])
async def logout(request: Request) -> Response:
    """End the session here and in every process (its row goes), and drop the cookie."""
    await csrf.posted(request)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        await request.app.state.sessions.close(cookie)
    answer = RedirectResponse(LOGIN, status_code=303, headers={"Cache-Control": "no-store"})
    answer.delete_cookie(COOKIE, path="/", secure=_secure(request), httponly=True, samesite="lax")
    return answer
