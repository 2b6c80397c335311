"""What every console route shares: the `Console` object graph, sessions of requests, and
pages rendered with their common context (user, role, the logout form's CSRF nonce)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from gateway.clock import Clock
from gateway.config.model import Config
from gateway.console.auth import SESSION_COOKIE, AuditLog, RateLimiter, Session, Sessions
from gateway.console.history import History
from gateway.console.i18n import language_of, switch_links, tr, value_words
from gateway.console.live import Fanout, LiveState
from gateway.console.users import Role, UsersFile
from gateway.errors import InvalidInput, RuntimeFailure

HERE = Path(__file__).parent


class HistorySource:
    """The database, read-only, opened on first use and again after a failure (the gateway
    may not have created it yet when the console starts)."""

    def __init__(self, url: str, opener: Callable[[str], History] = History) -> None:
        self._url, self._opener = url, opener
        self._history: History | None = None
        self._lock = threading.Lock()  # pages open it from worker threads

    def get(self) -> History:
        """The open History (call it off the event loop: it may connect); RuntimeFailure
        saying why when the database cannot be read."""
        with self._lock:
            if self._history is None:
                self._history = self._opener(self._url)
            return self._history

    def close(self) -> None:
        with self._lock:
            if self._history is not None:
                self._history.close()
                self._history = None


@dataclass(frozen=True, slots=True)
class Console:
    """Everything the console's routes use, built once (gateway.cli.console)."""

    config: Config
    users: UsersFile
    sessions: Sessions
    limiter: RateLimiter
    audit: AuditLog
    live: LiveState
    fanout: Fanout
    history: HistorySource
    clock: Clock
    secure_cookies: bool = True
    # One password check at a time: each takes scrypt's 16 MB and tens of ms of CPU, so a burst
    # of logins waits here (on the event loop, holding no worker thread) instead of adding
    # 16 MB of memory each.
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))


def console_of(request: Request) -> Console:
    return cast(Console, request.app.state.console)


def templates() -> Jinja2Templates:
    """The pages' templates: autoescaped, strict about undefined names."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    return Jinja2Templates(env=env)


def session_of(request: Request) -> Session | None:
    """The request's valid session, or None."""
    console = console_of(request)
    session = console.sessions.read(request.cookies.get(SESSION_COOKIE))
    return current_session(console, session) if session is not None else None


def current_session(console: Console, session: Session) -> Session | None:
    """`session` as it stands now: None once expired, logged out, or its user gone from the
    users file (or the file unreadable); else with the user's role of now, so that removing
    a user or lowering their role takes effect at their next request, not at the cookie's
    expiry."""
    if not console.sessions.live(session):
        return None
    try:
        user = console.users.find(session.user)
    except (InvalidInput, OSError):
        return None
    return replace(session, role=user.role) if user is not None else None


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """A page, with what every page shows (user, role, the logout form's CSRF nonce)."""
    session = session_of(request)
    console = console_of(request)
    language = language_of(request)
    base = {
        **language.template_callables(),
        "lang": language.code,
        "lang_links": switch_links(request),
        "number": language.number,
        "words": value_words(language),
        "session": session,
        "store": console.config.store,
        "can_trace": session is not None and session.role.allows(Role.MARKETER),
        "broker": getattr(request.app.state, "feed_connected", lambda: False)(),
    }
    tpl: Jinja2Templates = request.app.state.templates
    response = tpl.TemplateResponse(request, name, {**base, **context}, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    return response


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    """A plain page saying what went wrong and what to do."""
    return render(request, "error.html", {"title": title, "detail": detail}, status)


def page_session(request: Request, needed: Role) -> Session | Response:
    """The session of a page request, or the response: a redirect to /login without one,
    403 when the role does not allow the page."""
    session = session_of(request)
    if session is None:
        return RedirectResponse(f"/login?next={quote(request.url.path, safe='/')}", status_code=303)
    if not session.role.allows(needed):
        detail = tr(
            request,
            "This page needs the %(needed)s role; you are %(role)s.",
            needed=tr(request, needed.value),
            role=tr(request, session.role.value),
        )
        return error_page(request, 403, tr(request, "Not allowed"), detail)
    return session


def api_session(request: Request, needed: Role) -> Session | Response:
    """The session of a data request (JSON, CSV, stream, image): 401 without one, 403 when
    the role does not allow it."""
    session = session_of(request)
    if session is None:
        error = tr(request, "login required: open /login")
        return JSONResponse({"error": error}, status_code=401)
    if not session.role.allows(needed):
        error = tr(request, "needs the %(needed)s role", needed=tr(request, needed.value))
        return JSONResponse({"error": error}, status_code=403)
    return session


def history_problem(exc: RuntimeFailure, request: Request | None = None) -> str:
    """What a page says when the database cannot be read (in the request's language)."""
    if request is None:
        return f"The history is not available: {exc}"
    return tr(request, "The history is not available: %(error)s", error=exc)
