"""Topic names of DESIGN.md §5, built and parsed in one place."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.deliver.topics import TopicKind, Topics

T = Topics("rayon", "paris-11")


def test_outbound_topics() -> None:
    assert T.offers("tok1") == "rayon/paris-11/offers/tok1"
    assert T.occupancy("aisle-tv") == "rayon/paris-11/zones/aisle-tv/occupancy"
    assert T.events() == "rayon/paris-11/events"
    assert T.status() == "rayon/paris-11/gateway/status"


def test_inbound_filters() -> None:
    assert T.feedback_filter() == "rayon/paris-11/feedback/+"
    assert T.crm_filter() == "rayon/paris-11/crm/customers/+"
    assert T.phones_filter() == "rayon/paris-11/phones/+/+"
    assert T.scanners_filter() == "rayon/paris-11/scanners/+/adv"
    assert T.espresense_filter() == "espresense/devices/+/+"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (T.feedback("tok1"), (TopicKind.FEEDBACK, "tok1")),
        (T.phone_sightings("tok1"), (TopicKind.PHONE_SIGHTINGS, "tok1")),
        (T.phone_transition("tok1"), (TopicKind.PHONE_TRANSITION, "tok1")),
        (T.phone_location("tok1"), (TopicKind.PHONE_LOCATION, "tok1")),
        (T.scanner_adv("esp32-tv"), (TopicKind.SCANNER_ADV, "esp32-tv")),
        (T.crm_customer("cust-42"), (TopicKind.CRM_CUSTOMER, "cust-42")),
        (T.offers("tok1"), (TopicKind.OFFERS, "tok1")),
        (T.occupancy("aisle-tv"), (TopicKind.OCCUPANCY, "aisle-tv")),
        (T.status(), (TopicKind.STATUS, "")),
        (T.events(), (TopicKind.EVENTS, "")),
        ("espresense/devices/iBeacon:abc-1-2/rayon-tv", (TopicKind.ESPRESENSE, "rayon-tv")),
    ],
)
def test_parse_round_trips_the_builders(topic: str, expected: tuple[TopicKind, str]) -> None:
    assert T.parse(topic) == expected


@pytest.mark.parametrize(
    "topic",
    [
        "rayon/lyon-2/feedback/tok1",  # another store
        "other/paris-11/feedback/tok1",
        "rayon/paris-11/feedback",
        "rayon/paris-11/feedback/tok1/extra",
        "rayon/paris-11/feedback/",
        "rayon/paris-11/phones/tok1/selfie",
        "rayon/paris-11/scanners/node/raw",
        "espresense/devices/only-device",
        "rayon/paris-11",
        "",
    ],
)
def test_parse_ignores_foreign_topics(topic: str) -> None:
    assert T.parse(topic) is None


def test_prefix_is_configurable_and_trimmed() -> None:
    topics = Topics("/acme/rayon/", "lyon-2")
    assert topics.offers("t") == "acme/rayon/lyon-2/offers/t"
    assert topics.parse("acme/rayon/lyon-2/feedback/t") == (TopicKind.FEEDBACK, "t")


@pytest.mark.parametrize("bad", ["a/b", "+", "#", ""])
def test_ids_that_are_not_one_level_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="topic level"):
        T.offers(bad)
    with pytest.raises(ValueError):
        Topics("rayon", bad)


@given(st.text(max_size=60))
def test_parse_never_raises(topic: str) -> None:
    result = T.parse("rayon/paris-11/" + topic)
    assert result is None or isinstance(result[0], TopicKind)


TOKENS = st.text(st.characters(blacklist_characters="/+#\x00"), min_size=1, max_size=40)


@given(TOKENS)
def test_any_valid_token_round_trips(token: str) -> None:
    assert T.parse(T.feedback(token)) == (TopicKind.FEEDBACK, token)
    assert T.parse(T.phone_location(token)) == (TopicKind.PHONE_LOCATION, token)
