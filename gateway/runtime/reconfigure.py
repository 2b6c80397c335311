"""Reloading config.yaml in a running gateway (SIGHUP): the floor plan, identity, visits and
rules apply at once, keeping every track, visit, cap and counter; what the process is built
around (the store's id, the broker, the database, the radio) needs a restart."""

from __future__ import annotations

import dataclasses

from gateway.config.model import Config
from gateway.pipeline import Pipeline
from gateway.rules.codepools import CodePools
from gateway.rules.engine import RuleEngine
from gateway.rules.model import RuleSet

RESTART_SECTIONS = ("store", "mqtt", "database", "sources", "record")


def restart_needed(old: Config, new: Config) -> list[str]:
    """The sections that changed but only apply at the next start."""
    return [name for name in RESTART_SECTIONS if getattr(old, name) != getattr(new, name)]


def carried_over(old: Config, new: Config) -> Config:
    """`new`, with the sections that need a restart kept as they run now."""
    return dataclasses.replace(new, **{name: getattr(old, name) for name in RESTART_SECTIONS})


def rebuild(old: Pipeline, config: Config, rules: RuleSet, pools: CodePools) -> Pipeline:
    """A pipeline for the new config that carries on the old one's state: the rules' ledger
    and visits, zone timers (stays in zones that no longer exist are dropped), counters."""
    engine = RuleEngine(rules, config, old.engine.ledger, pools=pools)
    engine.restore(old.engine.snapshot())
    new = Pipeline(config, rules, old.customers, engine=engine)
    new.zones.restore(old.zones.snapshot())
    new.keep = old.keep  # the recording goes on
    new.counters, new.anchor_adverts, new.anchor_last = (
        old.counters,
        old.anchor_adverts,
        old.anchor_last,
    )
    return new
