"""`rayon backtest TRACE`: what the rules would have done over a recorded or simulated trace.

The trace goes through the same `Pipeline` and `replay` as `rayon replay --dry-run` (ticks on
the trace's clock, flushed at the end), with an engine that also keeps, for every rule that
was considered and did not fire, the engine's reason.  Nothing is published and nothing is
written to the database: customers are only read from it (or from `--customers FILE`).

Per rule the report gives the offers that would go out (holdout ones excluded), the distinct
customers reached, holdout hits (the control group: recorded, not sent), cap hits (per
customer limit, cooldown, campaign budget), policy hits (pressure, quiet hours, min_gap,
max_offers_per_visit), no push consent, the other reasons (conditions not met, validity dates,
trigger not reached, outranked, code pool exhausted) and offers by hour of the day in the
store's time.  A "why not" count is per decision: each event that triggered the rule and was
stopped for that reason counts once.  Formats: a table for people, `json` (`as_json`: its field
names are stable) and `csv` (one row per rule, `CSV_COLUMNS`, `h00`…`h23` for the hours).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from gateway.config import Config
from gateway.errors import ConfigError, InvalidInput
from gateway.events import Purpose, ZoneEvent
from gateway.identity import Customer, CustomerRegistry
from gateway.pipeline import Output, Pipeline
from gateway.progress import Progress, lines_with_progress
from gateway.replay import replay
from gateway.rules import Evaluation, Rule, RuleEngine, RuleSet, load_rules
from gateway.sources.trace import TraceError, TraceItem, iter_trace

HOURS = 24
REPORT_VERSION = 1


class Format(StrEnum):
    """How the report is written."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class Cause(StrEnum):
    """Why a considered rule did not fire, from the engine's reason.  The value is the CSV
    column and, split at the dot, the place of the count in the JSON report."""

    CAP_PER_CUSTOMER = "caps.per_customer"
    CAP_COOLDOWN = "caps.cooldown"
    CAP_TOTAL = "caps.total"
    POLICY_PRESSURE = "policy.pressure"
    POLICY_QUIET_HOURS = "policy.quiet_hours"
    POLICY_MIN_GAP = "policy.min_gap"
    POLICY_MAX_PER_VISIT = "policy.max_per_visit"
    NO_CONSENT = "no_consent"
    CONDITIONS = "not_met.conditions"
    VALIDITY = "not_met.validity"
    TRIGGER = "not_met.trigger"
    OUTRANKED = "not_met.outranked"
    CODE_POOL = "not_met.code_pool"
    OTHER = "not_met.other"


# The engine's reasons (gateway/rules/gates.py, engine.py), by how they start.
_PREFIXES: tuple[tuple[str, Cause], ...] = (
    ("no marketing_push consent", Cause.NO_CONSENT),
    ("limit reached", Cause.CAP_PER_CUSTOMER),
    ("per_customer", Cause.CAP_PER_CUSTOMER),
    ("cooldown", Cause.CAP_COOLDOWN),
    ("campaign budget", Cause.CAP_TOTAL),
    ("pressure", Cause.POLICY_PRESSURE),
    ("quiet hours", Cause.POLICY_QUIET_HOURS),
    ("min_gap", Cause.POLICY_MIN_GAP),
    ("max_offers_per_visit", Cause.POLICY_MAX_PER_VISIT),
    ("failed:", Cause.CONDITIONS),
    ("not valid yet", Cause.VALIDITY),
    ("no longer valid", Cause.VALIDITY),
    ("the event is not", Cause.TRIGGER),
    ("dwell", Cause.TRIGGER),
    ("the daily absent check", Cause.TRIGGER),
    ("no last visit known", Cause.TRIGGER),
    ("seen ", Cause.TRIGGER),
    ("outranked", Cause.OUTRANKED),
    ("code pool", Cause.CODE_POOL),
)


def classify(reason: str) -> Cause:
    """The cause of one of the engine's reasons (`Cause.OTHER` when it is not known)."""
    return next((cause for prefix, cause in _PREFIXES if reason.startswith(prefix)), Cause.OTHER)


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule over the whole trace."""

    rule: str
    name: str
    purpose: Purpose
    offers: int  # would go out (holdout excluded)
    customers: int  # distinct customers who would get at least one
    holdout: int  # fired into the control group: recorded, never sent
    causes: Mapping[Cause, int]  # every Cause, 0 when none
    by_hour: tuple[int, ...]  # offers per store-local hour 0..23


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """The whole report: the trace, the rules, and the customers reached by any rule."""

    trace: str
    rules_dir: str
    timezone: str
    inputs: int
    bad_lines: int
    events: int
    customers_known: int
    customers_reached: int
    first_at: float | None
    last_at: float | None
    rules: tuple[RuleResult, ...]

    @property
    def offers(self) -> int:
        return sum(r.offers for r in self.rules)

    @property
    def holdout(self) -> int:
        return sum(r.holdout for r in self.rules)

    @property
    def by_hour(self) -> tuple[int, ...]:
        return tuple(sum(r.by_hour[h] for r in self.rules) for h in range(HOURS))

    def cause(self, cause: Cause) -> int:
        return sum(r.causes[cause] for r in self.rules)


@dataclass(slots=True)
class _RuleTally:
    offers: int = 0
    holdout: int = 0
    customers: set[str] = field(default_factory=set)
    causes: Counter[Cause] = field(default_factory=Counter)
    by_hour: list[int] = field(default_factory=lambda: [0] * HOURS)

    def result(self, rule: Rule) -> RuleResult:
        causes = {c: self.causes[c] for c in Cause}
        n = len(self.customers)
        return RuleResult(
            rule.id,
            rule.name,
            rule.purpose,
            self.offers,
            n,
            self.holdout,
            causes,
            tuple(self.by_hour),
        )


class Tally:
    """Counts every evaluation the engine makes, per rule."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self.rules: dict[str, _RuleTally] = {}

    def record(self, found: Evaluation) -> None:
        """Count the offers of one evaluation and the cause of each reason."""
        for offer in found.offers:
            tally = self.rules.setdefault(offer.rule, _RuleTally())
            if offer.holdout:
                tally.holdout += 1
                continue
            tally.offers += 1
            tally.customers.add(offer.customer)
            tally.by_hour[datetime.fromtimestamp(offer.created_at, self._tz).hour] += 1
        for rule, reason in found.reasons.items():
            self.rules.setdefault(rule, _RuleTally()).causes[classify(reason)] += 1

    def results(self, rules: RuleSet) -> tuple[RuleResult, ...]:
        """Every rule of the set, in id order."""
        ordered = sorted(rules.rules, key=lambda r: r.id)
        return tuple(self.rules.get(r.id, _RuleTally()).result(r) for r in ordered)

    def reached(self) -> int:
        """Distinct customers who would get an offer of any rule."""
        return len(set[str]().union(*(t.customers for t in self.rules.values())))


class RecordingEngine(RuleEngine):
    """The real engine; every evaluation (with its reasons) also goes to `on_evaluation`."""

    def __init__(
        self, rules: RuleSet, config: Config, on_evaluation: Callable[[Evaluation], None]
    ) -> None:
        super().__init__(rules, config)
        self._on_evaluation = on_evaluation

    def evaluate(self, event: ZoneEvent, customer: Customer) -> Evaluation:
        found = super().evaluate(event, customer)
        self._on_evaluation(found)
        return found

    def evaluate_schedule(
        self,
        now: float,
        customers: Iterable[Customer],
        last_seen: Mapping[str, float] | None = None,
    ) -> list[tuple[str, Evaluation]]:
        found = super().evaluate_schedule(now, customers, last_seen)
        for _, evaluation in found:
            self._on_evaluation(evaluation)
        return found


# -- running ---------------------------------------------------------------------------------


def backtest(
    config: Config,
    rules: RuleSet,
    customers: Sequence[Customer],
    items: Iterable[TraceItem | TraceError],
    *,
    trace: str = "",
    rules_dir: str = "",
) -> BacktestResult:
    """Run `items` through the pipeline with `rules`; publish nothing, store nothing."""
    tally = Tally(config.store.timezone)
    engine = RecordingEngine(rules, config, tally.record)
    pipeline = Pipeline(config, rules, CustomerRegistry(customers), engine=engine)
    discard: Callable[[Output], None] = lambda _: None  # noqa: E731
    stats = replay(pipeline, items, discard)
    return BacktestResult(
        trace=trace,
        rules_dir=rules_dir,
        timezone=config.store.timezone.key,
        inputs=stats.inputs,
        bad_lines=stats.bad_lines,
        events=stats.events,
        customers_known=len(customers),
        customers_reached=tally.reached(),
        first_at=stats.first_at,
        last_at=stats.last_at,
        rules=tally.results(rules),
    )


def run_backtest(
    config: Config,
    trace_path: Path,
    rules_dir: Path | None,
    out: TextIO,
    fmt: Format | str = Format.TABLE,
    *,
    customers_file: Path | None = None,
    progress: bool | None = None,
    err: TextIO | None = None,
) -> int:
    """`rayon backtest`: the report on `out`; 0, or 1 (with located diagnostics on `err`)
    when the rules, the trace or the customers cannot be read.

    `rules_dir` None backtests the config's rules; `customers_file` None reads the customers
    from the config's database (read only).  `progress` None draws a bar on `err` only when
    it is a terminal and the report is not JSON.
    """
    err = err if err is not None else sys.stderr
    fmt = Format(fmt)
    directory = rules_dir if rules_dir is not None else config.rules_dir
    inputs = _inputs(config, directory, customers_file, trace_path, err)
    if inputs is None:
        return 1
    rules, customers = inputs
    show = progress if progress is not None else (err.isatty() and fmt is not Format.JSON)
    bar = Progress(trace_path.stat().st_size, err, "backtest", (1_000_000, " MB")) if show else None
    try:
        items = iter_trace(lines_with_progress(trace_path, bar), str(trace_path))
        result = backtest(
            config, rules, customers, items, trace=str(trace_path), rules_dir=str(directory)
        )
    finally:
        if bar is not None:
            bar.close()
    out.write(render(result, fmt))
    return 0


def _inputs(
    config: Config, rules_dir: Path, customers_file: Path | None, trace: Path, err: TextIO
) -> tuple[RuleSet, list[Customer]] | None:
    """The rules and customers, or None once what is wrong is printed on `err`."""
    try:
        rules = load_rules(rules_dir, config)
        customers = _customers(config, customers_file)
        _check_trace(trace)
    except ConfigError as exc:
        for d in exc.diagnostics:
            print(d, file=err)
        print(f"{rules_dir}: the rules do not load: nothing was backtested", file=err)
        return None
    except InvalidInput as exc:
        print(f"rayon backtest: {exc}", file=err)
        return None
    for warning in rules.warnings:
        print(warning, file=err)
    return rules, customers


def _check_trace(path: Path) -> None:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such trace file (record one, or `rayon simulate -o`)")


def _customers(config: Config, path: Path | None) -> list[Customer]:
    """From `path` (JSON Lines or CSV, every line valid), else read from the database."""
    from gateway.customers import read_customers

    if path is None:
        return _stored_customers(config.database.url)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such customers file (JSON Lines or CSV, DESIGN §6)")
    customers, errors = read_customers(path)
    if errors:
        raise InvalidInput("\n".join(errors) + f"\n{path}: fix these lines and run again")
    return customers


def _stored_customers(url: str) -> list[Customer]:
    """Read the customers; a SQLite file that does not exist is not created."""
    from sqlalchemy import make_url

    from gateway.store import Store

    if url.startswith("sqlite"):
        db = make_url(url).database
        if db and db != ":memory:" and not Path(db).is_file():
            raise InvalidInput(
                f"no database at {db}: import the customers first (`rayon customers import "
                "FILE`), or backtest with `--customers FILE`"
            )
    store = Store(url)
    try:
        return store.load_customers()
    finally:
        store.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon backtest` (the caller adds -c/--config)."""
    parser.add_argument("trace", help="trace file (JSON Lines, DESIGN §6)")
    parser.add_argument("--rules", help="backtest the draft rules of this folder instead")
    parser.add_argument(
        "--customers", help="customers from this JSON Lines or CSV file, not the database"
    )
    parser.add_argument("--format", choices=[f.value for f in Format], default=Format.TABLE.value)
    parser.add_argument("-o", "--output", help="write the report to this file (default stdout)")
    parser.add_argument(
        "--progress", action="store_true", default=None, help="draw a progress bar on stderr"
    )


def run_from_args(config: Config, args: argparse.Namespace) -> int:
    """`rayon backtest` from the options of `add_arguments`."""
    rules = Path(args.rules) if args.rules else None
    customers = Path(args.customers) if args.customers else None
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.output, "w", encoding="utf-8")) if args.output else None
        return run_backtest(
            config, Path(args.trace), rules, out or sys.stdout, args.format,
            customers_file=customers, progress=args.progress,
        )  # fmt: skip


# -- rendering -------------------------------------------------------------------------------


def render(result: BacktestResult, fmt: Format) -> str:
    """The report in `fmt`."""
    if fmt is Format.JSON:
        return json.dumps(as_json(result), ensure_ascii=False, indent=2) + "\n"
    if fmt is Format.CSV:
        return render_csv(result)
    return render_table(result)


def _counts(causes: Mapping[Cause, int]) -> dict[str, Any]:
    """`{"caps": {"per_customer": n, …}, "policy": {…}, "no_consent": n, "not_met": {…}}`."""
    out: dict[str, Any] = {}
    for cause in Cause:
        group, _, key = cause.value.rpartition(".")
        (out.setdefault(group, {}) if group else out)[key] = causes[cause]
    return out


def as_json(result: BacktestResult) -> dict[str, Any]:
    """The JSON report (version 1): these field names are for tools to rely on."""
    tz = ZoneInfo(result.timezone)
    return {
        "v": REPORT_VERSION,
        "trace": result.trace,
        "rules_dir": result.rules_dir,
        "timezone": result.timezone,
        "first_at": _iso(result.first_at, tz),
        "last_at": _iso(result.last_at, tz),
        "inputs": result.inputs,
        "bad_lines": result.bad_lines,
        "events": result.events,
        "customers_known": result.customers_known,
        "totals": {
            "offers": result.offers,
            "customers": result.customers_reached,
            "holdout": result.holdout,
            **_counts({c: result.cause(c) for c in Cause}),
            "by_hour": list(result.by_hour),
        },
        "rules": [_rule_json(r) for r in result.rules],
    }


def _rule_json(r: RuleResult) -> dict[str, Any]:
    return {
        "rule": r.rule,
        "name": r.name,
        "purpose": r.purpose.value,
        "offers": r.offers,
        "customers": r.customers,
        "holdout": r.holdout,
        **_counts(r.causes),
        "by_hour": list(r.by_hour),
    }


def _iso(at: float | None, tz: ZoneInfo) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")


CSV_COLUMNS = (
    *("rule", "name", "purpose", "offers", "customers", "holdout"),
    *(c.value for c in Cause),
    *(f"h{h:02d}" for h in range(HOURS)),
)


def render_csv(result: BacktestResult) -> str:
    """One row per rule, columns `CSV_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in result.rules:
        head = [r.rule, r.name, r.purpose.value, r.offers, r.customers, r.holdout]
        writer.writerow([*head, *(r.causes[c] for c in Cause), *r.by_hour])
    return buf.getvalue()


# The table's "why not" columns: caps, then policy, then consent.
_TABLE_CAUSES = (
    *(("per-cust", Cause.CAP_PER_CUSTOMER), ("cooldown", Cause.CAP_COOLDOWN)),
    *(("budget", Cause.CAP_TOTAL), ("pressure", Cause.POLICY_PRESSURE)),
    *(("quiet", Cause.POLICY_QUIET_HOURS), ("min-gap", Cause.POLICY_MIN_GAP)),
    *(("per-visit", Cause.POLICY_MAX_PER_VISIT), ("no-consent", Cause.NO_CONSENT)),
)
_TABLE_HEAD = ("offers", "customers", "holdout", *(name for name, _ in _TABLE_CAUSES))


def render_table(result: BacktestResult) -> str:
    """The report for people: a header, one line per rule, a total, offers by hour."""
    width = max([len("total"), *(len(r.rule) for r in result.rules)])
    row: Callable[[str, Iterable[object]], str] = lambda name, cells: (  # noqa: E731
        f"{name:<{width}}" + "".join(f"{c:>11}" for c in cells)
    )
    rule = "-" * (width + 11 * len(_TABLE_HEAD))
    lines = [*_summary(result), "", row("rule", _TABLE_HEAD), rule]
    for r in result.rules:
        lines.append(row(r.rule, [r.offers, r.customers, r.holdout, *_why_not(r.causes)]))
    totals = {c: result.cause(c) for c in Cause}
    reach = [result.offers, result.customers_reached, result.holdout]
    lines += [rule, row("total", [*reach, *_why_not(totals)])]
    lines += [
        "",
        "why not — caps: per-customer limit, cooldown, campaign budget; policy: pressure, "
        "quiet hours, min_gap, max_offers_per_visit; no-consent: no marketing_push consent",
    ]
    return "\n".join([*lines, "", *_hours(result)]) + "\n"


def _why_not(causes: Mapping[Cause, int]) -> list[int]:
    return [causes[c] for _, c in _TABLE_CAUSES]


def _summary(result: BacktestResult) -> list[str]:
    tz = ZoneInfo(result.timezone)
    span = "an empty trace"
    if result.first_at is not None and result.last_at is not None:
        first = datetime.fromtimestamp(result.first_at, tz)
        last = datetime.fromtimestamp(result.last_at, tz)
        span = f"{first:%Y-%m-%d %H:%M} → {last:%Y-%m-%d %H:%M} ({result.timezone})"
    return [
        f"backtest of {result.trace or 'the trace'} with the rules of {result.rules_dir or '?'}",
        f"{result.inputs:,} inputs ({result.bad_lines} bad lines), {result.events:,} zone "
        f"events, {span}; {result.customers_known:,} customers known",
        "nothing was published and nothing was written to the database",
    ]


def _hours(result: BacktestResult) -> list[str]:
    hours = result.by_hour
    used = [h for h in range(HOURS) if hours[h]]
    if not used:
        return ["offers by hour (store time): none"]
    top = max(hours)
    lines = ["offers by hour (store time):"]
    for h in range(used[0], used[-1] + 1):
        bar = "█" * max(1 if hours[h] else 0, round(40 * hours[h] / top))
        lines.append(f"  {h:02d}:00  {hours[h]:>6}  {bar}")
    return lines
