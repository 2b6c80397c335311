"""The simulated store's customers: plausible CRM profiles for the simulated shoppers' phones,
seeded so that a simulation, its trace and its customers file agree."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from gateway.identity.model import Consent, Customer

FIRST_NAMES = (
    "Camille",
    "Léa",
    "Hugo",
    "Louis",
    "Chloé",
    "Nathan",
    "Inès",
    "Jules",
    "Manon",
    "Lucas",
    "Sarah",
    "Gabriel",
    "Zoé",
    "Arthur",
    "Emma",
    "Raphaël",
)
INTERESTS = ("tv", "audio", "smartphones", "computing", "gaming", "photo", "appliances")


def demo_customers(devices: Sequence[str], seed: int) -> list[Customer]:
    """Plausible CRM profiles for the simulated shoppers' phones (seeded, reproducible)."""
    rng = random.Random(seed)
    out = []
    for i, device in enumerate(devices, start=1):
        interests = frozenset(rng.sample(INTERESTS, rng.randint(1, 3)))
        if i % 3 == 1:
            interests |= {"tv"}
        attrs: dict[str, Any] = {}
        if rng.random() < 0.25:
            attrs["cart_zone"] = f"aisle-{rng.choice(INTERESTS)}"
        if rng.random() < 0.1:
            attrs["order_ready"] = True
        out.append(
            Customer(
                id=f"c-{i:04d}",
                token=f"t{rng.getrandbits(64):016x}",
                devices=(device,),
                consent=Consent(
                    instore_location=rng.random() < 0.95, marketing_push=rng.random() < 0.9
                ),
                first_name=rng.choice(FIRST_NAMES),
                interests=interests,
                tier=rng.choice((None, "silver", "gold")),
                visits=rng.choice((0, 0, 1, 3, 8, 20)),
                attributes=attrs,
            )
        )
    return out
