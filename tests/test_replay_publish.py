"""`rayon replay` is safe: it publishes only with --publish (--dry-run means the default),
checks the broker and its password file before it reads the trace, and publishes each offer
as it is decided, in event-time order, with the expiry it had then."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.identity.model import Consent, Customer
from gateway.store.repo import Store
from tests.broker import Mosquitto, Subscriber
from tests.stores import rayon, reference_store
from tests.test_backtest_recorded import TV_RULE
from tests.walks import STORE_UUID, tv_aisle_walk, walk_adverts, write_walk

BASE = "rayon/paris-11"
WALKS = (("c-1", "t-1", 1, "15:00"), ("c-2", "t-2", 2, "15:40"))


def _store(tmp_path: Path, port: int, **overrides: Any) -> Path:
    """Two TV fans, each walking to the TV aisle once (15:00 and 15:40): two offers."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "tv.yaml").write_text(TV_RULE.format(per_day=1), "utf-8")
    config_path = reference_store(tmp_path, port=port, rules_dir="rules", **overrides)
    config = load_config(config_path)
    store = Store(config.database.url)
    adverts = []
    for cid, token, minor, hhmm in WALKS:
        store.upsert_customer(
            Customer(
                cid,
                token,
                devices=(f"ibeacon:{STORE_UUID}:1000:{minor}",),
                consent=Consent(instore_location=True, marketing_push=True),
                interests=frozenset({"tv"}),
            )
        )
        start = parse_local_time(f"2026-03-03T{hhmm}:00", config.store.timezone)
        adverts += walk_adverts(config, minor, tv_aisle_walk(config, start), start)
    store.close()
    write_walk(tmp_path / "trace.jsonl", sorted(adverts, key=lambda a: a.at))
    return config_path


def _db(folder: Path) -> str:
    return hashlib.sha256((folder / "rayon.db").read_bytes()).hexdigest()


def _nothing_published(phones: Subscriber) -> None:
    phones.publish(f"{BASE}/probe", b"after the replay")
    assert [m.topic for m in phones.wait(1)] == [f"{BASE}/probe"]


@pytest.mark.mqtt
@pytest.mark.parametrize("flags", [[], ["--dry-run"]])
def test_without_publish_nothing_goes_out_and_no_database_is_written(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], flags: list[str]
) -> None:
    config = _store(tmp_path, mosquitto.port)
    phones = subscriber(f"{BASE}/#")
    before = _db(tmp_path)
    offers = tmp_path / "offers.jsonl"
    result = rayon("replay", str(tmp_path / "trace.jsonl"), "-c", str(config),
                   "--offers-out", str(offers), *flags)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(offers.read_text("utf-8").splitlines()) == 2
    assert "nothing published" in result.stderr and "--publish" in result.stderr
    _nothing_published(phones)
    assert _db(tmp_path) == before


@pytest.mark.mqtt
def test_publish_sends_each_offer_as_decided_in_event_time_order(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    config = _store(tmp_path, mosquitto.port)
    phones = subscriber(f"{BASE}/offers/+")
    result = rayon("replay", str(tmp_path / "trace.jsonl"), "-c", str(config), "--publish")
    assert result.returncode == 0, result.stderr
    got = phones.wait(2)
    assert [m.topic for m in got] == [f"{BASE}/offers/t-1", f"{BASE}/offers/t-2"]
    created = [json.loads(m.payload)["created_at"] for m in got]
    assert created == sorted(created)
    for m in got:  # sent when decided, on the trace's clock: the whole 3 h left, not 2 h 20
        assert m.expiry_s is not None and m.expiry_s > 3 * 3600 - 5
    assert "published 2 offer(s) as decided" in result.stderr


def test_publish_checks_the_password_file_before_reading_the_trace(tmp_path: Path) -> None:
    config = _store(tmp_path, 1)
    raw = yaml.safe_load(config.read_text("utf-8"))
    raw["mqtt"]["password_file"] = str(tmp_path / "missing.secret")
    config.write_text(yaml.safe_dump(raw), "utf-8")
    offers = tmp_path / "offers.jsonl"
    result = rayon("replay", str(tmp_path / "trace.jsonl"), "-c", str(config), "--publish",
                   "--offers-out", str(offers))  # fmt: skip
    assert result.returncode == 3
    assert "missing.secret" in result.stderr and "nothing was replayed" in result.stderr
    assert "Traceback" not in result.stderr and "replayed" not in result.stderr.split(";")[0]
    assert not offers.exists()  # the trace was not read


def test_publish_checks_the_broker_before_reading_the_trace(tmp_path: Path) -> None:
    config = _store(tmp_path, 1)  # nothing listens on port 1
    offers = tmp_path / "offers.jsonl"
    result = rayon("replay", str(tmp_path / "trace.jsonl"), "-c", str(config), "--publish",
                   "--offers-out", str(offers))  # fmt: skip
    assert result.returncode == 3 and "nothing was replayed" in result.stderr
    assert "rayon doctor" in result.stderr and not offers.exists()


def test_contradictory_flags_and_a_missing_trace(tmp_path: Path) -> None:
    config = _store(tmp_path, 1)
    both = rayon("replay", str(tmp_path / "trace.jsonl"), "-c", str(config), "--publish",
                 "--dry-run")  # fmt: skip
    assert both.returncode == 2 and "keep one" in both.stderr
    missing = rayon("replay", str(tmp_path / "nope.jsonl"), "-c", str(config))
    assert missing.returncode == 1 and "nope.jsonl: no such trace file" in missing.stderr
