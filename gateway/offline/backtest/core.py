"""`backtest`: the rules over inputs, counted per rule — the same `Pipeline` and `replay` as
`rayon replay`, with an engine that also keeps, for every rule considered that did not fire,
the engine's reason.  Publishes nothing, stores nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from gateway.config.model import Config
from gateway.events import Offer, TraceItem
from gateway.identity.model import Customer, CustomerRegistry
from gateway.offline.backtest.result import BacktestResult, Tally
from gateway.offline.replay import replay
from gateway.pipeline import Output, Pipeline
from gateway.rules.engine import RuleEngine
from gateway.rules.model import RuleSet
from gateway.sources.trace import TraceError


def backtest(
    config: Config,
    rules: RuleSet,
    customers: Sequence[Customer],
    items: Iterable[TraceItem | TraceError],
    *,
    trace: str = "",
    rules_dir: str = "",
    offered: Sequence[Offer] = (),
) -> BacktestResult:
    """Run `items` through the pipeline with `rules`, the caps counting `offered` (offers
    made before the items); publish nothing, store nothing."""
    tally = Tally(config.store.timezone)
    engine = RuleEngine(rules, config, on_evaluation=tally.record)
    pipeline = Pipeline(config, rules, CustomerRegistry(customers), engine=engine)
    pipeline.restore(None, offered)
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
