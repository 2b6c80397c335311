"""The console's pages: the live map, the rules, a visit's trace, the KPIs (and their JSON
and CSV). Database work runs in a worker thread, never on the event loop."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.console.auth import Session
from gateway.console.history import RuleActivity
from gateway.console.i18n import language_of, tr
from gateway.console.kpis import TABLES, kpis, kpis_csv
from gateway.console.livemsg import VISIT
from gateway.console.plan import render_plan
from gateway.console.rulestate import RulesView, rule_states
from gateway.console.trace import visit_trace
from gateway.console.users import Role
from gateway.console.web import (
    api_session,
    console_of,
    error_page,
    history_problem,
    page_session,
    render,
)
from gateway.errors import InvalidInput, RuntimeFailure

DEFAULT_DAYS = 7
_TABLE = re.compile(r"[a-z_]{1,32}")


def local_time(at: float | None, tz: ZoneInfo) -> str:
    """`at` as the store's local `YYYY-MM-DD HH:MM:SS`, or an em dash."""
    if at is None:
        return "—"
    return datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d %H:%M:%S")


def day_start(day: date, tz: ZoneInfo) -> float:
    """Midnight of `day` in the store's time zone, as epoch seconds."""
    return datetime.combine(day, time(0), tz).timestamp()


async def live_map(request: Request) -> Response:
    """/: the floor plan with live counts and dots, the zones' occupancy, the ticker."""
    session = page_session(request, Role.VIEWER)
    if not isinstance(session, Session):
        return session
    console = console_of(request)
    live = console.live
    plan = Markup(
        render_plan(console.config, live.anchor_health, live.occupancy)
    )  # escaped by plan.py
    zones = [(z.id, z.name, live.occupancy.get(z.id, 0)) for z in console.config.zones]
    context = {"plan": plan, "zones": zones, "ticker": list(reversed(live.ticker))}
    return render(request, "map.html", context)


def _today(request: Request) -> tuple[float, float]:
    console = console_of(request)
    now = console.clock.now()
    tz = console.config.store.timezone
    return day_start(datetime.fromtimestamp(now, tz).date(), tz), now


def _rules_data(request: Request) -> tuple[RulesView, dict[str, RuleActivity], str | None]:
    """The rule set's states, and today's activity (or why the history cannot be read)."""
    console = console_of(request)
    since, now = _today(request)
    view = rule_states(console.config, now, language_of(request))
    try:
        return view, console.history.get().rule_activity(since, now), None
    except RuntimeFailure as exc:
        return view, {}, history_problem(exc, request)


async def rules(request: Request) -> Response:
    """/rules: each rule's state, last firing and today's offers by state; the refused set's
    errors and the gateway's last reload error."""
    session = page_session(request, Role.VIEWER)
    if not isinstance(session, Session):
        return session
    console = console_of(request)
    view, activity, problem = await run_in_threadpool(_rules_data, request)
    tz, when = console.config.store.timezone, language_of(request).when
    rows = [
        {
            "rule": r,
            "last_fired": when(activity[r.id].last_fired_at, tz) if r.id in activity else "—",
            "offers": dict(activity[r.id].offers) if r.id in activity else {},
            "file": Path(r.file).name,
        }
        for r in view.rules
    ]
    reload = console.live.rules
    context = {
        "rows": rows,
        "errors": view.errors,
        "reload": reload,
        "problem": problem,
    }
    return render(request, "rules.html", context)


async def visit(request: Request) -> Response:
    """/visits/<pseudonym>: why each rule did or did not fire at each of the visit's events."""
    session = page_session(request, Role.MARKETER)
    if not isinstance(session, Session):
        return session
    pseudonym = request.path_params["pseudonym"]
    if not VISIT.fullmatch(pseudonym):
        return error_page(
            request,
            404,
            tr(request, "No such visit"),
            tr(request, "A visit is named v- and 12 hex digits."),
        )
    console = console_of(request)
    now = console.clock.now()
    try:
        found = await run_in_threadpool(
            lambda: visit_trace(console.config, console.history.get(), pseudonym, now)
        )
    except RuntimeFailure as exc:
        problem = history_problem(exc, request)
        return error_page(request, 503, tr(request, "History unavailable"), problem)
    if found is None:
        detail = tr(
            request,
            "No visit %(visit)s in the last 7 days (pseudonyms change at every visit).",
            visit=pseudonym,
        )
        return error_page(request, 404, tr(request, "No such visit"), detail)
    tz, language = console.config.store.timezone, language_of(request)
    return render(request, "visit.html", {"trace": found, "when": lambda at: language.when(at, tz)})


def _period(request: Request) -> tuple[date, date] | str:
    """The `since` and `until` days (both included) of the query, or what is wrong."""
    console = console_of(request)
    today = datetime.fromtimestamp(console.clock.now(), console.config.store.timezone).date()
    try:
        until = _day(request.query_params.get("until"), today)
        since = _day(request.query_params.get("since"), until - timedelta(days=DEFAULT_DAYS - 1))
    except ValueError:
        return tr(request, "since and until must be dates written YYYY-MM-DD")
    if since > until:
        return tr(request, "since must not be after until")
    if (until - since).days > 366:
        return tr(request, "at most 366 days at once")
    return since, until


def _day(text: str | None, default: date) -> date:
    return date.fromisoformat(text) if text else default


async def kpis_page(request: Request) -> Response:
    """/kpis: the period's form, charts and tables (drawn by console.js from /kpis.json)."""
    session = page_session(request, Role.VIEWER)
    if not isinstance(session, Session):
        return session
    period = _period(request)
    if isinstance(period, str):
        return error_page(request, 400, tr(request, "Wrong period"), period)
    context = {"since": period[0].isoformat(), "until": period[1].isoformat(), "tables": TABLES}
    return render(request, "kpis.html", context)


async def _report(request: Request) -> dict[str, Any] | Response:
    period = _period(request)
    if isinstance(period, str):
        return JSONResponse({"error": period}, status_code=400)
    console = console_of(request)
    tz = console.config.store.timezone
    since, until = day_start(period[0], tz), day_start(period[1] + timedelta(days=1), tz)
    try:
        report: dict[str, Any] = await run_in_threadpool(
            lambda: kpis(console.config, console.history.get(), since, until)
        )
    except RuntimeFailure as exc:
        return JSONResponse({"error": history_problem(exc, request)}, status_code=503)
    return report


async def kpis_json(request: Request) -> Response:
    """/kpis.json?since=&until=: the report's figures (gateway.console.kpis)."""
    session = api_session(request, Role.VIEWER)
    if not isinstance(session, Session):
        return session
    report = await _report(request)
    if isinstance(report, Response):
        return report
    return JSONResponse(report, headers={"cache-control": "no-store"})


async def kpis_csv_file(request: Request) -> Response:
    """/kpis/<table>.csv?since=&until=: one table of the report, as CSV."""
    session = api_session(request, Role.VIEWER)
    if not isinstance(session, Session):
        return session
    table = request.path_params["table"]
    if not _TABLE.fullmatch(table) or table not in TABLES:
        return JSONResponse({"error": f"tables: {', '.join(TABLES)}"}, status_code=404)
    report = await _report(request)
    if isinstance(report, Response):
        return report
    try:
        text = kpis_csv(report, table)
    except InvalidInput as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    days = _period(request)  # valid: _report read it
    name = f"rayon-{table}-{days[0]}-{days[1]}.csv" if isinstance(days, tuple) else f"{table}.csv"
    headers = {"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
