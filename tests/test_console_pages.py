"""The console's pages on a simulated morning replayed into a real SQLite database: the live
map, the rules with their states, firings and errors, the KPIs (JSON and CSV), the floor
picture behind login, and live text escaped on every page."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.clock import ManualClock
from gateway.config.load import load_config
from gateway.config.model import Config, ConsoleConfig, FloorPlanImage
from gateway.console.app import build_app
from gateway.console.kpis import TABLES
from gateway.console.web import Console
from gateway.ids import visit_pseudonym
from gateway.store.repo import Store
from gateway.topics import ConsoleLeaf, Topics
from tests.consolekit import log_in, make_console
from tests.report_day import Day, epoch, simulated_day
from tests.shopping import INES, LOYALTY_NUMBER, Shop, shop

NOON = epoch("2026-03-03T12:00+01:00")
AT = "2026-03-03T11:59:00+01:00"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory, mosquitto_module: Any) -> Day:
    return simulated_day(tmp_path_factory.mktemp("console-pages"), mosquitto_module.port)


def with_console(config: Config, folder: Path, **console: Any) -> Config:
    settings = ConsoleConfig(
        users_file=folder / "users", secret_file=folder / "key", audit_log=folder / "audit"
    )
    return replace(config, console=replace(settings, **console))


@pytest.fixture
def config(day: Day, tmp_path: Path) -> Config:
    return with_console(load_config(day.config), tmp_path)


@pytest.fixture
def console(config: Config) -> Console:
    return make_console(config, ManualClock(NOON))


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(build_app(console), base_url="https://testserver") as c:
        yield c


def feed(console: Console, topic: str, payload: dict[str, Any]) -> None:
    assert console.live.handle(topic, json.dumps(payload).encode()) is not None


def test_the_map_shows_the_plan_counts_and_the_ticker_newest_first(
    client: TestClient, console: Console
) -> None:
    t = Topics("rayon", "paris-11")
    feed(console, t.occupancy("aisle-tv"), {"count": 5, "at": AT})
    for rule in ("first-rule", "second-rule"):
        offer = {"type": "offer", "v": 1, "at": AT, "offer": "o-1", "rule": rule,
                 "zone": "aisle-tv", "state": "sent", "visit": "v-00000000000a"}  # fmt: skip
        feed(console, t.console(ConsoleLeaf.TICKER), offer)
    log_in(client, "vera")
    page = client.get("/").text
    assert 'data-count-for="aisle-tv"' in page and 'data-occupancy-for="aisle-tv">5<' in page
    assert page.index("second-rule") < page.index("first-rule")
    assert 'id="ticker"' in page and "/visits/v-00000000000a" not in page  # a viewer: no link
    client.cookies.clear()
    log_in(client, "mark")
    assert 'href="/visits/v-00000000000a"' in client.get("/").text


def test_the_rules_page_lists_each_rule_with_state_firings_and_offers_today(
    client: TestClient,
) -> None:
    log_in(client, "vera")
    page = client.get("/rules")
    assert page.status_code == 200
    assert 'data-rule="tv-aisle-dwell"' in page.text
    assert 'class="rule-state" data-state="active"' in page.text
    welcome = page.text[page.text.index('data-rule="welcome"') :]
    welcome = welcome[: welcome.index("</tr>")]
    assert 'data-offer-state="delivered"' in welcome  # the morning's offers are today's
    assert 'class="last-fired">2026-03-03 1' in welcome  # when it last fired, local time
    assert "rule-error" not in page.text


def test_a_refused_rule_set_and_the_gateways_reload_error_are_shown(
    day: Day, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(day.folder / "rules", rules)
    (rules / "broken.yaml").write_text("id: broken\nwhen: [unclosed\n", encoding="utf-8")
    config = with_console(replace(load_config(day.config), rules_dir=rules), tmp_path)
    console = make_console(config, ManualClock(NOON))
    error = "rules/broken.yaml:2:7: error: <unclosed> flow sequence"
    status = {"state": "online", "version": "1", "started_at": AT,
              "rules": {"loaded_at": AT, "count": 3, "error": error}}  # fmt: skip
    feed(console, Topics("rayon", "paris-11").status(), status)
    with TestClient(build_app(console), base_url="https://testserver") as client:
        log_in(client, "vera")
        page = client.get("/rules").text
    assert 'id="reload-error"' in page and "&lt;unclosed&gt; flow sequence" in page
    assert '<li class="rule-error"><code>' in page and "broken.yaml:2:" in page


def test_kpis_json_and_csv_cover_the_chosen_days(client: TestClient) -> None:
    log_in(client, "vera")
    assert client.get("/kpis?since=2026-03-03&until=2026-03-03").status_code == 200
    figures = client.get("/kpis.json?since=2026-03-03&until=2026-03-03").json()
    assert figures["footfall_day"] == [{"day": "2026-03-03", "visits": figures["visits"]["count"]}]
    assert figures["visits"]["count"] > 10
    got = client.get("/kpis/rules.csv?since=2026-03-03&until=2026-03-03")
    assert got.headers["content-type"].startswith("text/csv")
    disposition = got.headers["content-disposition"]
    assert disposition == 'attachment; filename="rayon-rules-2026-03-03-2026-03-03.csv"'
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert {r["rule"] for r in rows} >= {"welcome", "click-collect"}
    assert client.get("/kpis/secrets.csv").status_code == 404


@pytest.mark.parametrize(
    "query", ["since=2026-13-01", "since=2026-03-04&until=2026-03-03", "until=yesterday"]
)
def test_a_wrong_period_is_a_400_saying_why(client: TestClient, query: str) -> None:
    log_in(client, "vera")
    assert client.get(f"/kpis?{query}").status_code == 400
    assert "error" in client.get(f"/kpis.json?{query}").json()


def test_an_unknown_visit_is_a_404_for_a_marketer(client: TestClient) -> None:
    log_in(client, "mark")
    assert client.get("/visits/v-ffffffffffff").status_code == 404
    assert client.get("/visits/customer-42").status_code == 404


def test_the_floor_picture_is_served_behind_login(day: Day, tmp_path: Path) -> None:
    picture = tmp_path / "plan.gif"
    picture.write_bytes(b"GIF89a" + bytes([40, 0, 25, 0]) + b"\x00" * 20)
    plan = FloorPlanImage(image=picture, origin=(0.0, 25.0), metres_per_pixel=1.0)
    config = with_console(load_config(day.config), tmp_path, floor_plan=plan)
    with TestClient(
        build_app(make_console(config, ManualClock(NOON))), base_url="https://testserver"
    ) as client:
        assert client.get("/floorplan").status_code == 401
        log_in(client, "vera")
        assert client.get("/floorplan").content == picture.read_bytes()
        assert 'href="/floorplan"' in client.get("/").text


@pytest.fixture(scope="module")
def shopped(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return shop(tmp_path_factory.mktemp("console-visit"))


def test_a_visit_page_explains_each_decision_and_names_no_customer(
    shopped: Shop, tmp_path: Path
) -> None:
    config = with_console(shopped.config, tmp_path)
    store = Store(config.database.url)
    try:
        visit = next(v for v in store.visits() if v.customer == INES.id)
        key = store.visit_key()
    finally:
        store.close()
    assert key is not None
    name = visit_pseudonym(key, visit.device, visit.started_at)
    console = make_console(config, ManualClock(visit.started_at + 600))
    with TestClient(build_app(console), base_url="https://testserver") as client:
        log_in(client, "mark")
        page = client.get(f"/visits/{name}")
    assert page.status_code == 200
    assert f'id="visit-pseudonym">{name}<' in page.text
    assert page.text.count('class="decision"') >= 2 and "tv-aisle-dwell" in page.text
    secrets = (INES.id, INES.token, "Inès", "In&egrave;s", LOYALTY_NUMBER, visit.device)
    for secret in (*secrets, *INES.devices):
        assert secret not in page.text


def test_no_page_json_csv_or_stream_snapshot_names_a_customer(
    shopped: Shop, tmp_path: Path
) -> None:
    config = with_console(shopped.config, tmp_path)
    store = Store(config.database.url)
    try:
        visits = [v for v in store.visits() if v.customer == INES.id]
    finally:
        store.close()
    start = visits[0].started_at
    console = make_console(config, ManualClock(start + 600))
    day = datetime.fromtimestamp(start, config.store.timezone).date().isoformat()
    period = f"?since={day}&until={day}"
    urls = ["/", "/rules", f"/kpis{period}", f"/kpis.json{period}", "/state.json"]
    urls += [f"/kpis/{table}.csv{period}" for table in TABLES]
    with TestClient(build_app(console), base_url="https://testserver") as client:
        log_in(client, "otto")
        answers = {url: client.get(url) for url in urls}
    assert all(a.status_code == 200 for a in answers.values()), answers
    assert answers[f"/kpis.json{period}"].json()["footfall_day"]  # figures of that visit
    secrets = (INES.id, INES.token, "Inès", "In&egrave;s", "Ines", LOYALTY_NUMBER)
    for url, answer in answers.items():
        for secret in (*secrets, *INES.devices, *(v.device for v in visits)):
            assert secret not in answer.text, (url, secret)
