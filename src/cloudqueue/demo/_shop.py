"""The simulated shop: orders, and the flaky services the handlers call."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["EVENTS", "STAGES", "Shop", "TransientError"]

#: Pipeline stages in order, each triggered by one event and emitting the next.
STAGES = ("reserve-stock", "charge-payment", "ship")
#: stage -> (event that triggers it, event it emits)
EVENTS = {
    "reserve-stock": ("order.placed", "stock.reserved"),
    "charge-payment": ("stock.reserved", "payment.captured"),
    "ship": ("payment.captured", "order.shipped"),
}
CATALOG = {"BOOK-1": 12.5, "MUG-2": 8.0, "LAMP-3": 39.9, "SOCK-4": 4.25}
CURRENCIES = ("EUR", "USD", "GBP")

POISON_RATE = 0.15
#: Transient failures per stage call, drawn uniformly; below dead_letter_after.
TRANSIENT_CHOICES = (0, 0, 0, 0, 1, 1, 2)


class TransientError(Exception):
    """A dependency was briefly unavailable; trying again later will work."""


@dataclass
class FlakyService:
    """A dependency that fails the first N calls for some orders."""

    failure: str
    failures: dict[str, int] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    def call(self, order_id: str) -> None:
        self.calls[order_id] += 1
        if self.calls[order_id] <= self.failures.get(order_id, 0):
            raise TransientError(self.failure)


@dataclass
class Shop:
    orders: list[tuple[str, bytes]]
    services: dict[str, FlakyService]
    #: order id -> the stage whose input is poison for it (what the demo expects to see).
    poison: dict[str, str]

    @classmethod
    def generate(cls, count: int, seed: int) -> Shop:
        rng = random.Random(seed)
        services = {
            "reserve-stock": FlakyService("warehouse API timed out"),
            "charge-payment": FlakyService("payment gateway answered 503"),
            "ship": FlakyService("carrier API rate limit hit"),
        }
        orders: list[tuple[str, bytes]] = []
        poison: dict[str, str] = {}
        for number in range(1, count + 1):
            order_id = f"order-{number:04d}"
            order = {
                "order_id": order_id,
                "items": [
                    {"sku": rng.choice(sorted(CATALOG)), "quantity": rng.randint(1, 3)}
                    for _ in range(rng.randint(1, 3))
                ],
                "currency": rng.choice(CURRENCIES),
                "address": {"city": rng.choice(("Lyon", "Porto", "Leeds")), "postcode": f"{number:05d}"},
            }
            body = json.dumps(order).encode()
            if rng.random() < POISON_RATE:
                stage = poison[order_id] = rng.choice(STAGES)
                if stage == "reserve-stock":
                    body = b"\xff\xfe" + body[:12]  # a truncated, corrupt payload
                elif stage == "charge-payment":
                    order["currency"] = "XXX"
                    body = json.dumps(order).encode()
                else:
                    del order["address"]["postcode"]  # type: ignore[attr-defined]
                    body = json.dumps(order).encode()
            for stage in STAGES:
                failures = rng.choice(TRANSIENT_CHOICES)
                if failures:
                    services[stage].failures[order_id] = failures
            orders.append((order_id, body))
        return cls(orders, services, poison)

    # -- the handlers: parse the event, call the dependency, return the next event's body --

    def handle(self, stage: str, order_id: str, body: bytes) -> bytes:
        order = json.loads(body)  # a corrupt body fails here, on every attempt
        if stage == "reserve-stock":
            unknown = [item["sku"] for item in order["items"] if item["sku"] not in CATALOG]
            if unknown:
                raise ValueError(f"unknown SKU {unknown[0]!r}")
            self.services[stage].call(order_id)
            order["reservation"] = f"R-{order_id}"
        elif stage == "charge-payment":
            if order["currency"] not in CURRENCIES:
                raise ValueError(f"unsupported currency {order['currency']!r}")
            self.services[stage].call(order_id)
            order["charged"] = round(
                sum(CATALOG[item["sku"]] * item["quantity"] for item in order["items"]), 2
            )
        else:
            if "postcode" not in order["address"]:
                raise ValueError("shipping address has no postcode")
            self.services[stage].call(order_id)
            order["tracking"] = f"TRK-{order_id[-4:]}"
        return json.dumps(order).encode()
