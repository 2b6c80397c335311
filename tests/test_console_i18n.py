"""The console in French and English: the catalogs (the .mo compiled from the .po, every
message extracted from the templates and the Python sources translated, placeholders kept),
the language a request gets (Accept-Language, the `rayon_lang` switch, English otherwise),
and the pages in French through the real app and Starlette's client."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from starlette.testclient import TestClient

from gateway.clock import ManualClock
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.console.app import build_app
from gateway.console.i18n import (
    LANG_COOKIE,
    LOCALE_DIR,
    chosen,
    english,
    load_languages,
    value_words,
)
from gateway.console.rulestate import rule_states
from gateway.console.trace import Decision, VisitTrace
from gateway.console.web import Console, templates
from gateway.topics import ConsoleLeaf, Topics
from tests.consolekit import START, console_config, log_in, make_console
from tests.stores import ROOT

PO = LOCALE_DIR / "fr" / "LC_MESSAGES" / "console.po"
MO = LOCALE_DIR / "fr" / "LC_MESSAGES" / "console.mo"
POT = LOCALE_DIR / "console.pot"
PARIS = ZoneInfo("Europe/Paris")
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|\{[a-z_]+\}")
_WORDS = re.compile(r'<script type="application/json" id="i18n">(.*?)</script>', re.S)
VISIT = "v-00000000000a"
ENTER = {"type": "zone_event", "v": 1, "at": "2026-03-03T09:00:00+01:00", "kind": "enter",
         "zone": "aisle-tv", "visit": VISIT}  # fmt: skip
OFFER = {"type": "offer", "v": 1, "at": "2026-03-03T09:00:01+01:00", "offer": "o-1",
         "rule": "tv-aisle-dwell", "zone": "aisle-tv", "state": "sent", "visit": VISIT}  # fmt: skip
FRENCH = {"accept-language": "fr-FR,fr;q=0.9,en;q=0.5"}


def catalog(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)


def extracted() -> set[str]:
    """Every msgid the sources mark today, found as `pybabel extract -F babel.cfg -k tr:2`."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as f:
        methods, options = parse_mapping_cfg(f, "babel.cfg")  # type: ignore[no-untyped-call]
    keywords = {**DEFAULT_KEYWORDS, "tr": (2,)}
    found = extract_from_dir(ROOT, methods, options, keywords)
    return {m if isinstance(m, str) else m[0] for _file, _line, m, _c, _ctx in found}


# --- the catalogs ----------------------------------------------------------------------------


def test_the_shipped_mo_is_the_po_compiled() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, catalog(PO))
    compiled.seek(0)
    with MO.open("rb") as f:
        shipped = {m.id: m.string for m in read_mo(f) if m.id}
    fresh = {m.id: m.string for m in read_mo(compiled) if m.id}
    assert len(fresh) > 100
    assert shipped == fresh, "run: pybabel compile -D console -d gateway/console/locale"


def test_every_message_of_the_sources_is_in_the_template_and_translated_in_french() -> None:
    marked = extracted()
    assert "Live map" in marked and "Wrong user name or password." in marked  # both kinds
    assert {m.id for m in catalog(POT) if m.id} == marked, "the .pot is out of date"
    french = catalog(PO)
    missing = [m for m in marked if m not in french]
    assert missing == [], "run: pybabel update (docs/console.md, Translations)"
    for message in french:
        if message.id:
            assert message.string, f"not translated: {message.id!r}"
            assert not message.fuzzy, f"fuzzy: {message.id!r}"


def test_placeholders_are_the_same_in_each_translation() -> None:
    french = catalog(PO)
    for message in french:
        if message.id:
            assert isinstance(message.id, str) and isinstance(message.string, str)
            ours, theirs = _PLACEHOLDER.findall(message.id), _PLACEHOLDER.findall(message.string)
            assert sorted(ours) == sorted(theirs), message.id
    assert [error for _message, errors in french.check() for error in errors] == []


# --- the language of a request ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        ({}, {}, None, "en"),
        ({}, {}, "fr-FR,fr;q=0.9", "fr"),
        ({}, {}, "de-DE, fr;q=0.5", "fr"),
        ({}, {}, "de-DE, it", "en"),
        ({}, {}, "fr;q=0, en;q=0.1", "en"),
        ({}, {}, "en;q=0.4, fr-CA;q=0.8", "fr"),
        ({}, {LANG_COOKIE: "fr"}, "en", "fr"),
        ({}, {LANG_COOKIE: "de"}, "en", "en"),
        ({"lang": "en"}, {LANG_COOKIE: "fr"}, "fr", "en"),
        ({"lang": "fr; HttpOnly"}, {}, None, "en"),
    ],
)
def test_the_switch_then_the_cookie_then_accept_language(
    query: dict[str, str], cookie: dict[str, str], accept: str | None, expected: str
) -> None:
    assert chosen(query, cookie, accept) == expected


def test_dates_and_numbers_are_written_the_locales_way_in_the_stores_time_zone() -> None:
    fr, en = load_languages()["fr"], english()
    assert en.when(START, PARIS) == "2026-03-03 09:00:00"
    assert fr.when(START, PARIS) == "3 mars 2026 09:00:00"
    assert fr.when(START, ZoneInfo("America/New_York")) == "3 mars 2026 03:00:00"
    assert fr.number(1234.5).replace("\u202f", " ").replace("\xa0", " ") == "1 234,5"
    assert en.number(1234.5) == "1,234.5"


def test_the_rules_states_in_french() -> None:
    config = load_config(ROOT / "config.example.yaml")
    fr = load_languages()["fr"]
    tuesday_morning = 1_772_530_200.0  # 2026-03-03 10:30 Paris
    states = {r.id: r.detail for r in rule_states(config, tuesday_morning, fr).rules}
    assert states["tv-aisle-dwell"] == (
        "hors de sa plage horaire (entre 14:00 et 19:00 le lun., mar., mer., jeu., ven.) : "
        "ouverture mar. 3 mars 2026 14:00"
    )
    english_states = {r.id: r.detail for r in rule_states(config, tuesday_morning).rules}
    assert english_states["tv-aisle-dwell"].endswith("opens Tue 2026-03-03 14:00")


# --- the pages -------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return console_config(tmp_path)


@pytest.fixture
def console(config: Config) -> Console:
    return make_console(config, ManualClock(START))


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(build_app(console), base_url="https://testserver") as c:
        yield c


def words_of(html: str) -> dict[str, object]:
    found = _WORDS.search(html)
    assert found is not None
    words: dict[str, object] = json.loads(found.group(1))
    return words


def test_the_login_page_in_french_from_accept_language(client: TestClient) -> None:
    page = client.get("/login", headers=FRENCH).text
    assert '<html lang="fr">' in page and "<h1>Se connecter</h1>" in page
    assert "Nom d&#39;utilisateur" in page and "Mot de passe" in page
    refused = log_in_french(client, "vera", "not-her-password")
    assert refused.status_code == 401
    assert "Nom d&#39;utilisateur ou mot de passe incorrect." in refused.text


def log_in_french(client: TestClient, name: str, password: str | None = None) -> Any:
    client.headers.update(FRENCH)
    return log_in(client, name, password)


def test_english_stays_the_default(client: TestClient) -> None:
    page = client.get("/login").text
    assert '<html lang="en">' in page and "<h1>Log in</h1>" in page
    assert LANG_COOKIE not in client.cookies


def test_the_map_in_french(client: TestClient, console: Console, config: Config) -> None:
    ticker = Topics("rayon", config.store.id).console(ConsoleLeaf.TICKER)
    for line in (ENTER, OFFER):
        assert console.live.handle(ticker, json.dumps(line).encode()) is not None
    log_in_french(client, "vera")
    page = client.get("/").text
    assert '<span class="what">entrée</span>' in page  # a zone event's kind, in words
    assert '<span class="what">tv-aisle-dwell</span>' in page  # an offer's rule, as it is
    assert '<span class="state">envoyées</span>' in page
    assert words_of(page)["kinds"] == {
        "enter": "entrée",
        "exit": "sortie",
        "dwell": "arrêt",
        "visit_start": "début de visite",
        "visit_end": "fin de visite",
    }
    assert "<title>Plan en direct · " in page and ">Règles</a>" in page
    assert ">Indicateurs</a>" in page and ">Se déconnecter</button>" in page
    assert "Occupation" in page and 'id="broker-state">non connecté<' in page
    assert "vera (lecture)" in page and 'data-role="viewer"' in page  # the hook stays
    assert words_of(page)["live"] == "en direct"


def test_the_rules_page_in_french(client: TestClient) -> None:
    log_in_french(client, "vera")
    page = client.get("/rules").text
    assert "<h1>Règles</h1>" in page and "<th>Dernier déclenchement</th>" in page
    assert "Pas encore d&#39;état reçu de la passerelle." in page
    row = page[page.index('data-rule="tv-aisle-dwell"') :]
    row = row[: row.index("</tr>")]
    assert 'data-state="scheduled">programmée<' in row and "commerciale" in row
    assert "ouverture mar. 3 mars 2026 14:00" in row


def test_the_kpis_page_and_its_errors_in_french(client: TestClient) -> None:
    log_in_french(client, "vera")
    page = client.get("/kpis?since=2026-03-01&until=2026-03-03").text
    assert "<h1>Indicateurs</h1>" in page and "Fréquentation par jour" in page
    assert 'href="/kpis/rules.csv?since=2026-03-01&amp;until=2026-03-03">rules.csv</a>' in page
    words = words_of(page)
    assert words["period"] == "Période du {since} au {until}."
    assert isinstance(words["columns"], dict) and words["columns"]["uplift"] == "gain"
    wrong = client.get("/kpis?since=2026-03-04&until=2026-03-03")
    assert wrong.status_code == 400 and "Période incorrecte" in wrong.text
    data = client.get("/kpis.json?since=hier")
    assert data.json() == {"error": "les dates de début et de fin s'écrivent AAAA-MM-JJ"}


def test_a_refused_page_in_french(client: TestClient) -> None:
    log_in_french(client, "vera")
    page = client.get(f"/visits/{VISIT}")
    assert page.status_code == 403 and "Accès refusé" in page.text
    assert "Cette page demande le rôle marketing ; vous avez le rôle lecture." in page.text


def test_the_switch_sets_a_strict_cookie_and_wins_over_the_browser(client: TestClient) -> None:
    switched = client.get("/login?lang=fr")
    assert "<h1>Se connecter</h1>" in switched.text
    cookies = switched.headers.get_list("set-cookie")
    cookie = next(c for c in cookies if c.startswith(f"{LANG_COOKIE}="))
    assert cookie.startswith(f"{LANG_COOKIE}=fr;") and "SameSite=Strict" in cookie
    assert "Path=/" in cookie and "HttpOnly" not in cookie
    assert "<h1>Se connecter</h1>" in client.get("/login").text  # the cookie remembers
    back = client.get("/login?lang=en", headers=FRENCH)
    assert "<h1>Log in</h1>" in back.text and client.cookies[LANG_COOKIE] == "en"
    assert "<h1>Log in</h1>" in client.get("/login", headers=FRENCH).text


def test_the_header_links_to_the_other_language_keeping_the_query(client: TestClient) -> None:
    log_in(client, "vera")
    page = client.get("/kpis?since=2026-03-01&until=2026-03-03").text
    assert 'href="/kpis?since=2026-03-01&amp;until=2026-03-03&amp;lang=fr" hreflang="fr"' in page


@pytest.mark.parametrize("asked", ["de", "fr;HttpOnly", "FR-fr", ""])
def test_an_unknown_language_falls_back_to_english_and_sets_no_cookie(
    client: TestClient, asked: str
) -> None:
    page = client.get("/login", params={"lang": asked}, headers={"accept-language": "de-DE"})
    assert "<h1>Log in</h1>" in page.text
    assert LANG_COOKIE not in page.headers.get("set-cookie", "")


def test_a_visits_trace_in_french(config: Config) -> None:
    fr = load_languages()["fr"]
    decision = Decision(START + 30, "tv-aisle-dwell", "holdout", "fires", ("trigger: ok",))
    trace = VisitTrace(VISIT, START, None, ((START, "enter", "aisle-tv"),), (decision,))
    context: dict[str, Any] = {
        **fr.template_callables(),
        "lang": "fr",
        "lang_links": [],
        "words": value_words(fr),
        "number": fr.number,
        "session": None,
        "store": config.store,
        "can_trace": True,
        "trace": trace,
        "when": lambda at: fr.when(at, PARIS),
    }
    html = templates().env.get_template("visit.html").render(context)
    assert f"<title>Visite {VISIT} · " in html
    assert "Depuis le 3 mars 2026 09:00:00 (visite en cours)." in html
    assert "<time>3 mars 2026 09:00:00</time> entrée aisle-tv" in html
    assert '<td class="offer-state">témoin</td>' in html and "<th>Pourquoi</th>" in html
    ended = (
        templates()
        .env.get_template("visit.html")
        .render({**context, "trace": VisitTrace(VISIT, START, START + 600, (), ())})
    )
    assert "Du 3 mars 2026 09:00:00 au 3 mars 2026 09:10:00." in ended
    assert "Aucune règle n&#39;a examiné les événements de cette visite." in ended
