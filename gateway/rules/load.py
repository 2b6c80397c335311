"""Loading `rules/*.yaml` (docs/rules.md) all-or-nothing into a compiled `RuleSet`.

Every problem of every file is collected with file:line:col, key path and a "did you mean";
`load_rules` raises one `ConfigError` carrying them all, so a bad edit on reload keeps the
previous rule set running and says exactly what to fix.

Triggers (`when:`, exactly one): `enter`/`exit` with `zone:` naming zones or geofences of the
config (one namespace), `dwell: {zone, at_least}` and `visit_start`/`visit_end` on zones only,
`absent: {for: 60d, at: "10:00"}` (daily, store-local).  `then.offer` has a fixed `code` or a
`code_pool` (any id: pools are data).  Warnings (never errors): a commercial rule without
limits, `holdout: 100%`, an absent rule without `limits.per_customer` nor `cooldown`, an absent
commercial rule whose hour falls in the policy's quiet hours.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.config.model import Config
from gateway.config.yamlsrc import MapNode, Node, ScalarNode, SeqNode, did_you_mean
from gateway.errors import ConfigError, Diagnostic, Severity
from gateway.events import Purpose
from gateway.rules.conditions import ConditionCompiler, unknown_place
from gateway.rules.context import all_of
from gateway.rules.located import Reader, tag
from gateway.rules.model import (
    Limits,
    OfferTemplate,
    Period,
    Policy,
    Rule,
    RuleSet,
    Template,
    Trigger,
    TriggerKind,
)
from gateway.rules.policy import POLICY_FILE, read_period, read_policy
from gateway.rules.templates import read_template
from gateway.rules.testspec import InlineTestReader

_RULE_KEYS = (
    "id",
    "name",
    "purpose",
    "valid",
    "when",
    "if",
    "then",
    "limits",
    "priority",
    "holdout",
    "tests",
)
_TRIGGERS = ("enter", "exit", "dwell", "visit_start", "visit_end", "absent")
_FENCE_TRIGGERS = (TriggerKind.ENTER, TriggerKind.EXIT)
_OFFER_KEYS = ("title", "body", "code", "code_pool", "url", "expires_in")
_PURPOSES = [p.value for p in Purpose]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_EXPIRES_IN = 3600.0
# MQTT v5 carries the expiry as whole seconds, ≥ 1 (0 would mean "never expires" to some
# brokers); its 32-bit field holds 136 years, but no in-store offer should outlive a year,
# and a year keeps created_at + expires_in far inside every time range we store.
MIN_EXPIRES_IN_S, MAX_EXPIRES_IN_S = 1.0, 365 * 86400.0
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def load_rules(rules_dir: Path, config: Config) -> RuleSet:
    """Load and compile every rule of `rules_dir`; raise ConfigError listing every error."""
    rules, diagnostics = read_rules(rules_dir, config)
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if errors or rules is None:
        raise ConfigError(errors)
    return rules


def read_rules(rules_dir: Path, config: Config) -> tuple[RuleSet | None, list[Diagnostic]]:
    """The rule set (None on any error) and every diagnostic, errors and warnings."""
    base = config.path.parent
    if not rules_dir.is_dir():
        diag = Diagnostic(_display(rules_dir, base), 1, 1, "the rules directory does not exist")
        return None, [diag]
    files = sorted(p for p in rules_dir.iterdir() if p.suffix in (".yaml", ".yml"))
    policy_reader = Reader(_display(rules_dir / POLICY_FILE, base))
    policy = read_policy(policy_reader, rules_dir / POLICY_FILE)
    diagnostics = list(policy_reader.diagnostics)
    rules: list[tuple[Rule, Node | None]] = []
    for path in files:
        if path.name != POLICY_FILE:
            reader = Reader(_display(path, base))
            rules.append(RuleReader(reader, config, policy).read(path))
            diagnostics.extend(reader.diagnostics)
    diagnostics.extend(_duplicates(rules))
    diagnostics.sort(key=lambda d: (d.file, d.line, d.col))
    if any(d.severity is Severity.ERROR for d in diagnostics):
        return None, diagnostics
    warnings = tuple(d for d in diagnostics if d.severity is Severity.WARNING)
    return RuleSet(tuple(r for r, _ in rules), policy, warnings), diagnostics


def _display(path: Path, base: Path) -> str:
    """The path as the user can open it: relative to the working directory when under it."""
    where = (base / path).absolute()
    cwd = Path.cwd()
    return os.path.relpath(where, cwd) if where.is_relative_to(cwd) else str(where)


def _duplicates(rules: list[tuple[Rule, Node | None]]) -> list[Diagnostic]:
    seen: dict[str, Rule] = {}
    out = []
    for rule, node in rules:
        first = seen.setdefault(rule.id, rule)
        if first is not rule and rule.id:
            line, col = (node.mark.line, node.mark.col) if node else (1, 1)
            msg = f"duplicate rule id '{rule.id}' (also in {first.file})"
            out.append(Diagnostic(rule.file, line, col, msg, "id"))
    return out


class RuleReader:
    """Reads and compiles one rule file; problems go to the reader's diagnostics."""

    def __init__(self, reader: Reader, config: Config, policy: Policy | None = None) -> None:
        self.reader = reader
        self.config = config
        self.policy = policy or Policy()
        self.fence_ids: Collection[str] = [g.id for g in config.geofences]
        # zones and geofences share one namespace: triggers and zone conditions name either
        self.zone_ids: Collection[str] = [*(z.id for z in config.zones), *self.fence_ids]

    def read(self, path: Path) -> tuple[Rule, Node | None]:
        """The compiled rule (meaningful only if the reader recorded no error), its id node."""
        root = self.reader.compose(path)
        required = ("id", "name", "purpose", "when", "then")
        keys = self.reader.mapping(root, "", _RULE_KEYS, required) if root is not None else None
        if keys is None:
            return _broken(self.reader.file), None
        return self._rule(keys), keys.get("id")

    def _rule(self, keys: dict[str, Node]) -> Rule:
        r = self.reader
        rule_id = self._id(keys.get("id"))
        purpose = self._purpose(keys.get("purpose"))
        conditions = r.optional(
            keys, "if", "", ConditionCompiler(r, self.zone_ids, self.fence_ids).compile_list
        )
        conditions = conditions or []
        valid_from, valid_until = self._valid(keys.get("valid"))
        tests = InlineTestReader(r, self.config.store.timezone, self.zone_ids, self.fence_ids)
        rule = Rule(
            id=rule_id,
            name=self._text(keys.get("name"), "name") or rule_id,
            purpose=purpose,
            trigger=self._trigger(keys.get("when")) or Trigger(TriggerKind.ENTER),
            check=all_of(conditions),
            conditions=tuple(conditions),
            offer=self._then(keys.get("then")),
            limits=self._limits(keys.get("limits")),
            valid_from=valid_from,
            valid_until=valid_until,
            priority=r.optional(keys, "priority", "", r.integer) or 0,
            holdout=r.optional(keys, "holdout", "", r.percent),
            tests=r.optional(keys, "tests", "", tests.read_all) or (),
            file=r.file,
        )
        self._warn(rule, keys)
        return rule

    def _warn(self, rule: Rule, keys: dict[str, Node]) -> None:
        if rule.commercial and rule.limits.empty and "when" in keys:
            msg = f"commercial rule '{rule.id}' has no limits: add limits.per_customer or cooldown"
            self.reader.warn(keys.get("id"), "limits", msg)
        if not rule.commercial and "holdout" in keys:
            msg = "holdout is ignored for a transactional rule"
            self.reader.warn(keys["holdout"], "holdout", msg)
        elif rule.commercial and rule.holdout is not None and rule.holdout >= 1.0:
            msg = "holdout 100%: every customer is in the control group, no offer is ever sent"
            self.reader.warn(keys["holdout"], "holdout", msg)
        if rule.absent and "when" in keys:
            self._warn_absent(rule, keys["when"])

    def _warn_absent(self, rule: Rule, when: Node) -> None:
        limits = rule.limits
        if limits.per_customer_max is None and limits.cooldown is None:
            msg = (
                f"absent rule '{rule.id}' has no limits.per_customer nor cooldown: a customer "
                "who stays away gets it again every day"
            )
            self.reader.warn(when, "limits", msg)
        quiet, hour = self.policy.quiet_hours, rule.trigger.at
        if not rule.commercial or quiet is None or hour is None:
            return
        monday = datetime(2026, 1, 5, hour.hour, hour.minute)  # any Monday: only weekdays matter
        days = [d for d in range(7) if quiet.contains(monday + timedelta(days=d))]
        if days:
            names = "every day" if len(days) == 7 else "on " + ", ".join(_DAYS[d] for d in days)
            msg = (
                f"absent rule '{rule.id}' runs at {hour:%H:%M}, inside the quiet hours "
                f"({quiet.describe()}) {names}: it sends nothing then; pick another hour"
            )
            self.reader.warn(self.reader.key_mark(when, "absent"), "when.absent.at", msg)

    def _text(self, node: Node | None, path: str) -> str | None:
        return self.reader.string(node, path, numbers_ok=True) if node is not None else None

    def _id(self, node: Node | None) -> str:
        rule_id = self._text(node, "id") or ""
        if rule_id and not _ID.match(rule_id):
            self.reader.error(node, "id", f"bad rule id '{rule_id}' (use letters, digits, - _ .)")
        return rule_id

    def _purpose(self, node: Node | None) -> Purpose:
        text = node.raw if isinstance(node, ScalarNode) else ""
        if node is not None and text not in _PURPOSES:
            hint = did_you_mean(text, _PURPOSES) or " (use commercial or transactional)"
            self.reader.error(node, "purpose", f"unknown purpose '{text}'{hint}")
        return Purpose(text) if text in _PURPOSES else Purpose.COMMERCIAL

    def _valid(self, node: Node | None) -> tuple[Any, Any]:
        keys = self.reader.mapping(node, "valid", ("from", "until")) if node is not None else None
        if not keys:
            return None, None
        start = self.reader.day(keys["from"], "valid.from") if "from" in keys else None
        end = self.reader.day(keys["until"], "valid.until") if "until" in keys else None
        if start and end and end < start:
            self.reader.error(
                keys["until"], "valid.until", f"ends ({end}) before it starts ({start})"
            )
        return start, end

    # -- when ------------------------------------------------------------------------------
    def _trigger(self, node: Node | None) -> Trigger | None:
        if node is None:
            return None
        keys = self.reader.mapping(node, "when", _TRIGGERS)
        if keys is None:
            return None
        if len(keys) != 1:
            msg = f"when needs exactly one trigger of: {', '.join(_TRIGGERS)} (got {len(keys)})"
            self.reader.error(node, "when", msg)
            return None
        ((name, value),) = keys.items()
        if name == TriggerKind.ABSENT:
            return self._absent(value, "when.absent")
        return self._trigger_body(TriggerKind(name), value, f"when.{name}")

    def _absent(self, node: Node, path: str) -> Trigger | None:
        """`absent: {for: 60d, at: "10:00"}`: daily at that local time, away that long."""
        r = self.reader
        keys = r.mapping(node, path, ("for", "at"), ("for", "at"))
        if keys is None or not {"for", "at"} <= keys.keys():
            return None
        away, hour = r.duration(keys["for"], f"{path}.for"), r.clock(keys["at"], f"{path}.at")
        if away is not None and away <= 0:
            r.error(keys["for"], f"{path}.for", "an absence must be longer than 0s (e.g. 60d)")
            return None
        if away is None or hour is None:
            return None
        return Trigger(TriggerKind.ABSENT, absent_for=away, at=hour)

    def _trigger_body(self, kind: TriggerKind, node: Node, path: str) -> Trigger | None:
        visit = kind in (TriggerKind.VISIT_START, TriggerKind.VISIT_END)
        if visit and tag(node) == "null":
            return Trigger(kind)
        if kind is not TriggerKind.DWELL and not isinstance(node, MapNode):
            return Trigger(kind, self._zones(node, path, kind))  # shorthand `enter: entrance`
        allowed = ("zone", "at_least") if kind is TriggerKind.DWELL else ("zone",)
        required = () if visit else allowed
        keys = self.reader.mapping(node, path, allowed, required)
        if keys is None:
            return None
        zones = self._zones(keys["zone"], f"{path}.zone", kind) if "zone" in keys else ()
        at_least = (
            self.reader.duration(keys["at_least"], f"{path}.at_least")
            if "at_least" in keys
            else None
        )
        if at_least is not None and at_least <= 0:
            self.reader.error(
                keys["at_least"], f"{path}.at_least", "a dwell threshold must be > 0s"
            )
        return Trigger(kind, zones, at_least)

    def _zones(self, node: Node, path: str, kind: TriggerKind) -> tuple[str, ...]:
        items = self.reader.sequence(node, path, one_ok=True)
        if items == []:
            msg = "names no zone: write one zone id, or a list of them (e.g. zone: entrance)"
            self.reader.error(node, path, msg)
        items = items or []
        out = []
        for i, item in enumerate(items):
            where = f"{path}[{i}]" if isinstance(node, SeqNode) else path
            zone = self.reader.string(item, where)
            if zone is not None and zone not in self.zone_ids:
                self.reader.error(item, where, unknown_place(zone, self.zone_ids, self.fence_ids))
            elif zone in self.fence_ids and kind not in _FENCE_TRIGGERS:
                msg = f"'{zone}' is a geofence: geofences trigger only enter and exit, not {kind}"
                self.reader.error(item, where, msg)
            elif zone is not None:
                out.append(zone)
        return tuple(out)

    # -- then and limits -------------------------------------------------------------------
    def _then(self, node: Node | None) -> OfferTemplate:
        r = self.reader
        keys = r.mapping(node, "then", ("offer",), ("offer",)) if node else None
        offer = r.optional(
            keys, "offer", "then", lambda n, p: r.mapping(n, p, _OFFER_KEYS, ("title",))
        )
        if not offer:
            return OfferTemplate(Template(()), Template(()), None, None, DEFAULT_EXPIRES_IN)
        code = self._text(offer.get("code"), "then.offer.code")
        pool = self._pool(offer.get("code_pool"))
        if code is not None and pool is not None:
            msg = "an offer has either a fixed code or a code_pool, not both"
            r.error(offer["code_pool"], "then.offer.code_pool", msg)
        has_code = code is not None or pool is not None
        return OfferTemplate(
            title=self._template(offer.get("title"), "then.offer.title", has_code),
            body=self._template(offer.get("body"), "then.offer.body", has_code),
            code=code,
            code_pool=pool,
            url=self._text(offer.get("url"), "then.offer.url"),
            expires_in=self._expires_in(offer.get("expires_in")),
        )

    def _expires_in(self, node: Node | None) -> float:
        """`then.offer.expires_in`, within what an MQTT v5 message expiry can carry."""
        path = "then.offer.expires_in"
        seconds = self.reader.duration(node, path) if node is not None else None
        if seconds is not None and not MIN_EXPIRES_IN_S <= seconds <= MAX_EXPIRES_IN_S:
            msg = "an offer must stay valid from 1s to 365d (MQTT expiry is whole seconds ≥ 1)"
            self.reader.error(node, path, msg)
        return DEFAULT_EXPIRES_IN if seconds is None else seconds

    def _pool(self, node: Node | None) -> str | None:
        """A code pool id.  Pools are data (imported codes), so any well-formed id is
        accepted here; an unknown or empty pool shows at run time as an exhausted one."""
        pool = self._text(node, "then.offer.code_pool") if node is not None else None
        if pool is not None and not _ID.match(pool):
            msg = f"bad code pool id '{pool}' (use letters, digits, - _ .)"
            self.reader.error(node, "then.offer.code_pool", msg)
            return None
        return pool

    def _template(self, node: Node | None, path: str, has_code: bool) -> Template:
        text = self._text(node, path) if node is not None else ""
        declared = self.config.customers.attributes
        return read_template(self.reader, text or "", node, path, has_code, declared)

    def _limits(self, node: Node | None) -> Limits:
        r = self.reader
        keys = r.mapping(node, "limits", ("per_customer", "total", "cooldown")) if node else None
        path = "limits.per_customer"
        per_customer = r.optional(
            keys, "per_customer", "limits", lambda n, p: r.mapping(n, p, ("max", "per"), ("max",))
        )
        total = r.optional(
            keys, "total", "limits", lambda n, p: r.mapping(n, p, ("max",), ("max",))
        )
        per = r.optional(per_customer, "per", path, lambda n, p: read_period(r, n, p))
        return Limits(
            per_customer_max=r.optional(per_customer, "max", path, lambda n, p: r.integer(n, p, 1)),
            per=per or Period.LIFETIME,
            total_max=r.optional(total, "max", "limits.total", lambda n, p: r.integer(n, p, 1)),
            cooldown=r.optional(keys, "cooldown", "limits", r.duration),
        )


def _broken(file: str) -> Rule:
    empty = OfferTemplate(Template(()), Template(()), None, None, DEFAULT_EXPIRES_IN)
    return Rule(
        "", "", Purpose.COMMERCIAL, Trigger(TriggerKind.ENTER), lambda _: None, empty, file=file
    )
