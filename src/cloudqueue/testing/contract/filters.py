"""Subscription filters: each subscription of a topic gets exactly the messages its
filter matches, as :meth:`cloudqueue.filters.Filter.matches` decides.

Runs on harnesses with ``supports_fan_out``; on others it checks that a filter is
refused. The random-filter case draws filters and attribute sets and compares what
the provider delivers with ``matches``: on the clouds' local servers it checks the
provider's translation (Pub/Sub expression, Service Bus rule) against the server's
own evaluation.

A provider that cannot compare with some values (SNS: the empty one) lists them in
``harness.filter_unexpressible_values``: a filter comparing with one must raise
Unsupported at declare and leave the subscription as it was; the random case checks
that and routes by the filters that remain.

Destinations with filters are made by declaring each subscription of a topic made by
``harness.make(subscriptions=N)`` again with its filter. A provider whose filters
cannot change after creation (Pub/Sub) lets its harness implement
:class:`FilteringHarness` to create the subscriptions with their filters instead.
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cloudqueue
from cloudqueue.filters import Absent, Equals, Exists, Filter, OneOf, Prefix, where
from cloudqueue.wire import CONTENT_TYPE_ATTRIBUTE

from ._base import SuiteBase, cleaned_up, collect, quiet_for
from ._harness import Destination, Harness

__all__ = ["FilteringHarness", "Filters"]

MakeFiltered = Callable[[Sequence[Filter | None]], Destination]


class FilteringHarness(abc.ABC):
    """Mix into a harness whose provider cannot add a filter to an existing subscription."""

    @abc.abstractmethod
    def make_filtered(self, filters: Sequence[Filter | None]) -> Destination:
        """A fresh topic with one subscription per entry of ``filters`` (None: no
        filter), in order: the first is ``consumer_url``, the others
        ``other_subscriptions``."""


def _declare_filters(harness: Harness, filters: Sequence[Filter | None]) -> Destination:
    destination = harness.make(subscriptions=len(filters))
    urls = (destination.consumer_url, *destination.other_subscriptions)
    for url, wanted in zip(urls, filters, strict=True):
        if wanted is not None:
            cloudqueue.declare(
                url, filter=wanted, lease=destination.lease, ordered=destination.ordered,
                deduplicated=destination.deduplicated,
                dead_letter_after=destination.dead_letter_after,
            )
    return destination


def _compares_any(wanted: Filter, values: frozenset[str]) -> bool:
    """Whether ``wanted`` compares with (or matches a prefix from) one of ``values``."""
    for condition in wanted.conditions():
        if isinstance(condition, Equals) and condition.value in values:
            return True
        if isinstance(condition, OneOf) and not values.isdisjoint(condition.values):
            return True
        if isinstance(condition, Prefix) and condition.prefix in values:
            return True
    return False


def _renamed(wanted: Filter, names: Mapping[str, str]) -> Filter:
    """``wanted`` with its attribute names replaced as ``names`` says."""

    def walk(node: object) -> object:
        if isinstance(node, dict):
            return {k: names.get(v, v) if k == "attribute" else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return Filter.from_json(walk(wanted.to_json()))


#: Per harness type: the drawn names its provider refuses as attribute names, and the
#: name each is sent under instead (SNS and SQS refuse the space in "sp ace").
_RENAMES: dict[type[Harness], dict[str, str]] = {}


def _renames_for(harness: Harness) -> dict[str, str]:
    renames = _RENAMES.get(type(harness))
    if renames is None:
        probe = harness.make()
        try:
            pattern = cloudqueue.capabilities(probe.producer_url).limits.attribute_name_pattern
        finally:
            harness.cleanup(probe)
        valid = re.compile(pattern or ".*")
        renames = _RENAMES[type(harness)] = {
            name: re.sub(r"[^A-Za-z0-9_]", "_", name) for name in _NAMES if not valid.fullmatch(name)
        }
    return renames


def _declare_settings(destination: Destination) -> dict[str, object]:
    """The settings a destination was made with, to declare its subscriptions again."""
    return dict(
        lease=destination.lease, ordered=destination.ordered,
        deduplicated=destination.deduplicated, dead_letter_after=destination.dead_letter_after,
    )


#: Attribute names and values chosen to need quoting or escaping somewhere: dots,
#: hyphens and spaces in names; quotes, LIKE wildcards, the escape characters of
#: Pub/Sub (backslash) and Service Bus (our '!'), and non-ASCII in values.
_NAMES = ("kind", "re-gion", "dotted.name", "sp ace", "_under")
_VALUES = ("", "eu-west", "o'neil", 'say "hi"', "100%", "a_b", "x!y", "back\\slash", "ünï", "eu")
_PREFIXES = ("eu", "eu-", "o'", "100", "a_", "x!", "back\\", "ü", 'say "')

_MESSAGES: tuple[dict[str, str], ...] = (
    {"kind": "order", "re-gion": "eu-west"},
    {"kind": "refund", "re-gion": "us-east"},
    {"kind": "order"},
    {"re-gion": "eu-north", "urgent": ""},
    {"kind": "test", "urgent": "yes"},
    {},
    {"kind": "Order", "re-gion": "EU-west"},
    {"kind": "order", "re-gion": "eu", "urgent": "no"},
)


def _conditions() -> st.SearchStrategy[Filter]:
    names = st.sampled_from(_NAMES)
    values = st.sampled_from(_VALUES)
    return st.one_of(
        st.builds(Equals, names, values),
        st.builds(lambda n, vs: OneOf(n, tuple(vs)), names, st.lists(values, min_size=1, max_size=2)),
        st.builds(Prefix, names, st.sampled_from(_PREFIXES)),
        st.builds(Exists, names),
        st.builds(Absent, names),
    )


def _small_filters() -> st.SearchStrategy[Filter]:
    """At most three conditions, so that every provider's length limit holds them."""
    condition = _conditions()
    pair = st.builds(lambda a, b, both: a & b if both else a | b, condition, condition, st.booleans())
    triple = st.builds(
        lambda a, b, c, shape: (a & b) | c if shape else (a | b) & c,
        condition, condition, condition, st.booleans(),
    )
    return st.one_of(condition, pair, triple)


_ATTRIBUTE_SETS = st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(_VALUES), max_size=3)


class Filters(SuiteBase):
    @pytest.fixture
    def make_filtered(self, harness: Harness) -> Iterator[MakeFiltered]:
        def make(filters: Sequence[Filter | None]) -> Destination:
            if isinstance(harness, FilteringHarness):
                return harness.make_filtered(filters)
            return _declare_filters(harness, filters)

        yield from cleaned_up(harness, make)

    @staticmethod
    def _filters_refused(make: object, harness: Harness) -> bool:
        """Where filters cannot work (no topics, or topics without filters), a filter is
        refused and nothing changes; True when that was checked (the case ends there)."""
        if harness.supports_fan_out and harness.supports_filters:
            return False
        if not harness.supports_fan_out:
            dest: Destination = make()  # type: ignore[operator]
            assert not cloudqueue.capabilities(dest.producer_url).filters
            with pytest.raises((cloudqueue.InvalidArgument, cloudqueue.Unsupported)):
                cloudqueue.declare(dest.consumer_url, filter=where("kind").equals("order"))
            return True
        dest = make(subscriptions=2)  # type: ignore[operator]
        assert not cloudqueue.capabilities(dest.consumer_url).filters
        with pytest.raises(cloudqueue.Unsupported, match="filter"):
            cloudqueue.declare(dest.consumer_url, filter=where("kind").equals("order"))
        # Unchanged: both subscriptions still get everything.
        with cloudqueue.open_producer(dest.producer_url) as producer:
            producer.send(b"x", attributes={"kind": "refund"})
        for url in (dest.consumer_url, *dest.other_subscriptions):
            with cloudqueue.open_consumer(url) as consumer:
                assert [m.body for m in collect(consumer, 1, timeout=30)] == [b"x"]
        return True

    @staticmethod
    def _send(destination: Destination, attribute_sets: Sequence[Mapping[str, str]]) -> dict[str, int]:
        """Send one message per attribute set; the message id of each, by index."""
        with cloudqueue.open_producer(destination.producer_url) as producer:
            ids = producer.send_batch(
                [cloudqueue.Message(str(i), attributes=dict(a)) for i, a in enumerate(attribute_sets)]
            )
        return {message_id: index for index, message_id in enumerate(ids)}

    def _assert_routed(
        self, harness: Harness, destination: Destination, filters: Sequence[Filter | None],
        attribute_sets: Sequence[Mapping[str, str]],
    ) -> None:
        """Every subscription received exactly the messages its filter matches."""
        urls = (destination.consumer_url, *destination.other_subscriptions)
        for url, wanted in zip(urls, filters, strict=True):
            expected = sorted(
                i for i, a in enumerate(attribute_sets) if wanted is None or wanted.matches(a)
            )
            with cloudqueue.open_consumer(url) as consumer:
                got = collect(consumer, len(expected), timeout=30)
                got += quiet_for(consumer, harness.timer_slack)
            received = sorted(int(message.text()) for message in got)
            assert received == expected, f"filter {wanted} on {url}"

    # -- cases -----------------------------------------------------------------------------

    def test_a_filter_on_a_url_without_a_subscription_is_invalid(self, make: object) -> None:
        dest: Destination = make()  # type: ignore[operator]
        with pytest.raises(cloudqueue.InvalidArgument) as info:
            cloudqueue.declare(dest.producer_url, filter=where("kind").equals("order"))
        assert "subscription" in str(info.value)

    def test_capabilities_say_whether_filters_work(
        self, make: object, harness: Harness, make_filtered: MakeFiltered
    ) -> None:
        if self._filters_refused(make, harness):
            return
        dest: Destination = make(subscriptions=2)  # type: ignore[operator]
        if not cloudqueue.capabilities(dest.consumer_url).filters:
            with pytest.raises(cloudqueue.Unsupported):
                cloudqueue.declare(dest.consumer_url, filter=where("kind").equals("order"))
            return
        filtered = make_filtered([where("kind").exists(), None])
        assert cloudqueue.capabilities(filtered.consumer_url).filters

    def test_each_condition_routes_exactly_the_matching_messages(
        self, make: object, harness: Harness, make_filtered: MakeFiltered
    ) -> None:
        if self._filters_refused(make, harness):
            return
        filters: list[Filter | None] = [
            None,
            where("kind").equals("order"),
            where("kind").one_of("order", "refund"),
            where("re-gion").startswith("eu-"),
            where("urgent").exists(),
            where("urgent").absent(),
        ]
        destination = make_filtered(filters)
        self._send(destination, _MESSAGES)
        self._assert_routed(harness, destination, filters, _MESSAGES)

    def test_filters_on_the_content_type_attribute(
        self, make: object, harness: Harness, make_filtered: MakeFiltered
    ) -> None:
        # content-type is an attribute like any other to a filter, also where the driver
        # carries it in the transport's native content type (Service Bus, AMQP).
        if self._filters_refused(make, harness):
            return
        name = CONTENT_TYPE_ATTRIBUTE
        filters: list[Filter | None] = [
            where(name).equals("application/json"),
            where(name).startswith("text/"),
            where(name).absent(),
        ]
        messages = [{name: "application/json"}, {name: "text/plain"}, {"kind": "order"},
                    {name: "application/json", "kind": "order"}]
        destination = make_filtered(filters)
        self._send(destination, messages)
        self._assert_routed(harness, destination, filters, messages)

    def test_and_or_combinations(
        self, make: object, harness: Harness, make_filtered: MakeFiltered
    ) -> None:
        if self._filters_refused(make, harness):
            return
        order, eu, urgent = (
            where("kind").equals("order"), where("re-gion").startswith("eu"), where("urgent").exists()
        )
        filters: list[Filter | None] = [
            order & eu,
            order | urgent,
            (order & eu) | where("kind").equals("test"),
            order & (eu | where("urgent").absent()),
        ]
        destination = make_filtered(filters)
        self._send(destination, _MESSAGES)
        self._assert_routed(harness, destination, filters, _MESSAGES)

    def test_declaring_another_filter_routes_later_messages_by_it(
        self, make: object, harness: Harness, make_filtered: MakeFiltered
    ) -> None:
        if self._filters_refused(make, harness):
            return
        first, second = where("kind").equals("order"), where("kind").equals("refund")
        destination = make_filtered([first, None])
        url = destination.consumer_url
        settings_kept = dict(
            lease=destination.lease, ordered=destination.ordered,
            deduplicated=destination.deduplicated, dead_letter_after=destination.dead_letter_after,
        )
        self._send(destination, [{"kind": "order"}, {"kind": "refund"}])
        try:
            cloudqueue.declare(url, filter=second, **settings_kept)  # type: ignore[arg-type]
        except cloudqueue.FailedPrecondition as refused:
            # A provider that cannot change a filter says how to get another one.
            assert "delete" in str(refused)
            with pytest.raises(cloudqueue.FailedPrecondition):
                cloudqueue.declare(url, **settings_kept)  # type: ignore[arg-type]
            cloudqueue.declare(url, filter=first, **settings_kept)  # type: ignore[arg-type]
            return
        # Routing was decided when each message was published.
        self._send(destination, [{"kind": "order"}, {"kind": "refund"}])
        with cloudqueue.open_consumer(url) as consumer:
            got = collect(consumer, 2, timeout=30)
            got += quiet_for(consumer, harness.timer_slack)
        assert sorted((m.text(), m.attributes["kind"]) for m in got) == [
            ("0", "order"), ("1", "refund"),
        ]
        cloudqueue.declare(url, **settings_kept)  # type: ignore[arg-type]  # no filter: all
        self._send(destination, [{"kind": "order"}, {}])
        with cloudqueue.open_consumer(url) as consumer:
            got = collect(consumer, 2, timeout=30)
        assert sorted(m.text() for m in got) == ["0", "1"]

    def test_unexpressible_values_are_refused_at_declare(
        self, make: object, harness: Harness, make_filtered: MakeFiltered
    ) -> None:
        if self._filters_refused(make, harness) or not harness.filter_unexpressible_values:
            return
        destination = make_filtered([where("kind").equals("order"), None])
        url = destination.consumer_url
        for value in sorted(harness.filter_unexpressible_values):
            for refused in (
                where("kind").equals(value),
                where("kind").equals("order") | where("kind").one_of("refund", value),
            ):
                with pytest.raises(cloudqueue.Unsupported) as info:
                    cloudqueue.declare(url, filter=refused, **_declare_settings(destination))  # type: ignore[arg-type]
                assert str(info.value), f"Unsupported for {refused} says nothing"
        # The refusals left the subscription's filter as it was.
        attribute_sets = [{"kind": "order"}, {"kind": "refund"}, {}]
        self._send(destination, attribute_sets)
        self._assert_routed(harness, destination, [where("kind").equals("order"), None], attribute_sets)

    @settings(
        max_examples=4,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples on every run: a failure is reproducible
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        filters=st.lists(_small_filters(), min_size=3, max_size=3),
        attribute_sets=st.lists(_ATTRIBUTE_SETS, min_size=40, max_size=50),
    )
    def test_random_filters_route_as_matches_decides(
        self, make: object, harness: Harness, make_filtered: MakeFiltered,
        filters: list[Filter], attribute_sets: list[dict[str, str]],
    ) -> None:
        if self._filters_refused(make, harness):
            return
        renames = _renames_for(harness)
        if renames:
            # Names the provider refuses would fail the send, not test the filter.
            filters = [_renamed(f, renames) for f in filters]
            attribute_sets = [{renames.get(k, k): v for k, v in a.items()} for a in attribute_sets]
        unexpressible = harness.filter_unexpressible_values
        refused = [f if _compares_any(f, unexpressible) else None for f in filters]
        # A filter the provider cannot express is refused below and its subscription
        # keeps receiving everything.
        all_filters: list[Filter | None] = [
            None if refusal is not None else f for f, refusal in zip(filters, refused, strict=True)
        ] + [None]
        destination = make_filtered(all_filters)
        try:
            urls = (destination.consumer_url, *destination.other_subscriptions)
            for url, refusal in zip(urls, refused, strict=False):
                if refusal is not None:
                    with pytest.raises(cloudqueue.Unsupported):
                        cloudqueue.declare(url, filter=refusal, **_declare_settings(destination))  # type: ignore[arg-type]
            self._send(destination, attribute_sets)
            self._assert_routed(harness, destination, all_filters, attribute_sets)
        finally:
            with contextlib.suppress(cloudqueue.QueueError):
                cloudqueue.delete(destination.producer_url)
