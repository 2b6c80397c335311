"""`rayon rules promote DRAFT`: checked like `rayon check`, its backtest delta on the last
recorded day shown, swapped into rules_dir atomically with the old set kept, reloaded by a
running gateway, and logged."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.cli.promote import AUDIT_LOG, promote
from gateway.clock import ManualClock
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.deliver.connect import connect_link
from gateway.runtime.app import Gateway
from gateway.store.repo import Store
from tests.broker import Mosquitto
from tests.stores import reference_store
from tests.test_backtest_recorded import TV_RULE, make_recorded


def _files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text("utf-8") for p in sorted(folder.glob("*.yaml"))}


def test_a_checked_draft_goes_live_with_the_old_set_kept_and_a_log_line(tmp_path: Path) -> None:
    config = make_recorded(tmp_path)
    live, draft = config.rules_dir, tmp_path / "draft"
    old, new = _files(live), _files(draft)
    out = io.StringIO()
    assert promote(config, draft, yes=True, out=out) == 0
    text = out.getvalue()
    assert "the rules load and their tests pass" in text
    assert "side by side" in text and "checkout-new (new)" in text
    assert _files(live) == new
    (backup,) = tmp_path.glob("live.bak-*")
    assert _files(backup) == old
    (line,) = (tmp_path / AUDIT_LOG).read_text("utf-8").splitlines()
    entry = json.loads(line)
    assert entry["who"] and entry["at"].endswith("+00:00")
    assert (entry["added"], entry["removed"], entry["changed"]) == (
        ["checkout-new.yaml"],
        [],
        ["tv.yaml"],
    )
    assert entry["backup"] == str(backup) and set(entry["rules"]) == set(new)
    assert set(entry["backtest_last_day"]) == {"live_offers", "draft_offers"}
    assert not list(tmp_path.glob(".live.promote-*"))  # no staging folder left


def test_a_draft_with_an_error_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_recorded(tmp_path)
    draft = tmp_path / "draft"
    (draft / "tv.yaml").write_text(TV_RULE.format(per_day=2).replace("aisle-tv", "aisle-tvs"))
    before = _files(config.rules_dir)
    assert main(["rules", "promote", str(draft), "-c", str(config.path), "--yes"]) == 1
    captured = capsys.readouterr()
    assert "unknown zone 'aisle-tvs'" in captured.out and "not promoted" in captured.err
    assert _files(config.rules_dir) == before and not (tmp_path / AUDIT_LOG).exists()


def test_without_yes_it_only_shows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_recorded(tmp_path)
    before = _files(config.rules_dir)
    assert main(["rules", "promote", str(tmp_path / "draft"), "-c", str(config.path)]) == 1
    captured = capsys.readouterr()
    assert "side by side" in captured.out and "run again with --yes" in captured.err
    assert _files(config.rules_dir) == before and not list(tmp_path.glob("live.bak-*"))


def test_bad_folders_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_recorded(tmp_path)
    c = str(config.path)
    assert main(["rules", "promote", str(tmp_path / "nope"), "-c", c]) == 1
    assert "nope: no such folder" in capsys.readouterr().err
    assert main(["rules", "promote", str(config.rules_dir), "-c", c]) == 1
    assert "is the live rules folder itself" in capsys.readouterr().err


def test_without_a_recording_it_says_so_and_promotes(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "tv.yaml").write_text(TV_RULE.format(per_day=1), "utf-8")
    (tmp_path / "draft").mkdir()
    (tmp_path / "draft" / "tv.yaml").write_text(TV_RULE.format(per_day=2), "utf-8")
    config = load_config(reference_store(tmp_path, rules_dir="live"))
    out = io.StringIO()
    assert promote(config, tmp_path / "draft", yes=True, out=out) == 0
    assert "no recording in" in out.getvalue() and "max: 2" in _files(config.rules_dir)["tv.yaml"]


@pytest.mark.mqtt
def test_a_running_gateway_reloads_the_promoted_set(tmp_path: Path, mosquitto: Mosquitto) -> None:
    make_recorded(tmp_path)
    config: Config = load_config(reference_store(tmp_path, port=mosquitto.port, rules_dir="live"))

    async def scenario() -> tuple[int, int]:
        store = Store(config.database.url)
        link = await connect_link(config)
        gateway = await Gateway.start(config, store=store, link=link, clock=ManualClock(0.0))
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        before = gateway.rules_state.count
        code = await asyncio.to_thread(promote, config, tmp_path / "draft", yes=True,
                                       out=io.StringIO())  # fmt: skip
        assert code == 0
        async with asyncio.timeout(20):
            while gateway.rules_state.count == before:
                await asyncio.sleep(0.1)
        stop.set()
        await running
        await link.disconnect()
        store.close()
        return before, gateway.rules_state.count

    assert asyncio.run(scenario()) == (1, 2)
