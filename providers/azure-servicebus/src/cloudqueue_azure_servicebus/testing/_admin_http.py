"""The administration surface: plain HTTP/1.1 + ATOM, as ``ServiceBusAdministrationClient`` speaks it.

Served on the AMQP port (the server sniffs the first bytes). Routes:
``/{entity}`` (queue or topic), ``/{topic}/subscriptions[/{sub}]``, ``/$Resources/{queues|topics}``
and ``/{topic}/subscriptions/{sub}/rules[/{rule}]``. Creating an existing entity answers 409, a
missing one 404, an invalid rule (bad SQL, unsupported filter or action) 400 naming the problem,
as the service does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

from . import _atom, _rule_xml
from ._entities import EntityProperties
from ._entity_options import OptionError, check_values
from ._namespace import Entity, EntityExists, EntityMissing, Namespace, Subscription
from ._rules import MAX_RULES_PER_SUBSCRIPTION, Rule, RuleError
from ._state import BrokerState
from ._timers import now_ms

_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error"}
_MAX_HEADER = 64 * 1024


class HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class HttpConnection:
    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.close_after = False
        self.closed = False

    # --- protocol interface used by the socket loop -------------------------------------

    def feed(self, data: bytes) -> None:
        if not data:
            self.close_after = True
            return
        self.inbuf += data
        while not self.close_after:
            request = self._take_request()
            if request is None:
                break
            self._respond(*request)

    def output(self) -> bytes:
        return bytes(self.outbuf)

    def sent(self, count: int) -> None:
        del self.outbuf[:count]

    @property
    def output_closed(self) -> bool:
        return self.close_after and not self.outbuf

    def shutdown(self) -> None:
        self.closed = True

    # --- HTTP framing ----------------------------------------------------------------------

    def _take_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        end = self.inbuf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.inbuf) > _MAX_HEADER:
                self.close_after = True
            return None
        head = self.inbuf[:end].decode("latin-1").split("\r\n")
        method, target, _version = ([*head[0].split(" ", 2), "", ""])[:3]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.inbuf) < end + 4 + length:
            return None
        body = bytes(self.inbuf[end + 4 : end + 4 + length])
        del self.inbuf[: end + 4 + length]
        if headers.get("connection", "").lower() == "close":
            self.close_after = True
        return method, target, headers, body

    def _respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        host = headers.get("host", "localhost")
        base = f"http://{host}"
        try:
            self._authorize(headers)
            with self.state.lock:
                status, payload = _Router(self.state.namespace, base).route(method, target, headers, body)
        except HttpError as err:
            status, payload = err.status, _atom.error(err.status, err.detail)
        except Exception as exc:  # report, do not kill the broker
            status, payload = 500, _atom.error(500, repr(exc))
        data = payload.encode("utf-8")
        content_type = "application/atom+xml;type=entry;charset=utf-8"
        response = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
            f"Server: cloudqueue-servicebus-broker\r\n"
            + ("Connection: close\r\n" if self.close_after else "")
            + "\r\n"
        ).encode("latin-1")
        self.outbuf += response + data


    def _authorize(self, headers: dict[str, str]) -> None:
        if self.state.tokens is None:
            return
        problem = self.state.tokens.authorization_problem(headers.get("authorization"))
        if problem is not None:
            raise HttpError(401, f"Unauthorized: {problem}.")


class _Router:
    def __init__(self, namespace: Namespace, base: str) -> None:
        self.ns = namespace
        self.base = base

    def route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        split = urlsplit(target)
        parts = [unquote(p) for p in split.path.strip("/").split("/") if p]
        query = parse_qs(split.query)
        try:
            if len(parts) == 2 and parts[0].lower() == "$resources":
                return self._list(parts[1].lower(), query)
            if len(parts) == 1 and parts[0].lower() == "$namespaceinfo" and method == "GET":
                name = self.base.split("://", 1)[-1].rsplit(":", 1)[0]
                return 200, _atom.namespace_entry(self.base, name, self.ns)
            if len(parts) == 1:
                return self._entity(method, parts[0], headers, body)
            if len(parts) == 2 and parts[1].lower() == "subscriptions":
                return self._list_subscriptions(parts[0], query)
            if len(parts) == 3 and parts[1].lower() == "subscriptions":
                return self._subscription(method, parts[0], parts[2], headers, body)
            if len(parts) == 4 and parts[1].lower() == "subscriptions" and parts[3].lower() == "rules":
                return self._list_rules(self.ns.subscription(parts[0], parts[2]), query)
            if len(parts) == 5 and parts[1].lower() == "subscriptions" and parts[3].lower() == "rules":
                sub = self.ns.subscription(parts[0], parts[2])
                return self._rule(method, sub, parts[4], headers, body)
        except (RuleError, OptionError) as exc:
            raise HttpError(400, str(exc)) from None
        except EntityMissing as exc:
            raise HttpError(404, f"Entity '{exc}' was not found.") from None
        except EntityExists as exc:
            raise HttpError(409, f"Entity '{exc}' already exists.") from None
        raise HttpError(404, f"No route for {split.path}")

    def _feed(self, path: str, entries: list[str], query: dict[str, list[str]]) -> str:
        """One page of a feed; a ``next`` link (what the SDK pages by) when more entries follow."""
        skip = int(query.get("$skip", ["0"])[0])
        top = int(query.get("$top", [str(len(entries))])[0])
        next_href = None
        if skip + top < len(entries):
            next_href = f"{self.base}/{path}?$skip={skip + top}&$top={top}&api-version=2021-05"
        return _atom.feed(self.base, path, entries[skip : skip + top], next_href)

    def _check_forwarding(self, own_name: str | None, values: dict[str, object], updating: bool) -> None:
        """Forwarding targets must exist and differ from the entity itself, as the service requires."""
        for key in ("forward_to", "forward_dead_lettered_messages_to"):
            address = values.get(key)
            if updating and not address:
                values[key] = ""  # an update without the element turns forwarding off
            if not isinstance(address, str) or not address:
                continue
            target = self.ns.forward_target(address)
            if target is None:
                raise HttpError(400, f"{key}: the entity {Namespace.entity_path(address)!r} does not exist; "
                                     "create the target queue or topic first.")
            if own_name is not None and target.name.lower() == own_name.lower():
                raise HttpError(400, f"{key}: an entity cannot forward to itself ({own_name!r}).")

    def _update(self, entity: Entity, values: dict[str, object]) -> None:
        props = entity.store.props if isinstance(entity, Subscription) else entity.props
        props.update(**values)
        entity.updated = datetime.now(UTC)
        entity.last_active_ms = int(entity.updated.timestamp() * 1000)
        self.ns.arm_idle_timer(entity)

    # --- queues and topics -------------------------------------------------------------

    def _entity(self, method: str, name: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        if method == "GET":
            return 200, self._entity_entry(name)
        if method == "DELETE":
            if name.lower() in self.ns.queues:
                self.ns.delete_queue(name)
            else:
                self.ns.delete_topic(name)
            return 200, ""
        if method == "PUT":
            kind, values = _parse(body)
            updating = headers.get("if-match") == "*"
            self._check_forwarding(name, values, updating)
            if kind == "QueueDescription":
                if updating:
                    self._update(self.ns.queue(name), values)
                else:
                    self.ns.create_queue(name, _new_props(values))
            elif kind == "TopicDescription":
                if updating:
                    self._update(self.ns.topic(name), values)
                else:
                    self.ns.create_topic(name, _new_props(values))
            else:
                raise HttpError(400, f"Unexpected {kind}")
            return (200 if updating else 201), self._entity_entry(name)
        raise HttpError(405, method)

    def _entity_entry(self, name: str) -> str:
        key = name.lower()
        if key in self.ns.queues:
            queue = self.ns.queues[key]
            desc = _atom.queue_description(queue)
            return _atom.entry(self.base, queue.name, queue.name, desc, queue.updated)
        topic = self.ns.topic(name)
        return _atom.entry(self.base, topic.name, topic.name, _atom.topic_description(topic), topic.updated)

    def _list(self, kind: str, query: dict[str, list[str]]) -> tuple[int, str]:
        entries: list[str] = []
        if kind == "queues":
            for queue in self.ns.queues.values():
                desc = _atom.queue_description(queue)
                entries.append(_atom.entry(self.base, queue.name, queue.name, desc, queue.updated))
        elif kind == "topics":
            for topic in self.ns.topics.values():
                desc = _atom.topic_description(topic)
                entries.append(_atom.entry(self.base, topic.name, topic.name, desc, topic.updated))
        else:
            raise HttpError(404, f"Unknown entity type {kind}")
        return 200, self._feed(f"$Resources/{kind}", entries, query)

    # --- subscriptions -------------------------------------------------------------------

    def _subscription(
        self, method: str, topic: str, name: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str]:
        if method == "GET":
            return 200, self._subscription_entry(topic, name)
        if method == "DELETE":
            self.ns.delete_subscription(topic, name)
            return 200, ""
        if method == "PUT":
            _kind, values = _parse(body)
            updating = headers.get("if-match") == "*"
            self._check_forwarding(None, values, updating)
            if updating:
                self._update(self.ns.subscription(topic, name), values)
                return 200, self._subscription_entry(topic, name)
            self.ns.topic(topic)  # 404 for a missing topic before the rule is looked at
            self.ns.create_subscription(topic, name, _new_props(values), _default_rule(body))
            return 201, self._subscription_entry(topic, name)
        raise HttpError(405, method)

    def _subscription_entry(self, topic: str, name: str) -> str:
        sub = self.ns.subscription(topic, name)
        path = f"{sub.topic}/subscriptions/{sub.name}"
        return _atom.entry(self.base, path, sub.name, _atom.subscription_description(sub), sub.updated)

    def _list_subscriptions(self, topic_name: str, query: dict[str, list[str]]) -> tuple[int, str]:
        topic = self.ns.topic(topic_name)
        entries = [
            _atom.entry(self.base, f"{topic.name}/subscriptions/{sub.name}", sub.name,
                        _atom.subscription_description(sub), sub.updated)
            for sub in topic.subscriptions.values()
        ]
        return 200, self._feed(f"{topic.name}/subscriptions", entries, query)


    # --- rules ------------------------------------------------------------------------------

    def _rule_entry(self, sub: Subscription, rule: Rule) -> str:
        path = f"{sub.topic}/subscriptions/{sub.name}/rules/{rule.name}"
        return _atom.entry(self.base, path, rule.name, _rule_xml.rule_description(rule), rule.created)

    def _list_rules(self, sub: Subscription, query: dict[str, list[str]]) -> tuple[int, str]:
        entries = [self._rule_entry(sub, rule) for rule in sub.rules.values()]
        path = f"{sub.topic}/subscriptions/{sub.name}/rules"
        return 200, self._feed(path, entries, query)

    def _rule(
        self, method: str, sub: Subscription, name: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str]:
        key = name.lower()
        existing = sub.rules.get(key)
        if method == "GET":
            if existing is None:
                raise EntityMissing(name)
            return 200, self._rule_entry(sub, existing)
        if method == "DELETE":
            if sub.rules.pop(key, None) is None:
                raise EntityMissing(name)
            return 200, ""
        if method != "PUT":
            raise HttpError(405, method)
        sub.last_active_ms = now_ms()  # rule changes count as activity (auto-delete-on-idle)
        updating = headers.get("if-match") == "*"
        if updating and existing is None:
            raise EntityMissing(name)
        if not updating and existing is not None:
            raise EntityExists(name)
        if not updating and len(sub.rules) >= MAX_RULES_PER_SUBSCRIPTION:
            raise HttpError(400, f"The subscription already has {len(sub.rules)} rules; the limit is "
                                 f"{MAX_RULES_PER_SUBSCRIPTION} rules per subscription.")
        element = _rule_element(body)
        if element is None:
            raise HttpError(400, "The request body has no RuleDescription.")
        rule = _rule_xml.parse_rule(element, existing.name if existing else name)
        if existing is not None:
            rule.created = existing.created
        sub.rules[key] = rule
        return (200 if updating else 201), self._rule_entry(sub, rule)


def _rule_element(body: bytes) -> ElementTree.Element | None:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise HttpError(400, f"Malformed rule description: {exc}") from None
    return _rule_xml.find_rule_element(root, ("RuleDescription",))


def _default_rule(body: bytes) -> Rule | None:
    """The rule a subscription request carries to replace ``$Default``, if any."""
    root = ElementTree.fromstring(body)
    element = _rule_xml.find_rule_element(root, ("DefaultRuleDescription", "RuleDescription"))
    if element is None:
        return None
    name_el = element.find(f"{{{_atom.SB_NS}}}Name")
    name = name_el.text if name_el is not None and name_el.text else "$Default"
    return _rule_xml.parse_rule(element, name)


def _parse(body: bytes) -> tuple[str, dict[str, object]]:
    try:
        kind, values = _atom.parse_description(body)
        check_values(values)
    except OptionError as exc:
        raise HttpError(400, str(exc)) from None
    except Exception as exc:
        raise HttpError(400, f"Malformed entity description: {exc}") from None
    return kind, values


def _new_props(values: dict[str, object]) -> EntityProperties:
    props = EntityProperties()
    props.update(**values)
    return props


