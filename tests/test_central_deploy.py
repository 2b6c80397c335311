"""deploy/central/ and `rayon bridge render`: the hand-made schema is the collector's, and the
rendered bridge section carries the certificate, cleansession false, QoS 1 and the store's
own chain topics only; a config missing what the bridge needs says what to add."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from gateway.central.bridge import render_bridge
from gateway.central.ingest import CentralDb
from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.errors import RuntimeFailure
from tests.broker import free_port
from tests.stores import ROOT

CENTRAL = ROOT / "deploy" / "central"


def _shape(url: str) -> dict[str, object]:
    engine = create_engine(url)
    insp = inspect(engine)
    shape: dict[str, object] = {
        t: (
            sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)),
            insp.get_pk_constraint(t)["constrained_columns"],
            sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t)),
        )
        for t in insp.get_table_names()
    }
    engine.dispose()
    return shape


def test_schema_sql_is_the_collectors_schema(postgres_url: str, tmp_path: Path) -> None:
    CentralDb(postgres_url).close()
    made = _shape(postgres_url)
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TABLE chain_records, chain_marks, chain_ranges, rayon_central_schema"
        )
        conn.exec_driver_sql((CENTRAL / "schema.sql").read_text(encoding="utf-8"))
    engine.dispose()
    assert _shape(postgres_url) == made
    again = CentralDb(postgres_url)  # a hand-made schema is one the collector accepts
    assert again.upgraded == []
    again.close()


def _config(tmp_path: Path, central: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "store: {id: paris-11, name: Paris 11, timezone: Europe/Paris}\n" + central,
        encoding="utf-8",
    )
    return path


BRIDGE = """central:
  enabled: true
  bridge:
    host: mqtt.chain.example.com
    ca_file: /etc/rayon/central-ca.crt
    cert_file: /etc/rayon/store.crt
    key_file: /etc/rayon/store.key
"""


def test_the_bridge_section_is_the_stores_own_topics_with_its_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bridge", "render", "-c", str(_config(tmp_path, BRIDGE))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "address mqtt.chain.example.com:8883" in lines
    assert "cleansession false" in lines and "bridge_insecure false" in lines
    assert "notifications_local_only true" in lines  # the centre's ACL allows batches only
    assert "bridge_certfile /etc/rayon/store.crt" in lines
    assert "bridge_keyfile /etc/rayon/store.key" in lines
    topics = [line for line in lines if line.startswith("topic ")]
    assert topics == [
        "topic chain/batch out 1 rayon/paris-11/ rayon/paris-11/",
        "topic chain/ack in 1 rayon/paris-11/ rayon/paris-11/",
        "topic chain/backfill in 1 rayon/paris-11/ rayon/paris-11/",
        "topic chain/erased in 1 rayon/paris-11/ rayon/paris-11/",
    ]


def test_the_bridge_never_carries_the_consoles_live_topics(tmp_path: Path) -> None:
    """The console's positions and ticker stay in the store: neither the rendered bridge nor
    the commented one of the shipped mosquitto.conf names them, whatever `console:` says."""
    console = (
        "console: {listen: 127.0.0.1:8080}\nmqtt: {console: {username: rayon-paris-11-console}}\n"
    )
    config = load_config(_config(tmp_path, BRIDGE + console))
    assert config.mqtt.console is not None
    section = render_bridge(config)
    topics = [line.split()[1] for line in section.splitlines() if line.startswith("topic ")]
    assert topics and all(t.startswith("chain/") for t in topics)
    assert "console" not in section
    shipped = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    bridged = [line for line in shipped.splitlines() if line.lstrip("#").startswith("topic ")]
    assert bridged and not [line for line in bridged if "console" in line]


def test_a_bridge_without_a_certificate_says_what_to_add(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "central:\n  bridge: {host: c.example.com}\n"))
    with pytest.raises(RuntimeFailure, match=r"central.bridge.ca_file, central.bridge.cert_file"):
        render_bridge(config)
    bare = load_config(_config(tmp_path, ""))
    with pytest.raises(RuntimeFailure, match=r"no central\.bridge section"):
        render_bridge(bare)
    assert "bridge_certfile" not in render_bridge(bare, address="127.0.0.1:1883", plain=True)


def test_central_is_off_by_default_and_its_keys_are_checked(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path, "")).central.enabled is False
    bad = _config(tmp_path, "central:\n  batch: 0\n  in_flight: x\n")
    with pytest.raises(Exception, match=r"central\.batch") as caught:
        load_config(bad)
    assert "central.in_flight" in str(caught.value)


def test_rayon_central_says_what_is_wrong_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAYON_CENTRAL_DB", raising=False)
    assert main(["central"]) == 3
    assert "no central database: give --db postgresql+psycopg://" in capsys.readouterr().err
    assert main(["central", "--db", f"sqlite:///{tmp_path / 'c.db'}"]) == 3
    assert "rayon central writes to PostgreSQL, not sqlite" in capsys.readouterr().err
    assert main(["central", "--db", "postgresql+psycopg://x/y", "--retention-days", "-5"]) == 2
    assert "--retention-days -5 would delete recent records" in capsys.readouterr().err


def test_rayon_central_without_its_broker_says_so(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    assert main(["central", "--db", postgres_url, "--port", str(port)]) == 3
    err = capsys.readouterr().err
    assert f"rayon: no connection to the central broker at localhost:{port}" in err
    assert "check --host, --port" in err and "config.yaml" not in err


def test_doctor_tells_when_the_centre_acknowledges_nothing(tmp_path: Path) -> None:
    from gateway.ops.doctor import check_chain
    from gateway.store.repo import Store
    from tests.chain import zone_events

    db = tmp_path / "rayon.db"
    path = _config(tmp_path, f"database: {{url: 'sqlite:///{db}'}}\ncentral: {{enabled: true}}\n")
    config = load_config(path)
    assert check_chain(config).lines()[0].startswith("✓ chain: the centre has acknowledged every")
    store = Store(config.database.url, journal=True)
    store.record_events(zone_events(3, start=1_000_000.0))
    store.close()
    fresh = check_chain(config, now=1_000_000.0 + 600).lines()
    assert fresh[0].startswith("✓ chain: 3 journal row(s) wait for the centre, the oldest for 10")
    stale = "\n".join(check_chain(config, now=1_000_000.0 + 7200).lines())
    assert stale.startswith("✗ chain: 3 journal row(s) wait for the centre, the oldest for 120")
    assert "rayon/paris-11/bridge/state" in stale and "rayon central" in stale


def test_the_collector_writes_into_monthly_partitions(postgres_url: str) -> None:
    from gateway.central.wire import Batch
    from gateway.store.uplink import UplinkEntry

    engine = create_engine(postgres_url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute((CENTRAL / "partitioned.sql").read_text(encoding="utf-8"))
        cursor.execute("SELECT rayon_chain_partition('2026-12-01')")
        raw.commit()
    finally:
        raw.close()
    central = CentralDb(postgres_url)
    try:
        assert central.upgraded == []  # version 1, as the file says
        december = 1_796_083_200.0  # 2026-12-01T00:00:00Z
        rows = [
            UplinkEntry(s, "event", december + s, "c1" if s == 2 else None, "d", {})
            for s in (1, 2, 3)
        ]
        batch = Batch("paris-11", 0, 3, tuple(rows))
        assert central.ingest(batch).written == 3
        assert central.ingest(batch).written == 0  # a copy: nothing doubled
        erase = UplinkEntry(4, "erase", december + 4, None, None, {"customer": "c1", "devices": []})
        assert central.ingest(Batch("paris-11", 3, 4, (erase,))).erased == ((4, 1),)
    finally:
        central.close()
    with engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT tableoid::regclass::text, seq FROM chain_records ORDER BY seq"
        ).all()
    engine.dispose()
    assert found == [
        ("chain_records_2026_12", 1),
        ("chain_records_2026_12", 3),
        ("chain_records_2026_12", 4),
    ]
