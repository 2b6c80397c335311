"""A simulated morning in the reference store, replayed into a database, for `rayon report` tests.

`simulated_day` runs the real commands in-process (`rayon simulate`, `customers import`,
`replay` against a private Mosquitto, so that offers really go through the outbox and end
`sent` or `expired`), then adds what a replay cannot produce: the app's feedback (a fixed
plan, `FEEDBACK_PLAN`) and a code pool with codes handed out (through the Store API).  The
shipped rules run with a 40 % store-wide holdout, so the commercial rules have control groups.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.events import FeedbackState
from gateway.rules.codepools import Assignment
from gateway.store.repo import Store
from tests.stores import ROOT, reference_store

START = "2026-03-03T09:00"  # a Tuesday morning, Europe/Paris
SINCE, UNTIL = "2026-03-03T09:00", "2026-03-03T12:00"
POOL, POOL_CODES = "tv15", [f"TV15-{i:03d}" for i in range(10)]


def rayon_main(*args: str) -> int:
    """`rayon ARGS` in this process; the root logger the command configures is put back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return main(list(args))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@dataclass(frozen=True)
class Day:
    folder: Path
    config: Path
    truth: Path
    events: Path
    offers: Path
    customers: Path
    trace_end: float  # the trace's last time: the outbox was drained on that clock

    def report_json(self, *extra: str, config: Path | None = None) -> dict[str, Any]:
        out = self.folder / "report.json"
        args = ["report", "-c", str(config or self.config), "--since", SINCE, "--until", UNTIL]
        assert rayon_main(*args, "--format", "json", "-o", str(out), *extra) == 0
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result


def holdout_rules(folder: Path) -> Path:
    """The shipped rules with a 40 % store-wide holdout (the rules without their own)."""
    rules = folder / "rules"
    shutil.copytree(ROOT / "rules", rules)
    policy = rules / "policy.yaml"
    text = policy.read_text(encoding="utf-8")
    assert "holdout: 0%" in text
    policy.write_text(text.replace("holdout: 0%", "holdout: 40%"), encoding="utf-8")
    return rules


def simulated_day(folder: Path, broker_port: int, shoppers: int = 40, minutes: int = 120) -> Day:
    """Simulate, import, replay; then feedback and codes (see the module docstring)."""
    holdout_rules(folder)
    config = reference_store(folder, port=broker_port, rules_dir="rules")
    files = {k: folder / f"{k}.jsonl" for k in ("trace", "truth", "customers", "events", "offers")}
    sim = ["simulate", "-c", str(config), "--shoppers", str(shoppers), "--minutes", str(minutes)]
    sim += ["--seed", "11", "--start", START, "-o", str(files["trace"])]
    sim += ["--truth", str(files["truth"]), "--customers", str(files["customers"])]
    assert rayon_main(*sim) == 0
    assert rayon_main("customers", "import", str(files["customers"]), "-c", str(config)) == 0
    replay = ["replay", str(files["trace"]), "-c", str(config), "--publish"]
    replay += ["--events-out", str(files["events"]), "--offers-out", str(files["offers"])]
    assert rayon_main(*replay) == 0
    trace_end = read_jsonl(files["trace"])[-1]["at"]
    day = Day(folder, config, files["truth"], files["events"], files["offers"],
              files["customers"], trace_end)  # fmt: skip
    _feedback_and_codes(day)
    return day


def sent_offers(day: Day) -> list[dict[str, Any]]:
    """The offers of the offers file that the outbox sent: every one, since `rayon replay
    --publish` publishes each as it is decided, on the trace's clock."""
    return [o for o in read_jsonl(day.offers) if epoch(o["expires_at"]) > epoch(o["created_at"])]


def feedback_plan(index: int) -> list[FeedbackState]:
    """What the app says about the index-th sent offer (by id): every one delivered (the first
    twice: a repeat must count once), every second opened, every third redeemed, the others
    dismissed."""
    plan = [FeedbackState.DELIVERED] * (2 if index == 0 else 1)
    plan += [FeedbackState.OPENED] if index % 2 == 0 else [FeedbackState.DISMISSED]
    plan += [FeedbackState.REDEEMED] if index % 3 == 0 else []
    return plan


def _feedback_and_codes(day: Day) -> None:
    store = Store(load_config(day.config).database.url)
    try:
        for i, offer in enumerate(sorted(sent_offers(day), key=lambda o: o["id"])):
            for state in feedback_plan(i):
                assert store.record_feedback(offer["id"], state, epoch(offer["created_at"]) + 60)
        store.import_codes(POOL, POOL_CODES)
        handed = [
            Assignment(POOL, POOL_CODES[0], "c-0001", epoch("2026-03-02T18:00+01:00")),
            Assignment(POOL, POOL_CODES[1], "c-0002", epoch("2026-03-03T09:30+01:00")),
            Assignment(POOL, POOL_CODES[2], "c-0003", epoch("2026-03-03T10:30+01:00")),
        ]
        store.commit(assignments=handed)
    finally:
        store.close()
