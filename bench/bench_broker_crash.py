"""The broker killed (SIGKILL) in the middle of a burst of offers, repeated: what the apps got.

    .venv/bin/python bench/bench_broker_crash.py [--runs 5] [--per-token 15] [--kill-after 360]
        [--autosave "autosave_interval 300"]

Each run is tests/brokercrash.py's `crash_run`, the scenario of tests/test_faults.py: a private
Mosquitto with the shipped persistence, the gateway's outbox publisher (with its resend) and
feedback door on a SQLite store, an app online during the burst and one offline; 2 × 20 tokens
get `--per-token` offers each (one in five expires 6 s after the burst starts, the others in an
hour); the broker is SIGKILLed once it acknowledged `--kill-after` of them, and restarted.

Prints, per run: the offers the broker had acknowledged at the kill and how many of them the
online app had received (the others were in the broker's memory), and for each app the
distinct offers received, `lost` (never received, still live), `dup` (copies beyond the first,
always under the same id and payload) and `late` (a copy received after its expires_at); then
`unconf.`, live offers no `delivered` feedback confirmed.  `--autosave LINE` (repeatable)
replaces the shipped save policy, e.g. the previous `autosave_interval 300`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.brokercrash import crash_run, shipped_persistence  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--per-token", type=int, default=15)
    ap.add_argument("--kill-after", type=int, default=360, help="offers acknowledged")
    ap.add_argument("--autosave", action="append", default=[], metavar="LINE")
    args = ap.parse_args()
    if args.runs < 1 or args.per_token < 1 or args.kill_after < 1:
        ap.error("--runs, --per-token and --kill-after must be at least 1")
    offers = 2 * 20 * args.per_token
    if args.kill_after >= offers:
        ap.error(f"--kill-after must be below the {offers} offers of the burst (mid-burst)")
    logging.basicConfig(level=logging.ERROR)  # the link's reconnect warnings are expected
    policy = args.autosave or [
        line for line in shipped_persistence(Path("/")) if line.startswith("autosave")
    ]
    print(f"broker SIGKILL mid-burst, {args.runs} runs; save policy: {'; '.join(policy)}")
    print(
        "run  offers  acked@kill  app@kill | online: got lost dup late "
        "| offline: got lost dup late | unconf.  seconds"
    )
    totals = [0, 0, 0]  # lost, dup, late
    for i in range(1, args.runs + 1):
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            run = crash_run(Path(tmp), args.per_token, args.kill_after, args.autosave)
        on, off = run.online, run.offline
        print(
            f"{i:3} {run.offers:7} {run.acked_at_kill:11} {run.online_at_kill:9} "
            f"| {on.received:11} {on.lost:4} "
            f"{on.duplicates:3} {on.late:4} | {off.received:12} {off.lost:4} {off.duplicates:3} "
            f"{off.late:4} | {run.unconfirmed:7} {time.monotonic() - started:8.1f}"
        )
        for k, (a, b) in enumerate(
            [(on.lost, off.lost), (on.duplicates, off.duplicates), (on.late, off.late)]
        ):
            totals[k] += a + b
    print(f"all runs: {totals[0]} lost, {totals[1]} duplicates (same id), {totals[2]} late")


if __name__ == "__main__":
    main()
