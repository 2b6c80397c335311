"""The console's web application (Starlette): the object graph, security headers, sessions,
and the routes (pages in gateway.console.pages, login in gateway.console.login).

`build_app(console, feed)` is all a server needs; tests build a `Console` with a manual clock
and real files, and drive the app with Starlette's TestClient.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, cast

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.clock import Clock
from gateway.config.model import Config
from gateway.console import login, pages
from gateway.console.auth import (
    AuditLog,
    RateLimiter,
    Revoked,
    Session,
    Sessions,
    Signer,
    load_secret,
)
from gateway.console.i18n import LanguageSwitch, load_languages
from gateway.console.live import Fanout, LiveFeed, LiveState, Subscription
from gateway.console.users import Role, UsersFile
from gateway.console.web import (
    HERE,
    Console,
    HistorySource,
    api_session,
    console_of,
    current_session,
    templates,
)
from gateway.topics import Topics

log = logging.getLogger(__name__)

SESSION_CHECK_S = 5.0
# a browser that takes no byte of its stream for this long is dropped (a live one reconnects):
# else a client that never reads keeps its stream, its slot of Fanout.max_clients and, being
# blocked in a send, its session checks away forever
SEND_TIMEOUT_S = 60.0

SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
HSTS = ((b"strict-transport-security", b"max-age=31536000"),)

PICTURE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


async def state_json(request: Request) -> Response:
    """The live state at once (what the stream's first event carries)."""
    session = api_session(request, Role.VIEWER)
    if not isinstance(session, Session):
        return session
    snapshot = {**console_of(request).live.snapshot(), "broker": _broker(request)()}
    return JSONResponse(snapshot, headers={"cache-control": "no-store"})


def _broker(request: Request) -> Callable[[], bool]:
    """Whether the console's MQTT link is up now."""
    return cast(Callable[[], bool], request.app.state.feed_connected)


async def live_stream(request: Request) -> Response:
    """Server-sent events: `snapshot` first, then `positions`, `ticker`, `occupancy`,
    `status` as the live topics bring them and `broker` when the console's link to the
    broker goes down or comes back; ends when the session does."""
    session = api_session(request, Role.VIEWER)
    if not isinstance(session, Session):
        return session
    console = console_of(request)
    if console.fanout.full:  # each stream holds a queue: their number is bounded too
        return JSONResponse(
            {"error": f"{console.fanout.max_clients} live streams already open: try later"},
            status_code=503,
            headers={"retry-after": "30"},
        )
    events = live_events(console, session, _broker(request))
    return EventSourceResponse(
        events, ping=15, send_timeout=SEND_TIMEOUT_S, headers={"cache-control": "no-store"}
    )


async def live_events(
    console: Console, session: Session, broker: Callable[[], bool] = lambda: False
) -> AsyncGenerator[dict[str, str]]:
    """The stream of one browser, until its session expires, is logged out or its user is
    removed (checked at least every SESSION_CHECK_S, so a quiet store does not keep an
    ended session streaming, and the broker's state is told within that time)."""
    queue = console.fanout.subscribe()
    connected = broker()
    try:
        snapshot = {**console.live.snapshot(), "broker": connected}
        yield {"event": "snapshot", "data": json.dumps(snapshot)}
        while True:
            event = await _next_event(queue)
            if current_session(console, session) is None:
                return
            if broker() != connected:
                connected = not connected
                yield {"event": "broker", "data": json.dumps({"connected": connected})}
            if event is not None:
                yield {"event": str(event["event"]), "data": json.dumps(event["data"])}
    finally:
        console.fanout.unsubscribe(queue)


async def _next_event(queue: Subscription) -> dict[str, Any] | None:
    """The browser's next live event, or None after SESSION_CHECK_S without one."""
    try:
        return await asyncio.wait_for(queue.get(), SESSION_CHECK_S)
    except TimeoutError:
        return None


async def floor_image(request: Request) -> Response:
    """`console.floor_plan.image`, behind login."""
    session = api_session(request, Role.VIEWER)
    if not isinstance(session, Session):
        return session
    plan = console_of(request).config.console.floor_plan
    if plan is None or not plan.image.is_file():
        return PlainTextResponse("no floor plan image (console.floor_plan)", status_code=404)
    media = PICTURE_TYPES.get(plan.image.suffix.lower())
    if media is None:  # never served as what its name guesses (text/html, …)
        return PlainTextResponse(
            "console.floor_plan.image must be a .png, .jpg, .gif or .svg file", status_code=404
        )
    # an SVG opened on its own runs nothing: a sandbox of its own, on top of the pages' CSP
    headers = {"cache-control": "private, max-age=300", "content-security-policy": "sandbox"}
    return FileResponse(plan.image, headers=headers, media_type=media)


class SecurityHeaders:
    """Adds the CSP and friends to every response (a pure ASGI middleware: streams pass)."""

    def __init__(self, app: ASGIApp, *, https_only: bool = False) -> None:
        self.app = app
        self.headers = [*SECURITY_HEADERS, *(HSTS if https_only else ())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_app(console: Console, feed: LiveFeed | None = None) -> Starlette:
    """The console's ASGI app; `feed` (the MQTT connection) runs while the app is up."""
    routes = [
        Route("/healthz", healthz),
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login", login.login_post, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/", pages.live_map),
        Route("/rules", pages.rules),
        Route("/visits/{pseudonym}", pages.visit),
        Route("/kpis", pages.kpis_page),
        Route("/kpis.json", pages.kpis_json),
        Route("/kpis/{table}.csv", pages.kpis_csv_file),
        Route("/live", live_stream),
        Route("/state.json", state_json),
        Route("/floorplan", floor_image),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        login.users_problem(console)  # logged at startup: the users file missing or broken
        task = asyncio.create_task(feed.run(), name="console-feed") if feed else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            console.history.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(LanguageSwitch, secure=console.secure_cookies)
    # served over TLS (console.tls): browsers keep to HTTPS for a year
    app.add_middleware(SecurityHeaders, https_only=console.config.console.tls is not None)
    app.state.console = console
    app.state.templates = templates()
    app.state.languages = load_languages()
    app.state.feed_connected = (lambda: feed.connected) if feed is not None else (lambda: False)
    return app


def build_console(config: Config, clock: Clock, *, secure_cookies: bool = True) -> Console:
    """The console's objects from the config: users file, session key (created 0600 when
    missing), audit log, rate limits, live state and the read-only history."""
    c = config.console
    topics = Topics(config.mqtt.topic_prefix, config.store.id)
    return Console(
        config=config,
        users=UsersFile(c.users_file),
        sessions=Sessions(
            Signer(load_secret(c.secret_file)),
            clock,
            c.session_ttl,
            Revoked(clock, c.secret_file.with_name(f"{c.secret_file.name}.revoked")),
        ),
        limiter=RateLimiter(clock),
        audit=AuditLog(c.audit_log, clock),
        live=LiveState(topics, (z.id for z in config.zones), (a.id for a in config.anchors)),
        fanout=Fanout(),
        history=HistorySource(config.database.url),
        clock=clock,
        secure_cookies=secure_cookies,
    )
