"""Who a device belongs to, and what that customer consented to (docs/design.md §1, docs/trace.md).

Pure: the registry is an in-memory index filled from the store, the CRM topic or an import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

PHONE_PREFIX = "phone:"  # `phone:<token>`: a customer's phone as a device


@dataclass(frozen=True, slots=True)
class Consent:
    instore_location: bool = False
    marketing_push: bool = False


@dataclass(frozen=True, slots=True)
class Customer:
    """The CRM's view of a customer.  `token` is the opaque per-customer delivery token.

    `devices` are canonical device ids.  `last_visit` is epoch seconds or None.
    """

    id: str
    token: str
    devices: tuple[str, ...] = ()
    consent: Consent = Consent()
    first_name: str | None = None
    segments: frozenset[str] = frozenset()
    interests: frozenset[str] = frozenset()
    tier: str | None = None
    visits: int = 0
    last_visit: float | None = None
    attributes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def phone(self) -> str:
        """The device id of their phone reporting in mode B (and GPS): `phone:<token>`."""
        return f"{PHONE_PREFIX}{self.token}"

    @property
    def device_ids(self) -> tuple[str, ...]:
        """Every device id that stands for them: their devices, then their phone."""
        return (*self.devices, self.phone)


class CustomerRegistry:
    """Resolves a device id or a delivery token to its customer."""

    def __init__(self, customers: Iterable[Customer] = ()) -> None:
        self._by_id: dict[str, Customer] = {}
        self._by_device: dict[str, str] = {}
        self._by_token: dict[str, str] = {}
        for customer in customers:
            self.upsert(customer)

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[Customer]:
        return list(self._by_id.values())

    def values(self) -> Iterable[Customer]:
        """Every customer, without copying (do not upsert while iterating)."""
        return self._by_id.values()

    def get(self, customer_id: str) -> Customer | None:
        return self._by_id.get(customer_id)

    def by_device(self, device: str) -> Customer | None:
        if device.startswith(PHONE_PREFIX):
            return self.by_token(device.removeprefix(PHONE_PREFIX))
        cid = self._by_device.get(device)
        return self._by_id.get(cid) if cid is not None else None

    def by_token(self, token: str) -> Customer | None:
        cid = self._by_token.get(token)
        return self._by_id.get(cid) if cid is not None else None

    def upsert(self, customer: Customer) -> None:
        self.remove(customer.id)
        self._by_id[customer.id] = customer
        self._by_token[customer.token] = customer.id
        for device in customer.devices:
            self._by_device[device] = customer.id

    def remove(self, customer_id: str) -> Customer | None:
        old = self._by_id.pop(customer_id, None)
        if old is not None:
            self._by_token.pop(old.token, None)
            for device in old.devices:
                self._by_device.pop(device, None)
        return old
