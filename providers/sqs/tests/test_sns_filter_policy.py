"""Portable filters as SNS filter policies (cloudqueue_sqs._filter_policy).

Three layers: the translation of each node kind and combination (expected JSON), a
property test comparing the policy under a small evaluator of SNS's documented matching
with ``Filter.matches``, and LocalStack routing a few policies end to end (plain boto3:
publish with attributes, see which raw-delivery queue gets what).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from cloudqueue import InvalidArgument, Unsupported, where
from cloudqueue.filters import Absent, AllOf, AnyOf, Equals, Exists, Filter, OneOf, Prefix
from cloudqueue.wire import encode_sqs_attribute, is_sqs_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudqueue_sqs import _filter_policy
from cloudqueue_sqs._filter_policy import NEVER_SENT_ATTRIBUTE, filter_policy
from cloudqueue_sqs.testing import LocalStack

kind, region, urgent, test = where("kind"), where("region"), where("urgent"), where("test")
NEVER = {NEVER_SENT_ATTRIBUTE: [{"exists": True}]}


def policy(f: Filter) -> Any:
    text = filter_policy(f)
    assert text == json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return json.loads(text)


# -- translations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (kind.equals("order"), {"kind": ["order"]}),
        (kind.one_of("refund", "order"), {"kind": ["order", "refund"]}),
        (region.startswith("eu-"), {"region": [{"prefix": "eu-"}]}),
        (urgent.exists(), {"urgent": [{"exists": True}]}),
        (test.absent(), {"test": [{"exists": False}]}),
        (where("dotted.name").equals("ünï 100%"), {"dotted.name": ["ünï 100%"]}),
        # AND on distinct attributes: one object; OR of one attribute: one array.
        (kind.equals("order") & region.startswith("eu-"),
         {"kind": ["order"], "region": [{"prefix": "eu-"}]}),
        (kind.equals("order") | kind.equals("refund"), {"kind": ["order", "refund"]}),
        (kind.equals("order") | kind.startswith("ref"), {"kind": ["order", {"prefix": "ref"}]}),
        (kind.equals("order") & test.absent(), {"kind": ["order"], "test": [{"exists": False}]}),
        # OR across attributes: "$or".
        (kind.equals("order") | urgent.exists(),
         {"$or": [{"kind": ["order"]}, {"urgent": [{"exists": True}]}]}),
        (kind.equals("order") | test.absent(),
         {"$or": [{"kind": ["order"]}, {"test": [{"exists": False}]}]}),
        # A missing attribute is not mixed with values in one array.
        (kind.absent() | kind.equals("order"),
         {"$or": [{"kind": [{"exists": False}]}, {"kind": ["order"]}]}),
        # Alternatives sharing a test write it once beside "$or".
        (kind.equals("order") & (region.startswith("eu") | test.absent()),
         {"kind": ["order"], "$or": [{"region": [{"prefix": "eu"}]}, {"test": [{"exists": False}]}]}),
        # Two alternatives differing on one attribute merge into one array.
        ((kind.equals("a") & region.equals("x")) | (kind.equals("b") & region.equals("x")),
         {"kind": ["a", "b"], "region": ["x"]}),
        # DNF: (a|b) & (c|d) has four alternatives.
        ((kind.equals("o") | urgent.exists()) & (region.equals("eu") | test.absent()),
         {"$or": [
             {"kind": ["o"], "region": ["eu"]},
             {"kind": ["o"], "test": [{"exists": False}]},
             {"region": ["eu"], "urgent": [{"exists": True}]},
             {"test": [{"exists": False}], "urgent": [{"exists": True}]},
         ]}),
    ],
    ids=str,
)
def test_translation(wanted: Filter, expected: Any) -> None:
    assert policy(wanted) == expected


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (kind.one_of("a", "b", "c") & kind.one_of("b", "c", "d"), {"kind": ["b", "c"]}),
        (kind.one_of("eu-1", "us-1") & kind.startswith("eu"), {"kind": ["eu-1"]}),
        (kind.startswith("eu") & kind.startswith("eu-w"), {"kind": [{"prefix": "eu-w"}]}),
        (kind.exists() & kind.equals("order"), {"kind": ["order"]}),
        (kind.exists() & kind.exists(), {"kind": [{"exists": True}]}),
        (kind.absent() & kind.absent(), {"kind": [{"exists": False}]}),
        # Merging an OR into an array drops what a prefix already admits.
        (kind.startswith("eu") | kind.one_of("eu-1", "us"), {"kind": ["us", {"prefix": "eu"}]}),
        (kind.startswith("eu") | kind.startswith("eu-"), {"kind": [{"prefix": "eu"}]}),
        (kind.exists() | kind.equals("x"), {"kind": [{"exists": True}]}),
        # An alternative another covers is dropped.
        (kind.equals("a") | (kind.equals("a") & urgent.exists()), {"kind": ["a"]}),
        # An unsatisfiable alternative is dropped, the others stay.
        ((kind.equals("a") & kind.equals("b")) | urgent.exists(), {"urgent": [{"exists": True}]}),
    ],
    ids=str,
)
def test_conditions_on_one_attribute_merge(wanted: Filter, expected: Any) -> None:
    assert policy(wanted) == expected


@pytest.mark.parametrize(
    "wanted",
    [
        kind.equals("a") & kind.equals("b"),
        kind.one_of("a", "b") & kind.one_of("c", "d"),
        kind.startswith("eu") & kind.startswith("us"),
        kind.equals("us-1") & kind.startswith("eu"),
        kind.absent() & kind.exists(),
        kind.absent() & kind.startswith("x"),
        (kind.equals("a") | kind.equals("b")) & kind.equals("c"),
    ],
    ids=str,
)
def test_an_unsatisfiable_filter_matches_nothing(wanted: Filter) -> None:
    # No message has an attribute under the reserved prefix by that name.
    assert policy(wanted) == NEVER
    assert NEVER_SENT_ATTRIBUTE.startswith("cloudqueue.")


def test_always_true_filter_still_has_a_policy_that_passes_everything() -> None:
    everything = policy(kind.exists() | kind.absent())
    assert sns_accepts(everything, {}) and sns_accepts(everything, {"kind": ("String", "x")})


# -- what SNS cannot express ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "words"),
    [
        (kind.equals(""), ["''", "empty"]),
        (kind.one_of("a", ""), ["''", "empty"]),
        (kind.equals("-"), ["'-'", "empty value"]),
        (kind.startswith("-"), ["'-'", "empty value"]),
        (kind.equals("x\x00y"), ["not SQS text", "base64"]),
        (kind.startswith("\x07"), ["not SQS text"]),
        (kind.equals("AA=="), ["'AA=='", "base64"]),  # what "\x00" is sent as
        (kind.equals('say "hi"'), ["double escaped"]),
        (kind.startswith("back\\"), ["double escaped"]),
        (where("$or").exists(), ["'$or'"]),
        (where("prefix").equals("x") | kind.exists(), ["'prefix'", "$or"]),
        # Refused even where simplification would drop the condition.
        (kind.equals("") & kind.equals("a"), ["''"]),
    ],
    ids=str,
)
def test_unexpressible_comparisons_are_unsupported(wanted: Filter, words: list[str]) -> None:
    with pytest.raises(Unsupported) as info:
        filter_policy(wanted)
    for word in words:
        assert word in str(info.value)


def test_base64_looking_values_that_are_not_a_sent_form_are_fine() -> None:
    # "QUJD" is the base64 of "ABC", which is SQS text and sent as is: no ambiguity.
    assert policy(kind.equals("QUJD")) == {"kind": ["QUJD"]}
    # Prefixes and existence work on any value, the empty one included.
    assert policy(kind.exists() & region.startswith("A")) == {
        "kind": [{"exists": True}], "region": [{"prefix": "A"}],
    }


def test_attribute_named_like_a_keyword_is_fine_outside_or() -> None:
    assert policy(where("prefix").equals("x")) == {"prefix": ["x"]}


# -- SNS's limits ----------------------------------------------------------------------------


def test_more_than_five_keys_is_invalid() -> None:
    six = AllOf(tuple(where(f"k{i}").exists() for i in range(6)))
    with pytest.raises(InvalidArgument) as info:
        filter_policy(six)
    assert "6 attributes" in str(info.value) and "at most 5 keys" in str(info.value)
    five = AllOf(tuple(where(f"k{i}").exists() for i in range(5)))
    assert len(policy(five)) == 5


def test_five_keys_across_or_alternatives_count_once_each() -> None:
    f = (kind.equals("a") & region.equals("x")) | (kind.equals("b") & urgent.exists()) | test.absent()
    assert len(json.loads(filter_policy(f))["$or"]) == 3


def test_total_combination_over_150_is_invalid() -> None:
    ten = kind.one_of(*(f"k{i}" for i in range(10)))
    sixteen = region.one_of(*(f"r{i}" for i in range(16)))
    with pytest.raises(InvalidArgument) as info:
        filter_policy(ten & sixteen)
    assert "160" in str(info.value) and "at most 150" in str(info.value)
    fifteen = region.one_of(*(f"r{i}" for i in range(15)))
    assert policy(ten & fifteen)  # exactly 150


def test_total_combination_sums_or_alternatives() -> None:
    # 10 x 8 + 10 x 8 = 160 once the shared key multiplies into both alternatives.
    ten = kind.one_of(*(f"k{i}" for i in range(10)))
    eight = region.one_of(*(f"r{i}" for i in range(8)))
    eight_more = urgent.one_of(*(f"u{i}" for i in range(8)))
    with pytest.raises(InvalidArgument) as info:
        filter_policy(ten & (eight | eight_more))
    assert "160" in str(info.value)
    seven = urgent.one_of(*(f"u{i}" for i in range(7)))
    assert "$or" in policy(ten & (eight | seven))  # 80 + 70 = 150


def test_policy_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # No filter within cloudqueue's own limits reaches 256 KB easily; the check is the
    # same at any figure.
    monkeypatch.setattr(_filter_policy, "MAX_POLICY_BYTES", 20)
    with pytest.raises(InvalidArgument) as info:
        filter_policy(kind.equals("a-rather-long-value"))
    assert "at most 20 bytes" in str(info.value) and "32 bytes" in str(info.value)


def test_a_filter_exploding_into_alternatives_is_invalid() -> None:
    # 2**8 alternatives on 16 attributes: refused while expanding, before the key count.
    pairs = [where(f"a{i}").equals("x") | where(f"b{i}").equals("y") for i in range(8)]
    with pytest.raises(InvalidArgument) as info:
        filter_policy(AllOf(tuple(pairs)))
    assert "more than 150 alternatives" in str(info.value)


def test_merging_many_alternatives_keeps_every_value() -> None:
    # Pairs differing on one attribute merge step by step into one array each.
    f = AnyOf(tuple(kind.equals(f"k{i}") & region.equals(f"r{i % 2}") for i in range(12)))
    assert policy(f) == {"$or": [
        {"kind": [f"k{i}" for i in sorted(range(0, 12, 2), key=str)], "region": ["r0"]},
        {"kind": [f"k{i}" for i in sorted(range(1, 12, 2), key=str)], "region": ["r1"]},
    ]}


# -- SNS's matching, from the documentation ------------------------------------------------


def sns_accepts(policy: Mapping[str, Any], attributes: Mapping[str, tuple[str, str]]) -> bool:
    """Whether SNS delivers a message with these (data type, string value) attributes,
    as the SNS developer guide describes attribute-based filtering: every key of the
    policy must match (AND), a key matches when one of its array's values does (OR);
    "$or" with an array of at least two objects ORs the objects (each ANDed with the
    keys beside it), and is an ordinary key name otherwise. A plain string matches an
    attribute present with that exact value (case-sensitive), {"prefix"} one whose
    value starts with it, {"exists": true/false} a present / missing attribute. The
    filter sees the value, not the data type (String.* custom types are Strings)."""
    return any(
        all(_key_matches(rules, attributes.get(name)) for name, rules in branch.items())
        for branch in _branches(policy)
    )


def _branches(policy: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    alternatives = policy.get("$or")
    if not (isinstance(alternatives, list) and len(alternatives) >= 2
            and all(isinstance(a, dict) for a in alternatives)):
        yield policy
        return
    beside = {name: rules for name, rules in policy.items() if name != "$or"}
    for alternative in alternatives:
        for branch in _branches(alternative):
            yield {**beside, **branch}


def _key_matches(rules: list[Any], attribute: tuple[str, str] | None) -> bool:
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if rule["exists"] == (attribute is not None):
                return True
        elif attribute is None:
            continue
        elif isinstance(rule, str):
            if attribute[1] == rule:
                return True
        elif isinstance(rule, dict) and "prefix" in rule:
            if attribute[1].startswith(rule["prefix"]):
                return True
        else:
            raise AssertionError(f"rule outside what the translation should produce: {rule!r}")
    return False


def sent(attributes: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Attributes as the SNS producer sends them."""
    return {name: encode_sqs_attribute(value) for name, value in attributes.items()}


def documented_matches(f: Filter, attributes: Mapping[str, str]) -> bool:
    """``Filter.matches`` with the one documented approximation: a prefix also matches a
    value that is not SQS text when the base64 text it is sent as starts with it."""
    if isinstance(f, AllOf):
        return all(documented_matches(part, attributes) for part in f.parts)
    if isinstance(f, AnyOf):
        return any(documented_matches(part, attributes) for part in f.parts)
    if isinstance(f, Prefix):
        value = attributes.get(f.name)
        if value and not is_sqs_text(value):
            sent_text = base64.b64encode(value.encode()).decode()
            return value.startswith(f.prefix) or sent_text.startswith(f.prefix)
    return f.matches(attributes)


# Vocabulary: names needing JSON care, values SNS can compare with, and values it cannot
# (stated here independently of the module's own rules).
_NAMES = ("kind", "re-gion", "dotted.name", "sp ace")
_EXPRESSIBLE = ("order", "eu-west", "eu", "o'neil", "ünï", "100%", "tab\there", "QUJD", "A")
_UNEXPRESSIBLE = ("", "-", "AA==", "AAAA", "x\x00y", 'say "hi"', "back\\slash")
_PREFIXES_OK = ("eu", "eu-", "o'", "A", "Q", "ü", "tab\t")
_PREFIXES_BAD = ("-", 'say "', "\x00", "back\\")
# Attribute values: all of the above, plus values sent base64 ("\x00" as "AA==").
_ATTRIBUTE_VALUES = (*_EXPRESSIBLE, *_UNEXPRESSIBLE, "\x00", "\x01abc", "eu\x02", "ok")


def _conditions() -> st.SearchStrategy[Filter]:
    names = st.sampled_from(_NAMES)
    values = st.sampled_from(_EXPRESSIBLE + _UNEXPRESSIBLE)
    return st.one_of(
        st.builds(Equals, names, values),
        st.builds(lambda n, vs: OneOf(n, tuple(vs)), names, st.lists(values, min_size=1, max_size=3)),
        st.builds(Prefix, names, st.sampled_from(_PREFIXES_OK + _PREFIXES_BAD)),
        st.builds(Exists, names),
        st.builds(Absent, names),
    )


def _filters() -> st.SearchStrategy[Filter]:
    """Filters up to three levels deep, two or three parts per level."""
    def combine(parts: st.SearchStrategy[Filter]) -> st.SearchStrategy[Filter]:
        return st.builds(
            lambda ps, all_: AllOf(tuple(ps)) if all_ else AnyOf(tuple(ps)),
            st.lists(parts, min_size=2, max_size=3), st.booleans(),
        )

    level1 = st.one_of(_conditions(), combine(_conditions()))
    level2 = st.one_of(level1, combine(level1))
    return st.one_of(level2, combine(level2))


def _compares_unexpressible(f: Filter) -> bool:
    for condition in f.conditions():
        if isinstance(condition, Equals) and condition.value in _UNEXPRESSIBLE:
            return True
        if isinstance(condition, OneOf) and set(condition.values) & set(_UNEXPRESSIBLE):
            return True
        if isinstance(condition, Prefix) and condition.prefix in _PREFIXES_BAD:
            return True
    return False


@settings(max_examples=400, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    wanted=_filters(),
    attribute_sets=st.lists(
        st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(_ATTRIBUTE_VALUES), max_size=4),
        min_size=1, max_size=20,
    ),
)
def test_policy_routes_as_matches_decides(wanted: Filter, attribute_sets: list[dict[str, str]]) -> None:
    try:
        text = filter_policy(wanted)
    except Unsupported:
        assert _compares_unexpressible(wanted), f"refused an expressible filter: {wanted}"
        return
    except InvalidArgument as error:
        assert "at most" in str(error)
        return
    assert not _compares_unexpressible(wanted), f"translated an unexpressible filter: {wanted}"
    translated = json.loads(text)
    for attributes in attribute_sets:
        assert sns_accepts(translated, sent(attributes)) == documented_matches(wanted, attributes), (
            f"filter {wanted} as {text} on {attributes!r}"
        )


def test_the_documented_prefix_approximation_happens_as_documented() -> None:
    # "\x00" is sent as "AA==": the prefix "A" passes it, though "\x00" does not start with "A".
    translated = policy(kind.startswith("A"))
    assert sns_accepts(translated, sent({"kind": "\x00"}))
    assert not kind.startswith("A").matches({"kind": "\x00"})
    # An SQS-text value is compared as it is.
    assert not sns_accepts(translated, sent({"kind": "BA"}))


# -- end to end on LocalStack (plain boto3) ---------------------------------------------------


def _client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )


_E2E_FILTERS: tuple[Filter, ...] = (
    kind.equals("order") & where("re-gion").startswith("eu-"),
    kind.one_of("order", "refund") | urgent.exists(),
    (kind.equals("order") & test.absent()) | where("re-gion").equals("ünï"),
    kind.equals("a") & kind.equals("b"),  # nothing
    kind.exists() & urgent.absent(),
)
_E2E_MESSAGES: tuple[dict[str, str], ...] = (
    {"kind": "order", "re-gion": "eu-west"},
    {"kind": "order", "re-gion": "us-east", "test": "1"},
    {"kind": "refund"},
    {"urgent": ""},  # sent as "-" with the empty type: exists still sees it
    {"kind": "Order", "re-gion": "eu-west"},
    {"re-gion": "ünï", "test": "x"},
    {"kind": "\x00", "urgent": "no"},  # sent base64
    {},
    {"kind": "a"},
    {"kind": "order"},
)


def test_localstack_routes_like_matches(localstack: LocalStack) -> None:
    sns, sqs = _client("sns", localstack.endpoint_url), _client("sqs", localstack.endpoint_url)
    run = uuid.uuid4().hex[:10]
    topic = sns.create_topic(Name=f"cq-filter-{run}")["TopicArn"]
    queues: list[str] = []
    try:
        for index, wanted in enumerate(_E2E_FILTERS):
            url = sqs.create_queue(QueueName=f"cq-filter-{run}-{index}")["QueueUrl"]
            queues.append(url)
            found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            arn = found["Attributes"]["QueueArn"]
            sns.subscribe(
                TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True,
                Attributes={
                    "RawMessageDelivery": "true",
                    "FilterPolicyScope": "MessageAttributes",
                    "FilterPolicy": filter_policy(wanted),
                },
            )
        for index, attributes in enumerate(_E2E_MESSAGES):
            sns.publish(
                TopicArn=topic, Message=str(index),
                MessageAttributes={
                    name: {"DataType": data_type, "StringValue": value}
                    for name, (data_type, value) in sent(attributes).items()
                },
            )
        for url, wanted in zip(queues, _E2E_FILTERS, strict=True):
            expected = sorted(i for i, a in enumerate(_E2E_MESSAGES) if wanted.matches(a))
            assert _receive_all(sqs, url, len(expected)) == expected, f"filter {wanted}"
    finally:
        for url in queues:
            sqs.delete_queue(QueueUrl=url)
        sns.delete_topic(TopicArn=topic)


def _receive_all(sqs: Any, url: str, expected: int) -> list[int]:
    """Indexes of the messages in the queue: until ``expected`` came, then one more empty
    long poll so that extra deliveries would show too."""
    got: list[int] = []
    empty_polls = 0
    while empty_polls < (1 if len(got) >= expected else 10):
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        batch = reply.get("Messages", [])
        empty_polls = 0 if batch else empty_polls + 1
        for message in batch:
            got.append(int(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(got)
