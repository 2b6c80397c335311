"""Logging in and out of the console: the login form (with its CSRF nonce), the rate limits
per client address and per user name, the session cookie, and the audit log of each."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.console.auth import LOGIN_COOKIE, LOGIN_NONCE_TTL_S, SESSION_COOKIE, csrf_ok
from gateway.console.i18n import tr
from gateway.console.users import Role, User
from gateway.console.web import Console, console_of, error_page, render, session_of
from gateway.errors import InvalidInput

log = logging.getLogger(__name__)

MAX_NAME = 64
MAX_PASSWORD = 1024


def client_of(request: Request) -> str:
    """The client's address as the console sees it (no proxy headers are trusted)."""
    return request.client.host if request.client is not None else "unknown"


def _next(request: Request, value: str | None) -> str:
    """Where to go after login: a local path only (never another site)."""
    target = value or request.query_params.get("next") or "/"
    local = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if local else "/"


def _login_form(
    request: Request, *, error: str | None = None, status: int = 200, name: str = ""
) -> Response:
    console = console_of(request)
    nonce, cookie = console.sessions.login_nonce()
    error = error or users_problem(console)
    context = {"csrf": nonce, "error": error, "name": name, "next": _next(request, None)}
    response = render(request, "login.html", context, status)
    response.set_cookie(
        LOGIN_COOKIE,
        cookie,
        max_age=int(LOGIN_NONCE_TTL_S),
        path="/login",
        secure=console.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


def users_problem(console: Console) -> str | None:
    """Why nobody can log in (the users file missing, empty or unreadable: the details go to
    the log, not to a page anyone can open), or None."""
    try:
        if console.users.users():
            return None
    except (InvalidInput, OSError) as exc:
        log.error("console: cannot read the users file: %s", exc)
        return "Nobody can log in: the console's users file cannot be read (ops: its log says why)."
    log.warning(
        "console: no user in %s: add one with `rayon console user add NAME --role ops`",
        console.users.path,
    )
    return "Nobody can log in yet: no console user (ops: `rayon console user add NAME --role ops`)."


async def login_page(request: Request) -> Response:
    """GET /login: the form (or home, when already logged in)."""
    if session_of(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _login_form(request)


async def login_post(request: Request) -> Response:
    """POST /login: CSRF nonce, rate limits, then the password."""
    console = console_of(request)
    form = await request.form()
    name, password = str(form.get("name", ""))[:MAX_NAME], str(form.get("password", ""))
    csrf = form.get("csrf")
    if not console.sessions.login_nonce_ok(
        request.cookies.get(LOGIN_COOKIE), csrf if isinstance(csrf, str) else None
    ):
        return _csrf_refused(request)
    client = client_of(request)
    limited = _limited(console, client, name)
    if limited is not None:
        if _newly_limited(console, client, name):  # once a lockout: no disk-filling flood
            console.audit.write("login_limited", client, user=name)
        response = _login_form(
            request,
            error=tr(request, "Too many failed logins: wait and try again."),
            status=429,
            name=name,
        )
        response.headers["retry-after"] = str(int(limited + 0.999))
        return response
    try:  # scrypt takes tens of milliseconds: off the event loop, one at a time
        async with console.hashing:
            user = await run_in_threadpool(_authenticate, console, name, password[:MAX_PASSWORD])
    except (InvalidInput, OSError) as exc:
        log.error("console: cannot read the users file: %s", exc)
        detail = tr(
            request, "The console's users file cannot be read; the log says why (ops: fix it)."
        )
        return error_page(request, 503, tr(request, "Login unavailable"), detail)
    if user is None:
        console.limiter.failed(f"client:{client}")
        console.limiter.failed(f"user:{name}")
        console.audit.write("login_failed", client, user=name)
        return _login_form(
            request, error=tr(request, "Wrong user name or password."), status=401, name=name
        )
    return _logged_in(request, console, client, user.name, user.role, form.get("next"))


def _authenticate(console: Console, name: str, password: str) -> User | None:
    return console.users.authenticate(name, password) if name else None


def _limited(console: Console, client: str, name: str) -> float | None:
    """Seconds to wait when the client or the user name failed too often, else None."""
    waits = [console.limiter.retry_after(f"client:{client}")]
    waits.append(console.limiter.retry_after(f"user:{name}"))
    found = [w for w in waits if w is not None]
    return max(found) if found else None


def _newly_limited(console: Console, client: str, name: str) -> bool:
    """Whether the client or the name is refused for the first time in its lockout."""
    keys = (f"client:{client}", f"user:{name}")
    return any([console.limiter.first_refusal(key) for key in keys])  # both marked


def _logged_in(
    request: Request, console: Console, client: str, name: str, role: Role, target: object
) -> Response:
    _session, cookie = console.sessions.issue(name, role)
    console.audit.write("login_ok", client, user=name)
    response = RedirectResponse(
        _next(request, target if isinstance(target, str) else None), status_code=303
    )
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(console.sessions.ttl),
        path="/",
        secure=console.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


async def logout(request: Request) -> Response:
    """POST /logout (with the session's CSRF nonce): the cookie goes, the audit log says so."""
    console = console_of(request)
    session = session_of(request)
    if session is None:
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    given = form.get("csrf")
    if not csrf_ok(session, given if isinstance(given, str) else None):
        return _csrf_refused(request)
    console.sessions.revoke(session)  # a copy of the cookie is refused too
    console.audit.write("logout", client_of(request), user=session.user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=console.secure_cookies, httponly=True, samesite="strict"
    )
    return response


def _csrf_refused(request: Request) -> Response:
    return error_page(
        request,
        403,
        tr(request, "Form refused"),
        tr(
            request,
            "The form's security token is missing or out of date (CSRF protection). "
            "Reload the page and send the form again.",
        ),
    )
