"""Every MQTT topic Rayon publishes or listens to, built and parsed in one place.

docs/mqtt.md is the contract: all topics live under `<topic_prefix>/<store>/`, e.g.
`rayon/paris-11/offers/<token>`.  ESPresense rooms publish outside the prefix, on
`espresense/devices/<device>/<room>`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from gateway.ids import customer_id_problem, token_problem

_FORBIDDEN = frozenset("/+#\x00")
_PHONE_KINDS = {"sightings", "transition", "location"}


class TopicKind(StrEnum):
    """What a topic carries; inbound kinds are the ones `Topics.parse` returns."""

    OFFERS = "offers"
    FEEDBACK = "feedback"
    PHONE_SIGHTINGS = "phone_sightings"
    PHONE_TRANSITION = "phone_transition"
    PHONE_LOCATION = "phone_location"
    SCANNER_ADV = "scanner_adv"
    ESPRESENSE = "espresense"
    CRM_CUSTOMER = "crm_customer"
    OCCUPANCY = "occupancy"
    EVENTS = "events"
    STATUS = "status"
    CONSOLE = "console"


class ChainLeaf(StrEnum):
    """The chain's topics of a store, `<prefix>/<store>/chain/<leaf>` (docs/mqtt.md)."""

    BATCH = "batch"  # store → centre
    ACK = "ack"  # centre → store, retained
    BACKFILL = "backfill"  # centre → store
    ERASED = "erased"  # centre → store


class ConsoleLeaf(StrEnum):
    """The console's live topics, `<prefix>/<store>/console/<leaf>` (docs/mqtt.md): QoS 0,
    never retained, never bridged, readable by the `rayon-<store>-console` login only."""

    POSITIONS = "positions"  # gw → console, about once a second: anonymous dots
    TICKER = "ticker"  # gw → console: zone events and offer decisions, by visit pseudonym


CENTRAL_GROUP = "rayon-central"  # the collectors' shared subscription group


def chain_filter(topic_prefix: str, leaf: ChainLeaf, *, shared: bool = False) -> str:
    """Every store's `chain/<leaf>` topic; `shared`: as the collectors' shared subscription,
    so that each message goes to one collector of the group."""
    topic = f"{topic_prefix.strip('/')}/+/chain/{leaf.value}"
    return f"$share/{CENTRAL_GROUP}/{topic}" if shared else topic


def parse_chain(topic_prefix: str, topic: str) -> tuple[str, ChainLeaf] | None:
    """(store, leaf) of a chain topic, or None when it is none of the chain's."""
    prefix = topic_prefix.strip("/") + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 3 or parts[1] != "chain" or not _valid(parts[0]):
        return None
    leaf = parts[2]
    return (parts[0], ChainLeaf(leaf)) if leaf in ChainLeaf._value2member_map_ else None


# What the counters call each inbound kind (`inbound_<outcome>:<class>`, gateway/status).
INBOUND_CLASS: dict[TopicKind, str] = {
    TopicKind.CRM_CUSTOMER: "crm",
    TopicKind.FEEDBACK: "feedback",
    TopicKind.PHONE_SIGHTINGS: "sightings",
    TopicKind.PHONE_TRANSITION: "transition",
    TopicKind.PHONE_LOCATION: "location",
    TopicKind.SCANNER_ADV: "scanner",
    TopicKind.ESPRESENSE: "espresense",
}
OTHER_CLASS = "other"  # a topic the gateway does not read (a subscription too wide)


def _segment(value: str, what: str) -> str:
    """`value` if it is usable as one topic level, else ValueError saying why."""
    if not value or any(c in _FORBIDDEN for c in value):
        raise ValueError(
            f"{what} {value!r} cannot be an MQTT topic level: it must be non-empty "
            "and contain none of '/', '+', '#' or NUL"
        )
    return value


def _valid(value: str) -> bool:
    return bool(value) and not any(c in _FORBIDDEN for c in value)


def _checked(value: str, problem: Callable[[object], str | None]) -> str:
    """`value` if it follows its rule (gateway.ids), else ValueError with the rule; the
    message never repeats the value (a token of digits may be a loyalty number)."""
    why = problem(value)
    if why is not None:
        raise ValueError(f"cannot build the topic: {why}")
    return value


def _token(value: str) -> str:
    return _checked(value, token_problem)


def _is_token(value: str) -> bool:
    return token_problem(value) is None


def _is_customer(value: str) -> bool:
    return customer_id_problem(value) is None


class Topics:
    """The topic names of one store.  Builders raise ValueError on an id that would not
    fit in one topic level (it contains `/`, `+` or `#`), and on a token or customer id
    breaking its rule (gateway.ids); `parse` never raises, and returns None for a topic
    whose token or customer id breaks that rule: no such topic is ours."""

    def __init__(self, topic_prefix: str, store_id: str) -> None:
        prefix = topic_prefix.strip("/")
        if not prefix or "+" in prefix or "#" in prefix:
            raise ValueError(f"topic prefix {topic_prefix!r} must be non-empty, without + or #")
        self.base = f"{prefix}/{_segment(store_id, 'store id')}"

    def offers(self, token: str) -> str:
        return f"{self.base}/offers/{_token(token)}"

    def offers_filter(self) -> str:
        """Every customer's offers (signage, the demo's phone; never an app login's ACL)."""
        return f"{self.base}/offers/+"

    def feedback(self, token: str) -> str:
        return f"{self.base}/feedback/{_token(token)}"

    def feedback_filter(self) -> str:
        return f"{self.base}/feedback/+"

    def phone_sightings(self, token: str) -> str:
        return f"{self.base}/phones/{_token(token)}/sightings"

    def phone_transition(self, token: str) -> str:
        return f"{self.base}/phones/{_token(token)}/transition"

    def phone_location(self, token: str) -> str:
        return f"{self.base}/phones/{_token(token)}/location"

    def phones_filter(self) -> str:
        """Sightings, transitions and locations of every phone."""
        return f"{self.base}/phones/+/+"

    def scanner_adv(self, node: str) -> str:
        return f"{self.base}/scanners/{_segment(node, 'scanner node')}/adv"

    def scanners_filter(self) -> str:
        return f"{self.base}/scanners/+/adv"

    def espresense_filter(self) -> str:
        return "espresense/devices/+/+"

    def crm_customer(self, customer_id: str) -> str:
        return f"{self.base}/crm/customers/{_checked(customer_id, customer_id_problem)}"

    def crm_filter(self) -> str:
        return f"{self.base}/crm/customers/+"

    def occupancy(self, zone: str) -> str:
        return f"{self.base}/zones/{_segment(zone, 'zone id')}/occupancy"

    def events(self) -> str:
        return f"{self.base}/events"

    def status(self) -> str:
        return f"{self.base}/gateway/status"

    def chain(self, leaf: ChainLeaf) -> str:
        """The store's topic of the chain (`chain/batch`, `chain/ack`, …)."""
        return f"{self.base}/chain/{leaf.value}"

    def console(self, leaf: ConsoleLeaf) -> str:
        """The store's live topic for the console (`console/positions`, `console/ticker`)."""
        return f"{self.base}/console/{leaf.value}"

    def console_filter(self) -> str:
        return f"{self.base}/console/+"

    def parse(self, topic: str) -> tuple[TopicKind, str] | None:
        """The kind of an inbound topic and its argument (token, node, customer id; the
        room for ESPresense), or None when the topic is not one of ours."""
        if topic.startswith("espresense/devices/"):
            parts = topic.split("/")
            ok = len(parts) == 4 and _valid(parts[2]) and _valid(parts[3])
            return (TopicKind.ESPRESENSE, parts[3]) if ok else None
        if not topic.startswith(self.base + "/"):
            return None
        return _parse_rest(topic[len(self.base) + 1 :].split("/"))


def _parse_rest(parts: list[str]) -> tuple[TopicKind, str] | None:
    match parts:
        case ["feedback", token] if _is_token(token):
            return TopicKind.FEEDBACK, token
        case ["phones", token, kind] if _is_token(token) and kind in _PHONE_KINDS:
            return TopicKind(f"phone_{kind}"), token
        case ["scanners", node, "adv"] if _valid(node):
            return TopicKind.SCANNER_ADV, node
        case ["crm", "customers", customer] if _is_customer(customer):
            return TopicKind.CRM_CUSTOMER, customer
        case ["offers", token] if _is_token(token):
            return TopicKind.OFFERS, token
        case ["zones", zone, "occupancy"] if _valid(zone):
            return TopicKind.OCCUPANCY, zone
        case ["events"]:
            return TopicKind.EVENTS, ""
        case ["gateway", "status"]:
            return TopicKind.STATUS, ""
    return None
