"""The compiled rule set: frozen values built once by the loader, read by the engine."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from gateway.errors import Diagnostic
from gateway.events import Purpose
from gateway.identity.model import Customer
from gateway.rules.context import Condition, Context
from gateway.rules.timewindow import TimeWindow

_SPACES = re.compile(r" {2,}")


class Period(StrEnum):
    """The window a per-customer cap counts over (day and week in the store timezone)."""

    VISIT = "visit"
    DAY = "day"
    WEEK = "week"
    D30 = "30d"
    LIFETIME = "lifetime"


class TriggerKind(StrEnum):
    """What a rule waits for: a zone or visit event (same values as `EventKind`), or absence.

    A `TriggerKind` equals (and hashes like) the `EventKind` of the same name, so an event's
    kind looks up the rules it triggers directly.
    """

    ENTER = "enter"
    EXIT = "exit"
    DWELL = "dwell"
    VISIT_START = "visit_start"
    VISIT_END = "visit_end"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Trigger:
    """`when:` — the kind, the zones or geofences it applies to (empty = any), its thresholds.

    `at_least` is the dwell threshold (seconds); an `absent` trigger runs once a day at the
    store-local time `at` for customers whose last visit is at least `absent_for` seconds ago.
    """

    kind: TriggerKind
    zones: tuple[str, ...] = ()
    at_least: float | None = None
    absent_for: float | None = None
    at: time | None = None

    def describe(self) -> str:
        """The trigger as a marketer wrote it: `dwell in aisle-tv at least 30s`."""
        where = f" in {', '.join(self.zones)}" if self.zones else ""
        if self.kind is TriggerKind.ABSENT:
            away = show_duration(self.absent_for or 0)
            return f"absent for {away}, checked daily at {self.at:%H:%M}"
        if self.at_least is not None:
            return f"{self.kind}{where} at least {show_duration(self.at_least)}"
        return f"{self.kind}{where}"


def show_duration(seconds: float) -> str:
    """`90d`, `2h`, `30s`: the largest unit that divides the duration."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


class Placeholder(StrEnum):
    """The fixed set of placeholders offer texts may use."""

    ZONE_NAME = "zone_name"
    STORE_NAME = "store_name"
    CODE = "code"
    FIRST_NAME = "customer.first_name"


ATTRIBUTE_PREFIX = "customer.attributes."
_NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Attribute:
    """`{customer.attributes.NAME}`: a CRM attribute declared in config.yaml
    (`customers.attributes`); an offer citing one the customer lacks is not sent."""

    name: str


@dataclass(frozen=True, slots=True)
class Template:
    """An offer text split into literal parts and placeholders, filled without running code."""

    parts: tuple[str | Placeholder | Attribute, ...]

    def fill(
        self, values: Mapping[Placeholder, str], attributes: Mapping[str, str] = _NO_ATTRIBUTES
    ) -> str:
        """The text with each placeholder replaced by its value (missing ones become empty);
        `attributes` are the texts of the CRM attributes it cites."""
        out = "".join([_part(p, values, attributes) for p in self.parts])
        # an empty placeholder (no first name) must not leave "Bonjour  !" or "Bonjour , …"
        # (the `in` checks spare the regular expression and the copy when there is nothing to tidy)
        if "  " in out:
            out = _SPACES.sub(" ", out)
        if " ," in out:
            out = out.replace(" ,", ",")
        return out.strip()

    @property
    def attributes(self) -> tuple[str, ...]:
        """The names of the CRM attributes the text cites."""
        return tuple(p.name for p in self.parts if type(p) is Attribute)


def _part(
    part: str | Placeholder | Attribute,
    values: Mapping[Placeholder, str],
    attributes: Mapping[str, str],
) -> str:
    if type(part) is Placeholder:  # a StrEnum: before the plain-text case
        return values.get(part, "")
    if isinstance(part, Attribute):
        return attributes.get(part.name, "")
    return part


@dataclass(frozen=True, slots=True)
class OfferTemplate:
    """`then.offer:` of a rule."""

    title: Template
    body: Template
    code: str | None
    url: str | None
    expires_in: float
    code_pool: str | None = None  # a unique code per customer from this pool (`CodePools`)

    @property
    def attributes(self) -> tuple[str, ...]:
        """The CRM attributes the title and body cite, each once, in order."""
        title, body = self.title.attributes, self.body.attributes
        if not body and len(title) < 2:  # most offers cite none: asked per candidate rule
            return title
        return tuple(dict.fromkeys((*title, *body)))


@dataclass(frozen=True, slots=True)
class Limits:
    """`limits:` — per-customer cap, campaign budget, cooldown (all optional)."""

    per_customer_max: int | None = None
    per: Period = Period.LIFETIME
    total_max: int | None = None
    cooldown: float | None = None

    @property
    def empty(self) -> bool:
        """True when the rule sets no limit at all."""
        return self.per_customer_max is None and self.total_max is None and self.cooldown is None


class StepKind(StrEnum):
    """What one step of an inline test does."""

    ENTER = "enter"
    EXIT = "exit"
    STILL_IN = "still_in"
    VISIT_START = "visit_start"
    VISIT_END = "visit_end"
    ABSENT_CHECK = "absent_check"  # the daily run of `absent` rules (`RuleEngine.on_schedule`)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of an inline test: at epoch seconds, something happens in a zone."""

    at: float
    kind: StepKind
    zone: str | None


@dataclass(frozen=True, slots=True)
class InlineTest:
    """One `tests:` item: a customer, a walk, and what the rule should do."""

    name: str
    line: int
    col: int
    customer: Customer
    steps: tuple[Step, ...]
    expect_offer: bool
    expect_fields: Mapping[str, Any] = field(default_factory=dict)
    expect_rule: str | None = None
    expect_count: int | None = None  # `expect: {offers: N}`: exactly N offers
    pools: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # seeded code pools


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One compiled rule file."""

    id: str
    name: str
    purpose: Purpose
    trigger: Trigger
    check: Callable[[Context], str | None]  # None when every `if:` condition holds
    offer: OfferTemplate
    limits: Limits = Limits()
    valid_from: date | None = None
    valid_until: date | None = None
    priority: int = 0
    holdout: float | None = None  # None: the policy's global holdout applies
    tests: tuple[InlineTest, ...] = ()
    file: str = ""
    conditions: tuple[Condition, ...] = ()  # the `if:` conditions `check` runs, for explain

    @property
    def commercial(self) -> bool:
        """Commercial rules are subject to holdout, quiet hours and pressure caps."""
        return self.purpose is Purpose.COMMERCIAL

    @property
    def absent(self) -> bool:
        """Absent rules run on the daily schedule, not on zone events."""
        return self.trigger.kind is TriggerKind.ABSENT


@dataclass(frozen=True, slots=True)
class Policy:
    """`rules/policy.yaml`: store-wide marketing pressure (commercial offers only).

    `holdout` is the default control-group rate of rules that do not set their own; a rule's
    own `holdout:` replaces it (it is not added).
    """

    quiet_hours: TimeWindow | None = None
    pressure: tuple[tuple[Period, int], ...] = ()
    holdout: float = 0.0
    max_offers_per_visit: int | None = None
    min_gap: float | None = None
    max_offers_per_event: int = 1


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule of `rules_dir` and the policy, loaded all-or-nothing."""

    rules: tuple[Rule, ...]
    policy: Policy = Policy()
    warnings: tuple[Diagnostic, ...] = ()

    def rule(self, rule_id: str) -> Rule | None:
        """The rule with that id, or None."""
        return next((r for r in self.rules if r.id == rule_id), None)
