"""The soak's verdicts: memory bounded, devices evicted, no offer lost, caps hold.

The offer checks read the SQLite file with the standard `sqlite3` module, not through the
store or the rules' `Ledger`, and recompute every cap from the rows on their own terms (local
day, ISO week, sliding 30 days, visit rows), so a bug in the ledger or in `period_start` shows.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.rules.model import Period, RuleSet

RSS_SLACK_MB = 4.0  # the last hours may not grow past the busy hours' peak by more than this
D30_S = 30 * 86400.0
COUNTED = "state NOT IN ('cancelled', 'dropped')"  # as the ledger: holdout offers count


@dataclass(frozen=True, slots=True)
class Sample:
    """The state after one simulated hour."""

    hour: int
    rss_mb: float
    sizes: dict[str, int]
    adverts: int
    offers: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check: its name, whether it holds, what was measured and the target."""

    name: str
    ok: bool
    detail: str
    target: str


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    rule: str
    customer: str
    at: float
    commercial: bool


def check_memory(samples: Sequence[Sample]) -> Verdict:
    """The last sixth of the hours may not exceed the RSS peak of the hours between the
    first quarter (warm-up) and them by more than `RSS_SLACK_MB`."""
    n = len(samples)
    warm, tail = max(1, n // 4), max(1, n // 6)
    busy = [s.rss_mb for s in samples[warm : n - tail]] or [s.rss_mb for s in samples[:warm]]
    last = max((s.rss_mb for s in samples[n - tail :]), default=0.0)
    peak = max(busy, default=0.0)
    ok = n > 0 and last <= peak + RSS_SLACK_MB
    detail = f"last {tail} h max {last:.1f} MB vs busy-hours peak {peak:.1f} MB"
    return Verdict("memory bounded", ok, detail, f"≤ peak + {RSS_SLACK_MB:g} MB")


def check_evicted(final: Mapping[str, int]) -> Verdict:
    """Every in-memory structure is empty once the store has closed and time ran on."""
    left = sum(final.values())
    detail = ", ".join(f"{k} {v}" for k, v in final.items())
    return Verdict("devices evicted after closing", left == 0, detail, "0 tracked")


def check_lost(db: Path, decided: Sequence[str]) -> Verdict:
    """Every offer the pipeline decided is a row of the outbox table, none dropped."""
    with _connect(db) as conn:
        states = dict(conn.execute("SELECT id, state FROM offers").fetchall())
    missing = [i for i in decided if i not in states]
    dropped = sum(1 for i in decided if states.get(i) == "dropped")
    detail = (
        f"{len(decided):,} decided, {len(decided) - len(missing):,} in the outbox, "
        f"{len(missing)} missing, {dropped} dropped"
    )
    return Verdict("no offer lost", not missing and not dropped, detail, "0 missing")


def check_caps(db: Path, rules: RuleSet, tz: ZoneInfo) -> Verdict:
    """Rule limits (per customer, total, cooldown) and policy caps (pressure, min_gap,
    offers per visit), recomputed from the offers and visits tables."""
    rows, visit_of = _load(db)
    problems: list[str] = []
    for rule in rules.rules:
        mine = [r for r in rows if r.rule == rule.id]
        limits = rule.limits
        if limits.per_customer_max is not None:
            key = _period_key(limits.per, tz, visit_of)
            problems += _over(mine, key, limits.per_customer_max, f"{rule.id} per customer")
        if limits.total_max is not None and len(mine) > limits.total_max:
            problems.append(f"{rule.id}: {len(mine)} offers over its total {limits.total_max}")
        if limits.cooldown:
            problems += _too_close(mine, lambda r: r.customer, limits.cooldown, rule.id)
    commercial = [r for r in rows if r.commercial]
    policy = rules.policy
    reached = 0
    for period, cap in policy.pressure:
        key = _period_key(period, tz, visit_of)
        problems += _over(commercial, key, cap, f"pressure per {period}")
        reached += sum(1 for n in Counter(key(r) for r in commercial).values() if n == cap)
    if policy.max_offers_per_visit is not None:
        key = _period_key(Period.VISIT, tz, visit_of)
        problems += _over(commercial, key, policy.max_offers_per_visit, "offers per visit")
    if policy.min_gap:
        problems += _too_close(commercial, lambda r: r.customer, policy.min_gap, "min_gap")
    detail = (
        f"{len(rows):,} offers to {len({r.customer for r in rows}):,} customers, "
        f"{len(problems)} violation(s); a pressure cap reached {reached:,} time(s)"
        + (f": {'; '.join(problems[:3])}" if problems else "")
    )
    return Verdict("caps hold", not problems, detail, "0 violations")


@contextmanager
def _connect(db: Path) -> Iterator[sqlite3.Connection]:
    """The database read only, closed on leaving (a sqlite3 connection used as a context
    manager only ends its transaction)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        yield conn


def _load(db: Path) -> tuple[list[_Row], Callable[[_Row], int | None]]:
    """The counted offers, oldest first, and a lookup of the visit row each fell in."""
    with _connect(db) as conn:
        rows = [
            _Row(i, rule, customer, at, purpose == "commercial")
            for i, rule, customer, at, purpose in conn.execute(
                f"SELECT id, rule, customer, created_at, purpose FROM offers WHERE {COUNTED} "
                "ORDER BY created_at, id"
            )
        ]
        visits: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
        for vid, customer, began, ended in conn.execute(
            "SELECT id, customer, started_at, ended_at FROM visits WHERE customer IS NOT NULL"
        ):
            visits[customer].append((began, float("inf") if ended is None else ended, vid))

    def visit_of(row: _Row) -> int | None:
        for began, ended, vid in visits.get(row.customer, ()):
            if began <= row.at <= ended:
                return vid
        return None

    return rows, visit_of


def _period_key(
    period: Period, tz: ZoneInfo, visit_of: Callable[[_Row], int | None]
) -> Callable[[_Row], Hashable]:
    """What groups a customer's offers into one window of `period` (30d: see `_over`)."""
    if period is Period.DAY:
        return lambda r: (r.customer, datetime.fromtimestamp(r.at, tz).date())
    if period is Period.WEEK:
        return lambda r: (r.customer, datetime.fromtimestamp(r.at, tz).isocalendar()[:2])
    if period is Period.VISIT:
        return lambda r: (r.customer, visit_of(r) if visit_of(r) is not None else r.id)
    if period is Period.D30:
        return lambda r: (r.customer, "30d")
    return lambda r: r.customer


def _over(rows: Sequence[_Row], key: Callable[[_Row], Hashable], cap: int, what: str) -> list[str]:
    """Groups of `key` holding more than `cap` offers; a 30-day group is checked sliding."""
    groups: dict[Hashable, list[float]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row.at)
    out = []
    for group, times in groups.items():
        sliding = isinstance(group, tuple) and group[-1] == "30d"
        most = _most_within(times, D30_S) if sliding else len(times)
        if most > cap:
            out.append(f"{what}: {most} > {cap} for {group}")
    return out


def _most_within(times: Sequence[float], span: float) -> int:
    """The most of the sorted `times` in any window [t - span, t]."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] < t - span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _too_close(
    rows: Sequence[_Row], key: Callable[[_Row], str], gap: float, what: str
) -> list[str]:
    """Consecutive offers of one `key` (sorted rows) closer than `gap` seconds."""
    last: dict[str, float] = {}
    out = []
    for row in rows:
        k = key(row)
        if k in last and row.at - last[k] < gap:
            out.append(f"{what}: {row.at - last[k]:.0f} s < {gap:g} s for {k}")
        last[k] = row.at
    return out
