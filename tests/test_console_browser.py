"""The console in a real Chromium, against the real `rayon console`, a real Mosquitto and the
simulated store writing a real SQLite database (tests/consolelab.py).

Skipped with the reason when Chromium is missing; under CI=true that fails instead
(tests/browser.py).  With RAYON_SCREENSHOTS=DIR the pages are also saved there as PNG
(`RAYON_SCREENSHOTS=docs/images python -m pytest tests/test_console_browser.py` refreshes the
screenshots of docs/console.md).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.broker import Mosquitto
from tests.consolelab import PASSWORD, ConsoleLab, console_lab, digits, log_in, wait_until

pytestmark = pytest.mark.mqtt
PSEUDONYM = re.compile(r"^v-[0-9a-f]{12}$")
LIVE_S = 60.0  # the simulated store is busy well within this (20 shoppers from now, × 2)


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory, mosquitto_module: Mosquitto, chromium: Any
) -> Iterator[ConsoleLab]:
    with console_lab(tmp_path_factory.mktemp("store"), mosquitto_module) as lab:
        lab.start_console()
        lab.start_store()
        yield lab


@pytest.fixture
def page(chromium: Any, lab: ConsoleLab) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("RAYON_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)


def customer_secrets(lab: ConsoleLab) -> list[str]:
    """What must never be on a page: the CRM's ids, tokens, names and devices."""
    with closing(sqlite3.connect(f"file:{lab.database}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT id, token, first_name, devices FROM customers").fetchall()
    out = []
    for cid, token, name, devices in rows:
        out += [cid, token, *json.loads(devices)]
        if name:
            out.append(f">{name}<")  # a whole word on the page, not a part of a rule's text
    return out


def test_a_zone_count_changes_on_the_map_when_a_shopper_walks_in(
    page: Any, lab: ConsoleLab
) -> None:
    log_in(page, lab, "vera")
    page.wait_for_selector("body[data-live=ready]")
    store = page.locator("[data-count-for=store]")
    before = store.text_content()
    wait_until(page, lambda: store.text_content() != before, LIVE_S)
    page.wait_for_selector("#dots [data-visit]", timeout=LIVE_S * 1000)
    visits = page.eval_on_selector_all("#dots [data-visit]", "ds => ds.map(d => d.dataset.visit)")
    assert visits and all(PSEUDONYM.match(v) for v in visits)
    listed = page.locator("[data-occupancy-for=store]")  # the plan and the list agree
    wait_until(page, lambda: digits(store.text_content()) == digits(listed.text_content()))


def test_an_offer_appears_in_the_ticker_and_its_visit_trace_names_no_customer(
    page: Any, lab: ConsoleLab
) -> None:
    log_in(page, lab, "marc")
    page.wait_for_selector("body[data-live=ready]")
    offer = page.wait_for_selector("#ticker li.tick-offer", timeout=LIVE_S * 1000)
    text = offer.inner_text()
    rules = {p.stem for p in (lab.folder / "rules").glob("*.yaml")} | {"welcome"}
    assert any(rule in text for rule in rules), text
    visit = offer.get_attribute("data-visit")
    assert visit is not None and PSEUDONYM.match(visit)
    offer.query_selector("a.visit").click()
    page.wait_for_url(f"**/visits/{visit}")
    page.wait_for_selector("#decisions tr.decision")
    html = page.content()
    assert visit in html
    leaked = [s for s in customer_secrets(lab) if s in html]
    assert leaked == [], f"customer data on the trace page: {leaked}"
    screenshot(page, "visit")


def test_a_refused_reload_shows_its_error_on_the_rules_page(page: Any, lab: ConsoleLab) -> None:
    log_in(page, lab, "olga")
    page.goto(lab.url + "/rules")
    page.wait_for_selector("tr[data-rule]")
    broken = lab.folder / "rules" / "zz-broken.yaml"
    good = (lab.folder / "rules" / "tv-aisle-dwell.yaml").read_text(encoding="utf-8")
    bad = good.replace("id: tv-aisle-dwell", "id: tv-aisle-dwell-2")
    broken.write_text(bad.replace("zone: aisle-tv", "zone: aisle-tvs"), encoding="utf-8")
    try:
        error = page.wait_for_selector("#reload-error", timeout=30_000)
        assert "zz-broken.yaml" in error.inner_text()
        page.reload()
        lines = page.locator("li.rule-error").all_inner_texts()
        assert any(re.search(r"zz-broken\.yaml:\d+:\d+: error: .*'aisle-tvs'", t) for t in lines)
        screenshot(page, "rules-refused")
    finally:
        broken.unlink()
    page.wait_for_selector("#reload-ok", timeout=30_000)
    page.reload()
    assert page.locator("li.rule-error").count() == 0
    screenshot(page, "rules")


def test_the_kpis_page_draws_its_charts_from_the_database(page: Any, lab: ConsoleLab) -> None:
    log_in(page, lab, "vera")
    page.wait_for_selector("body[data-live=ready]")
    page.wait_for_selector("#dots [data-visit]", timeout=LIVE_S * 1000)
    screenshot(page, "map")  # here, later in the run, the store is busier than at first
    page.goto(lab.url + "/kpis")
    page.wait_for_selector("body[data-kpis=ready]", timeout=30_000)
    assert page.locator("#chart-footfall-hour svg").count() >= 1
    csv = page.request.get(lab.url + "/kpis/footfall_hour.csv")
    assert csv.status == 200 and csv.text().splitlines()[0].startswith("hour")
    screenshot(page, "kpis")


def test_a_french_browser_gets_the_pages_and_the_scripts_words_in_french(
    chromium: Any, lab: ConsoleLab
) -> None:
    context = chromium.new_context(locale="fr-FR")  # Accept-Language: fr-FR
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        log_in(page, lab, "vera")
        page.wait_for_selector("body[data-live=ready]")
        assert page.inner_text("#nav-map") == "Plan en direct"
        state = page.locator("#stream-state")
        wait_until(page, lambda: state.text_content() == "en direct")
        page.goto(lab.url + "/kpis")
        page.wait_for_selector("body[data-kpis=ready]", timeout=30_000)
        assert page.inner_text("#kpis-status").startswith("Période du ")
        assert page.locator("#table-rules th[data-column=uplift]").all_inner_texts() in (
            [],
            ["gain"],
        )
        page.click("#lang-switch a[data-lang=en]")
        page.wait_for_selector("body[data-kpis=ready]", timeout=30_000)
        assert page.inner_text("h1") == "KPIs" and page.inner_text("#kpis-status").startswith(
            "Period "
        )
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"


def test_a_wrong_password_is_refused_and_audited(page: Any, lab: ConsoleLab) -> None:
    log_in(page, lab, "vera", password="not the password")
    assert "Log in" in page.inner_text("h1")
    assert page.locator("#login-error").is_visible()
    assert page.context.cookies() == [] or all(
        c["name"] != "rayon_session" for c in page.context.cookies()
    )
    audit = (lab.folder / "console" / "audit.log").read_text().splitlines()
    last = json.loads(audit[-1])
    assert last["event"] == "login_failed" and last["user"] == "vera"
    assert "not the password" not in "\n".join(audit)


def test_a_form_without_its_csrf_token_and_a_stream_without_a_session_are_refused(
    page: Any, lab: ConsoleLab
) -> None:
    anonymous = page.request.get(lab.url + "/live")
    assert anonymous.status == 401
    log_in(page, lab, "olga")
    page.wait_for_selector("body[data-live=ready]")
    forged = page.request.post(lab.url + "/logout", form={"csrf": "forged"})
    assert forged.status == 403
    bare = page.request.post(lab.url + "/logout", form={})
    assert bare.status == 403
    page.reload()
    assert page.locator("body[data-live=ready]").count() == 1  # still logged in


def test_a_viewer_sees_no_trace_page(page: Any, lab: ConsoleLab) -> None:
    log_in(page, lab, "marc")
    page.wait_for_selector("body[data-live=ready]")
    tick = page.wait_for_selector("#ticker li[data-visit]", timeout=LIVE_S * 1000)
    visit = tick.get_attribute("data-visit")
    page.context.clear_cookies()
    log_in(page, lab, "vera")
    page.wait_for_selector("body[data-live=ready]")
    assert page.locator("#ticker a.visit").count() == 0  # no link to follow
    answer = page.goto(f"{lab.url}/visits/{visit}")
    assert answer is not None and answer.status == 403
    assert "#decisions" not in page.content()


def test_the_session_cookie_is_httponly_secure_and_same_site(page: Any, lab: ConsoleLab) -> None:
    log_in(page, lab, "vera")
    page.wait_for_selector("body[data-live=ready]")
    (session,) = [c for c in page.context.cookies() if c["name"] == "rayon_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("rayon_session") == -1
    assert PASSWORD not in (lab.folder / "console" / "users").read_text()


def test_the_console_process_never_loads_numpy_shapely_or_matplotlib(
    page: Any, lab: ConsoleLab
) -> None:
    log_in(page, lab, "olga")
    for path in ("/", "/rules", "/kpis"):
        page.goto(lab.url + path)
    page.wait_for_selector("body[data-kpis=ready]", timeout=30_000)
    console = lab.procs[0]  # started first, by the fixture
    maps = Path(f"/proc/{console.pid}/maps").read_text()
    loaded = {lib for lib in ("numpy", "shapely", "matplotlib") if f"/{lib}/" in maps}
    assert loaded == set(), f"the console process mapped {sorted(loaded)}"
