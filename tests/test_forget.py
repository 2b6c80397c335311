"""`rayon forget`: nothing of the customer is left in the database, the saved live state or
the broker, nothing of the others is lost, and a running gateway forgets them at once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.identity.model import Customer
from gateway.store.persist import RUNTIME_KEY
from gateway.store.repo import Store
from tests.broker import Mosquitto, Subscriber
from tests.history import CUSTOMERS, dump, fill, traces_of
from tests.stores import rayon, reference_store
from tests.test_run import entrance_reports, start_daemon, stop_daemon
from tests.walks import click_collect_customer

ONE, TWO = CUSTOMERS
BASE = "rayon/paris-11"


def filled(folder: Path, port: int = 1) -> tuple[Path, str]:
    config_path = reference_store(folder, port=port)
    config = load_config(config_path)
    store = Store(config.database.url)
    try:
        fill(store, config)
    finally:
        store.close()
    return config_path, config.database.url


def assert_forgotten_and_others_kept(url: str) -> None:
    everything = dump(url)
    for trace in traces_of(ONE):
        assert trace not in everything, f"{trace} left behind"
    for trace in traces_of(TWO)[:3]:
        assert trace in everything, f"{trace} of another customer lost"
    store = Store(url)
    try:
        state = json.dumps(store.load_runtime(RUNTIME_KEY))
        assert TWO.devices[0] in state  # the other customer's live state is still there
        assert {c for _, _, c, _ in store.codes()} == {None, "c2"}  # A1 spent, unlinked
        assert {p.customer for p in store.positions()} == {"c2"}
        assert {o.customer for o in store.offers()} == {"c2"}
        assert len(store.feedback()) == 1 and store.visits() and store.events()
    finally:
        store.close()


def test_the_history_has_something_of_everyone_to_forget(tmp_path: Path) -> None:
    _, url = filled(tmp_path)
    everything = dump(url)
    for trace in traces_of(ONE)[:3] + traces_of(TWO)[:3]:
        assert trace in everything
    store = Store(url)
    try:
        assert ONE.devices[0] in json.dumps(store.load_runtime(RUNTIME_KEY))
        assert {p.customer for p in store.positions()} == {"c1", "c2"}
    finally:
        store.close()


def test_forget_leaves_nothing_of_the_customer_and_everything_of_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, url = filled(tmp_path)
    assert main(["forget", "c1", "-c", str(config_path), "--offline"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("customer c1: erased ") and "1 customers" in out and "codes" in out
    assert "saved live state cleaned" in out
    assert_forgotten_and_others_kept(url)
    assert main(["forget", "c1", "-c", str(config_path), "--offline"]) == 0  # idempotent
    assert "nothing stored in the database" in capsys.readouterr().out


def test_forget_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    config_path = reference_store(tmp_path, database={"url": postgres_url})
    config = load_config(config_path)
    store = Store(postgres_url)
    try:
        fill(store, config)
    finally:
        store.close()
    assert main(["forget", "c1", "-c", str(config_path), "--offline"]) == 0
    assert_forgotten_and_others_kept(postgres_url)


def test_with_the_broker_down_the_database_is_erased_and_the_exit_says_to_retry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, url = filled(tmp_path, port=1)  # nothing listens on port 1
    assert main(["forget", "c1", "-c", str(config_path)]) == 3
    err = capsys.readouterr().err
    assert "127.0.0.1:1 was not told" in err and "run this command again" in err
    assert_forgotten_and_others_kept(url)


@pytest.mark.mqtt
def test_a_running_gateway_forgets_the_customer_and_the_retained_record_is_cleared(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    config_path = reference_store(tmp_path, port=mosquitto.port)
    url = load_config(config_path).database.url
    status = subscriber(f"{BASE}/gateway/status")
    daemon = start_daemon(config_path)
    try:
        status.wait(1, timeout=30)
        phone = subscriber(f"{BASE}/offers/t-cc-1")
        customer = click_collect_customer("c-cc-1", "t-cc-1", 1)
        phone.publish(f"{BASE}/crm/customers/c-cc-1", json.dumps(customer).encode(), retain=True)
        for node, adverts in entrance_reports(config_path, time.time()).items():
            phone.publish(f"{BASE}/scanners/{node}/adv", json.dumps(adverts).encode(), qos=0)
        phone.wait(1, timeout=20)  # the gateway knows and tracks her: an offer came
        crm = subscriber(f"{BASE}/crm/customers/#")
        crm.wait(1)  # the retained record
        result = rayon("forget", "c-cc-1", "-c", str(config_path))
        assert result.returncode == 0, result.stderr
        assert "cleared the retained record" in result.stdout
        assert crm.wait(2)[1].payload == b""  # the erase went out
        _wait_for(lambda: "c-cc-1" not in dump(url) and "t-cc-1" not in dump(url))
    finally:
        stop_daemon(daemon)
    everything = dump(url)  # the gateway's last save of its live state included
    assert "c-cc-1" not in everything and "t-cc-1" not in everything
    assert customer["devices"][0] not in everything  # type: ignore[index]
    late = subscriber(f"{BASE}/crm/customers/#")  # a restarting gateway learns nothing back
    with pytest.raises(TimeoutError):
        late.wait(1, timeout=1.0)


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("not forgotten in time")
        time.sleep(0.2)


@pytest.mark.parametrize("customer", ["a/b", "c+1", "c 1"])
def test_an_id_breaking_the_rule_that_nobody_has_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], customer: str
) -> None:
    config_path, url = filled(tmp_path, port=1)
    before = dump(url)
    assert main(["forget", customer, "-c", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert "a customer id must be 1 to 128 of A-Z a-z 0-9 _ . ~ - @ :" in err, err
    assert "nothing erased" in err
    assert dump(url) == before


def test_an_id_imported_before_the_rule_is_erased_and_the_broker_step_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Import used to accept `/` and `+` in an id: such a customer is erased from the
    database and the saved live state, with no broker step (no topic can name them; port 1
    answers nothing, so trying would exit 3)."""
    config_path, url = filled(tmp_path, port=1)
    store = Store(url)
    try:
        store.upsert_customer(Customer(id="legacy/7+x", token="tok-legacy"))
    finally:
        store.close()
    assert main(["forget", "legacy/7+x", "-c", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("customer legacy/7+x: erased 1 customers") and "live state" in out
    assert "no retained record can exist" in out and "broker not contacted" in out
    assert "legacy/7+x" not in dump(url) and "tok-legacy" not in dump(url)
    assert "c1" in dump(url) and "c2" in dump(url)
