"""Portable subscription filters: the values, their validation, semantics, text and JSON
forms, the Pub/Sub and Service Bus translations as pure functions, declare's checks,
and SQLite files made before filters existed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudqueue_azure_servicebus._filter import rule_filter, sql_expression
from cloudqueue_pubsub._filter import expression
from plugin_registration import registered

import cloudqueue
from cloudqueue import where
from cloudqueue.cli import main
from cloudqueue.driver import (
    Capabilities,
    Declaration,
    Provider,
    SubscriptionDriver,
    TopicDriver,
    Url,
)
from cloudqueue.filters import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    Absent,
    AllOf,
    AnyOf,
    Equals,
    Exists,
    Filter,
    OneOf,
    Prefix,
)
from cloudqueue.providers._sqlite.schema import SCHEMA, SCHEMA_VERSION

ORDER = where("type").equals("order")
EU = where("region").startswith("eu-")

# -- values ------------------------------------------------------------------------------


def test_operators_build_flat_immutable_hashable_values() -> None:
    urgent = where("urgent").exists()
    combined = ORDER & EU & urgent
    assert combined == AllOf((ORDER, EU, urgent))  # flattened, not nested
    assert (ORDER | EU) | urgent == AnyOf((ORDER, EU, urgent))
    assert hash(combined) == hash(AllOf((ORDER, EU, urgent)))
    assert len({combined, AllOf((ORDER, EU, urgent))}) == 1
    with pytest.raises(AttributeError):
        ORDER.value = "refund"  # type: ignore[misc]


def test_one_of_keeps_its_values_sorted_without_repeats() -> None:
    assert where("t").one_of("b", "a", "b").values == ("a", "b")
    assert where("t").one_of("b", "a") == where("t").one_of("a", "b")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: where(""), "non-empty str"),
        (lambda: where(3), "non-empty str, not int"),  # type: ignore[arg-type]
        (lambda: where("x" * 257), "at most 256"),
        (lambda: where("cloudqueue.encoding"), "reserved"),
        (lambda: where("a\ud800"), "lone surrogate"),
        (lambda: where("t").equals(1), "must be a str, not int"),  # type: ignore[arg-type]
        (lambda: where("t").equals("v" * 1025), "at most 1024"),
        (lambda: where("t").one_of(), "at least one value"),
        (lambda: where("t").one_of(*map(str, range(MAX_CONDITIONS + 1))), f"at most {MAX_CONDITIONS}"),
        (lambda: where("t").startswith(""), "use where('t').exists()"),
        (lambda: AllOf(()), "at least one filter"),
        (lambda: AnyOf((ORDER, "x")), "not str"),  # type: ignore[arg-type]
        (lambda: AllOf(ORDER), "sequence of filters"),  # type: ignore[arg-type]
    ],
)
def test_bad_filters_are_refused_naming_the_problem(build: object, message: str) -> None:
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        build()  # type: ignore[operator]
    assert message in str(info.value)


def test_size_and_depth_limits() -> None:
    many = [where(f"a{i}").exists() for i in range(MAX_CONDITIONS + 1)]
    with pytest.raises(cloudqueue.InvalidArgument, match=f"at most {MAX_CONDITIONS}"):
        AllOf(tuple(many))
    deep: Filter = where("a").exists()
    for level in range(MAX_DEPTH):
        other = where(f"b{level}").exists()
        deep = (deep | other) if level % 2 == 0 else (deep & other)
    assert deep.depth() == MAX_DEPTH
    with pytest.raises(cloudqueue.InvalidArgument, match=f"at most {MAX_DEPTH}"):
        deep & (where("x").exists() | where("y").exists())  # one level more


# -- semantics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "passing", "failing"),
    [
        (ORDER, [{"type": "order"}], [{}, {"type": "Order"}, {"type": "orders"}]),
        (where("t").equals(""), [{"t": ""}], [{}, {"t": " "}]),
        (where("t").one_of("a", "b"), [{"t": "a"}, {"t": "b"}], [{}, {"t": "c"}]),
        (EU, [{"region": "eu-west"}, {"region": "eu-"}], [{}, {"region": "eu"}, {"region": "EU-x"}]),
        (where("u").exists(), [{"u": ""}, {"u": "x"}], [{}, {"U": "x"}]),
        (where("u").absent(), [{}, {"U": "x"}], [{"u": ""}]),
    ],
)
def test_conditions_match_as_documented(
    condition: Filter, passing: list[dict[str, str]], failing: list[dict[str, str]]
) -> None:
    assert all(condition.matches(a) for a in passing)
    assert not any(condition.matches(a) for a in failing)


def test_and_or_match_as_documented() -> None:
    both, either = ORDER & EU, ORDER | EU
    assert both.matches({"type": "order", "region": "eu-1"})
    assert not both.matches({"type": "order"})
    assert either.matches({"type": "order"}) and either.matches({"region": "eu-1"})
    assert not either.matches({"type": "refund", "region": "us"})


# -- text and JSON ---------------------------------------------------------------------------


def test_str_reads_like_the_condition() -> None:
    assert str(ORDER & EU) == 'type = "order" and region starts with "eu-"'
    assert str((ORDER | where("urgent").exists()) & where("test").absent()) == (
        '(type = "order" or urgent exists) and test is absent'
    )
    assert str(where("a b").one_of("x", 'y"')) == '"a b" in ("x", "y\\"")'


def test_json_round_trips() -> None:
    tricky = (
        (ORDER & EU)
        | where("kind").one_of("a", "b")
        | (where("urgent").exists() & where("dotted.name").absent())
        | where("ü'\"").equals("\\%_")
    )
    assert tricky.to_json()["any"][0] == {
        "all": [{"attribute": "type", "equals": "order"},
                {"attribute": "region", "starts_with": "eu-"}]
    }
    assert Filter.from_json(tricky.to_json()) == tricky
    assert Filter.from_json(tricky.to_json_text()) == tricky


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "at $ must be an object, not a list"),
        ('{"all": {}}', "at $.all must be a list"),
        ('{"all": [{"attribute": "a", "equal": "b"}]}', "at $.all[0]"),
        ('{"attribute": "a", "exists": false}', '"exists" takes true'),
        ('{"attribute": "a", "one_of": "b"}', "one_of takes a list"),
        ('{"attribute": "a", "equals": 1}', "must be a str, not int"),
        ('{"any": []}', "at least one filter"),
    ],
)
def test_bad_json_is_refused_naming_where(text: str, message: str) -> None:
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        Filter.from_json(text)
    assert message in str(info.value)


# -- Pub/Sub translation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "text"),
    [
        (ORDER, 'attributes.type = "order"'),
        (where("t").one_of("b", "a"), 'attributes.t = "a" OR attributes.t = "b"'),
        (EU, 'hasPrefix(attributes.region, "eu-")'),
        (where("u").exists(), "attributes:u"),
        (where("u").absent(), "NOT attributes:u"),
        (where("iana.org/lang").equals("en"), 'attributes."iana.org/lang" = "en"'),
        (where('q"\\').equals('say "hi" \\o/'), 'attributes."q\\"\\\\" = "say \\"hi\\" \\\\o/"'),
        (where("re-gion").absent(), 'NOT attributes:"re-gion"'),
        (
            (ORDER | where("t").one_of("x", "y")) & where("u").absent(),
            '(attributes.type = "order" OR attributes.t = "x" OR attributes.t = "y")'
            " AND NOT attributes:u",
        ),
        (ORDER & (EU | where("t").one_of("x", "y")),
         'attributes.type = "order" AND (hasPrefix(attributes.region, "eu-") OR '
         'attributes.t = "x" OR attributes.t = "y")'),
        (where("t").one_of("x", "y") & ORDER,
         '(attributes.t = "x" OR attributes.t = "y") AND attributes.type = "order"'),
    ],
)
def test_pubsub_expressions(wanted: Filter, text: str) -> None:
    assert expression(wanted) == text


def test_pubsub_refuses_an_expression_over_256_bytes() -> None:
    wanted = where("a" * 100).equals("é" * 60) & where("b").equals("c")
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        expression(wanted)
    assert "256" in str(info.value) and "bytes" in str(info.value)


# -- Service Bus translation ---------------------------------------------------------------------


def test_service_bus_uses_a_correlation_filter_for_equals_on_distinct_names() -> None:
    assert rule_filter(ORDER).properties == {"type": "order"}
    both = rule_filter(ORDER & where("re-gion").equals("eu"))
    assert both.properties == {"type": "order", "re-gion": "eu"}
    # The same name twice (case-insensitive on Service Bus) cannot be one dict entry.
    twice = rule_filter(ORDER & where("Type").equals("x"))
    assert twice.sql_expression == "type = 'order' AND Type = 'x'"
    assert type(rule_filter(None)).__name__ == "TrueRuleFilter"


@pytest.mark.parametrize(
    ("wanted", "text"),
    [
        (where("t").one_of("b", "a"), "t IN ('a', 'b')"),
        (where("t").one_of("a"), "t = 'a'"),
        (where("p").startswith("10%_!x"), "p LIKE '10!%!_!!x%' ESCAPE '!'"),
        (where("u").exists(), "EXISTS(u)"),
        (where("u").absent(), "NOT EXISTS(u)"),
        (where("dotted.name").exists(), "EXISTS([dotted.name])"),
        (where("_under").exists(), "EXISTS([_under])"),
        (where("x]y").exists(), "EXISTS([x]]y])"),
        (where("in").exists(), "EXISTS([in])"),
        (where("o").startswith("o'n"), "o LIKE 'o''n%' ESCAPE '!'"),
        (ORDER | (EU & where("u").absent()),
         "type = 'order' OR (region LIKE 'eu-%' ESCAPE '!' AND NOT EXISTS(u))"),
    ],
)
def test_service_bus_sql(wanted: Filter, text: str) -> None:
    assert sql_expression(wanted) == text
    if not isinstance(wanted, Equals):
        assert rule_filter(wanted).sql_expression == text


def test_service_bus_refuses_sql_over_1024_characters() -> None:
    wanted = AnyOf(tuple(where(f"name{i}").startswith("v" * 60) for i in range(16)))
    with pytest.raises(cloudqueue.InvalidArgument) as info:
        sql_expression(wanted)
    assert "1024" in str(info.value)


# -- declare --------------------------------------------------------------------------------------


class NoFiltersProvider(Provider):
    """A provider written before filters: it would ignore Declaration.filter."""

    schemes = ("nofilters",)
    declared: list[Declaration]

    def __init__(self) -> None:
        self.declared = []

    def open_topic(self, url: Url) -> TopicDriver:
        raise NotImplementedError

    def open_subscription(self, url: Url) -> SubscriptionDriver:
        raise NotImplementedError

    def capabilities(self, url: Url) -> Capabilities:
        raise NotImplementedError

    def declare(self, url: Url, declaration: Declaration) -> None:
        self.declared.append(declaration)

    def dead_letter_url(self, url: Url) -> Url:
        return url

    def purge(self, url: Url) -> None:
        pass

    def delete(self, url: Url) -> None:
        pass


@pytest.fixture
def no_filters() -> Iterator[NoFiltersProvider]:
    provider = NoFiltersProvider()
    with registered(provider, "no-filters-tests"):
        yield provider


def test_a_provider_without_filter_support_never_sees_a_filter(no_filters: NoFiltersProvider) -> None:
    with pytest.raises(cloudqueue.Unsupported, match="cannot filter"):
        cloudqueue.declare("nofilters://t?subscription=s", filter=ORDER)
    assert no_filters.declared == []
    cloudqueue.declare("nofilters://t?subscription=s")
    assert no_filters.declared == [Declaration()]


def test_declare_checks_the_filter_and_the_url() -> None:
    with pytest.raises(cloudqueue.InvalidArgument, match=r"cloudqueue\.filters\.Filter"):
        cloudqueue.declare("memory://f?subscription=s", filter={"attribute": "a"})  # type: ignore[arg-type]
    with pytest.raises(cloudqueue.InvalidArgument, match="topic subscription"):
        cloudqueue.declare("memory://f", filter=ORDER)


def test_memory_routes_at_publish_time() -> None:
    url = "memory://filters-publish-time?subscription=s"
    cloudqueue.declare(url, filter=ORDER)
    with cloudqueue.open_producer("memory://filters-publish-time") as producer:
        producer.send(b"1", attributes={"type": "order"})
        cloudqueue.declare(url, filter=where("type").equals("refund"))
        producer.send(b"2", attributes={"type": "order"})
        producer.send(b"3", attributes={"type": "refund"})
    with cloudqueue.open_consumer(url) as consumer:
        got = consumer.receive(max_messages=10, wait=0)
    assert sorted(m.body for m in got) == [b"1", b"3"]


# -- SQLite files of schema version 2 --------------------------------------------------------------


def test_a_sqlite_file_made_before_filters_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_schema = SCHEMA.replace("    filter TEXT,\n", "")
    assert old_schema != SCHEMA
    with sqlite3.connect(path) as connection:
        connection.executescript(old_schema)
        connection.execute("PRAGMA user_version = 2")
        connection.execute("INSERT INTO topics (name) VALUES ('t')")
        connection.execute("INSERT INTO subscriptions (topic, name) VALUES ('t', 'old')")
    connection.close()
    base = f"sqlite:///{path}?queue=t"
    cloudqueue.declare(base + "&subscription=new", filter=ORDER)
    with cloudqueue.open_producer(base) as producer:
        producer.send(b"order", attributes={"type": "order"})
        producer.send(b"other")
    for name, expected in (("old", [b"order", b"other"]), ("new", [b"order"])):
        with cloudqueue.open_consumer(f"{base}&subscription={name}") as consumer:
            got = consumer.receive(max_messages=10, wait=0)
        assert sorted(m.body for m in got) == expected, name
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()


def test_sqlite_keeps_the_filter_for_other_processes(tmp_path: Path) -> None:
    base = f"sqlite:///{tmp_path / 'shared.db'}?queue=t"
    cloudqueue.declare(base + "&subscription=s", filter=ORDER | where("u").exists())
    with sqlite3.connect(tmp_path / "shared.db") as connection:
        (stored,) = connection.execute("SELECT filter FROM subscriptions WHERE name = 's'").fetchone()
    connection.close()
    assert Filter.from_json(stored) == ORDER | where("u").exists()
    cloudqueue.declare(base + "&subscription=s")  # None removes it
    with sqlite3.connect(tmp_path / "shared.db") as connection:
        assert connection.execute("SELECT filter FROM subscriptions WHERE name = 's'").fetchone() == (None,)
    connection.close()


def test_node_classes_are_exported() -> None:
    assert {Equals, OneOf, Prefix, Exists, Absent, AllOf, AnyOf} <= {
        getattr(cloudqueue.filters, name) for name in cloudqueue.filters.__all__
    }


# -- the command line ---------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_declares_a_filter_and_shows_it(capsys: pytest.CaptureFixture[str]) -> None:
    url = "memory://cli-filters?subscription=eu"
    text = (
        '{"all": [{"attribute": "type", "equals": "order"},'
        ' {"attribute": "region", "starts_with": "eu-"}]}'
    )
    code, out, _ = _cli(capsys, "declare", url, "--filter", text)
    assert code == 0
    assert out.splitlines() == [f"declared {url}", 'filter: type = "order" and region starts with "eu-"']
    with cloudqueue.open_producer("memory://cli-filters") as producer:
        producer.send(b"no", attributes={"type": "order", "region": "us"})
        producer.send(b"yes", attributes={"type": "order", "region": "eu-1"})
    with cloudqueue.open_consumer(url) as consumer:
        assert [m.body for m in consumer.receive(max_messages=10, wait=0)] == [b"yes"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--filter", "{"], "not valid JSON"),
        (["--filter", '{"attribute": "t", "equal": "x"}'], "got the keys attribute, equal"),
    ],
)
def test_cli_names_what_is_wrong_with_a_filter(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = _cli(capsys, "declare", "memory://cli-filters?subscription=x", *argv)
    assert code == 2
    assert message in err and "--filter" in err


def test_cli_refuses_a_filter_on_a_queue(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(
        capsys, "declare", "memory://cli-filters-q", "--filter", '{"attribute": "t", "exists": true}'
    )
    assert code == 1
    assert "topic subscription" in err
