"""Decoding cost per message: ``message.decode(Type)`` vs hand-written ``json.loads`` plus
model construction, for pydantic and msgspec, in the same run.

Run: ``python bench/bench_codecs.py [--messages N] [--rounds N]``. The messages are real
:class:`cloudqueue.ReceivedMessage` objects received from a memory queue, so the codec path
measured is the one handlers take (the decoder prepared for the type, looked up by it, and
the content-type check). Each variant decodes every message once per round; the best
round of each counts (the least disturbed by the machine), and rounds interleave the
variants. Bar (issue 17): the codec within 10% of the hand-written code, i.e. a ratio
codec/hand <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import _report
import msgspec
import pydantic

import cloudqueue


class OrderModel(pydantic.BaseModel):
    id: int
    customer: str
    total: float
    lines: list[str]
    express: bool


class OrderStruct(msgspec.Struct):
    id: int
    customer: str
    total: float
    lines: list[str]
    express: bool


def received(count: int) -> list[cloudqueue.ReceivedMessage]:
    """``count`` pydantic-encoded orders, received (and acked) from a memory queue."""
    url = f"memory://bench-codecs-{time.monotonic_ns()}"
    cloudqueue.declare(url)
    with cloudqueue.open_producer(url) as producer:
        producer.send_batch(
            cloudqueue.Message(
                OrderModel(id=i, customer=f"customer-{i % 97}", total=i * 1.25,
                           lines=["apple", "pear", "plum"][: 1 + i % 3], express=i % 2 == 0)
                .model_dump_json(),
                attributes={"content-type": "application/json"},
            )
            for i in range(count)
        )
    got: list[cloudqueue.ReceivedMessage] = []
    with cloudqueue.open_consumer(url) as consumer:
        while len(got) < count:
            batch = consumer.receive(1000, wait=1.0)
            for message in batch:
                message.ack()
            got.extend(batch)
    return got


def best_seconds(work: Callable[[], object], rounds: int) -> float:
    fastest = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def record(per_message: dict[str, float]) -> None:
    """Hand run_all the decoding rates (messages per second, from µs per message): the
    codec against the hand-written ``json.loads`` + model it should cost no more than."""
    kinds: dict[str, _report.Kind] = {"message.decode": "cloudqueue", "json.loads": "baseline"}
    for name, micros in per_message.items():
        library, variant = name.split(": ", 1)
        kind: _report.Kind = next((k for marker, k in kinds.items() if marker in variant), "reference")
        _report.figure("codecs", f"decode JSON into a {library} model", variant, 1e6 / micros,
                       kind=kind, unit="decodes/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    messages = received(args.messages)
    variants: dict[str, Callable[[], object]] = {
        "pydantic: message.decode(Model)": lambda: [m.decode(OrderModel) for m in messages],
        "pydantic: Model(**json.loads(body))": lambda: [OrderModel(**json.loads(m.body)) for m in messages],
        "pydantic: Model.model_validate_json(body)": lambda: [
            OrderModel.model_validate_json(m.body) for m in messages
        ],
        "msgspec: message.decode(Struct)": lambda: [m.decode(OrderStruct) for m in messages],
        "msgspec: Struct(**json.loads(body))": lambda: [OrderStruct(**json.loads(m.body)) for m in messages],
        "msgspec: msgspec.json.decode(body, type=Struct)": lambda: [
            msgspec.json.decode(m.body, type=OrderStruct) for m in messages
        ],
    }
    # Rounds interleave the variants, so a slow spell of the machine hits all of them.
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.rounds):
        for name, work in variants.items():
            best[name] = min(best[name], best_seconds(work, 1))
    per_message = {name: seconds / args.messages * 1e6 for name, seconds in best.items()}
    for name, micros in per_message.items():
        print(f"{name:<52} {micros:7.2f} µs/message")
    print()
    record(per_message)
    for library, codec, hand in (
        ("pydantic", "pydantic: message.decode(Model)", "pydantic: Model(**json.loads(body))"),
        ("pydantic", "pydantic: message.decode(Model)", "pydantic: Model.model_validate_json(body)"),
        ("msgspec", "msgspec: message.decode(Struct)", "msgspec: Struct(**json.loads(body))"),
        ("msgspec", "msgspec: message.decode(Struct)", "msgspec: msgspec.json.decode(body, type=Struct)"),
    ):
        ratio = per_message[codec] / per_message[hand]
        _report.bar(f"{library}: decode(Type) / {hand.split(': ', 1)[1]}", ratio, at_most=1.10)
        verdict = "within 10%" if ratio <= 1.10 else "OVER the 10% bar"
        print(f"{library:<9} codec / {hand.split(': ', 1)[1]:<40} {ratio:5.2f}x  {verdict}")


if __name__ == "__main__":
    main()
