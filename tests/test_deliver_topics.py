"""Topic names of docs/mqtt.md, built and parsed in one place."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.topics import TopicKind, Topics

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
    with pytest.raises(ValueError, match="delivery token"):
        T.offers(bad)
    with pytest.raises(ValueError, match="customer id"):
        T.crm_customer(bad)
    with pytest.raises(ValueError):
        Topics("rayon", bad)


@pytest.mark.parametrize("token", ["4970123456789", "4970-1234-5678", "t 1", "t\n1", "é", "t@1"])
def test_a_token_breaking_the_rule_is_no_topic_of_ours(token: str) -> None:
    """docs/mqtt.md: a token is opaque, never a loyalty number; the probe saw an offer sent to
    offers/4970123456789.  No topic is built on such a token, none is read from one."""
    with pytest.raises(ValueError, match="delivery token") as info:
        T.offers(token)
    assert token not in str(info.value)
    base = "rayon/paris-11"
    for topic in (f"{base}/offers/{token}", f"{base}/feedback/{token}"):
        assert T.parse(topic) is None
    assert T.parse(f"{base}/phones/{token}/sightings") is None


@pytest.mark.parametrize("customer", ["c 1", "c\t1", "x" * 129, "c\x01"])
def test_a_customer_id_breaking_the_rule_is_no_topic_of_ours(customer: str) -> None:
    with pytest.raises(ValueError, match="customer id"):
        T.crm_customer(customer)
    assert T.parse(f"rayon/paris-11/crm/customers/{customer}") is None
    assert T.parse("rayon/paris-11/crm/customers/shop@c-1:2") == (
        TopicKind.CRM_CUSTOMER,
        "shop@c-1:2",
    )


@given(st.text(max_size=60))
def test_parse_never_raises(topic: str) -> None:
    result = T.parse("rayon/paris-11/" + topic)
    assert result is None or isinstance(result[0], TopicKind)


TOKENS = st.from_regex(r"[A-Za-z0-9_.~-]{0,39}[A-Za-z]", fullmatch=True)


@given(TOKENS)
def test_any_valid_token_round_trips(token: str) -> None:
    assert T.parse(T.feedback(token)) == (TopicKind.FEEDBACK, token)
    assert T.parse(T.phone_location(token)) == (TopicKind.PHONE_LOCATION, token)
