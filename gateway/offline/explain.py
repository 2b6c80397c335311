"""`rayon explain --customer C --rule R --at TIME [--trace F]`: why a rule did or did not fire.

Without a trace, nothing says whether the trigger happened: the explanation says so, marks
the trigger "not observed" and evaluates the rest at TIME against the customer as the database
knows them, with the caps of the offers already decided (`gateway.rules.explain`).  With a
trace, the trace is replayed up to TIME through the pipeline (nothing is written or published)
and the last decision about that customer and rule is explained, with the caps, visits and
pools of that replay; a trace without such a decision is said so, on stdout with the rest.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from gateway.config.commandline import config_of, local_time
from gateway.config.model import Config
from gateway.errors import InvalidInput
from gateway.identity.model import Customer, CustomerRegistry
from gateway.offline.replay import replay
from gateway.pipeline import Pipeline
from gateway.rules.explain import explain_at
from gateway.rules.explanation import Explanation, format_explanation
from gateway.rules.load import load_rules
from gateway.rules.model import RuleSet
from gateway.sources.trace import TraceError, read_trace
from gateway.store.persist import load_pools
from gateway.store.repo import Store
from gateway.store.tables import NOT_DECIDED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon explain`."""
    parser.add_argument("--customer", required=True, help="customer id")
    parser.add_argument("--rule", required=True, help="rule id")
    parser.add_argument(
        "--at",
        required=True,
        help="local time in the store's timezone (ISO 8601), e.g. 2026-03-03T15:00:31",
    )
    parser.add_argument(
        "--trace", help="replay this trace up to --at and explain its last decision"
    )


def run(args: argparse.Namespace) -> int:
    """`rayon explain` with the config that -c names."""
    config = config_of(args)
    trace = Path(args.trace) if args.trace else None
    return run_explain(config, args.customer, args.rule, local_time(args.at, config), trace)


def run_explain(
    config: Config, customer_id: str, rule_id: str, at: float, trace: Path | None
) -> int:
    rules = load_rules(config.rules_dir, config)
    store = Store(config.database.url)
    try:
        customers = CustomerRegistry(store.load_customers())
        customer = customers.get(customer_id)
        if customer is None:
            raise InvalidInput(
                f"no customer {customer_id!r} in {config.database.url}: import "
                "them with `rayon customers import` or check the id"
            )
        pipeline = Pipeline(config, rules, customers, pools=load_pools(store))
        if trace is None:
            offered = [r.offer for r in store.offer_log() if r.state not in NOT_DECIDED]
            pipeline.restore(None, offered)
    finally:
        store.close()
    explanation = (
        _from_trace(pipeline, rules, customer, rule_id, at, trace)
        if trace
        else explain_at(rules, config, customer, rule_id, at, engine=pipeline.engine)
    )
    sys.stdout.write(format_explanation(explanation))
    return 0


def _from_trace(
    pipeline: Pipeline, rules: RuleSet, customer: Customer, rule_id: str, at: float, trace: Path
) -> Explanation:
    explain_at(rules, pipeline.config, customer, rule_id, at)  # the rule exists, or say so now
    pipeline.engine.watch(customer.id, rule_id)
    until = itertools.takewhile(
        lambda i: isinstance(i, TraceError) or i.at <= at, read_trace(trace)
    )
    replay(pipeline, until, lambda _out: None, flush=False)  # the ticks `rayon replay` makes
    if pipeline.engine.explanations:
        return pipeline.engine.explanations[-1]
    note = (
        f"the trace {trace.name} has no decision about {customer.id} and {rule_id} up to that "
        "time: the trigger was not observed"
    )
    engine = pipeline.engine
    return explain_at(rules, pipeline.config, customer, rule_id, at, engine=engine, note=note)
