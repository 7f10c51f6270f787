"""gRPC handlers for google.pubsub.v1.Publisher and google.pubsub.v1.Subscriber.

Requests are parsed and responses serialized with the protobuf classes that google-cloud-pubsub
carries (``types.X.pb()``), so no code generation is needed. Each handler is wrapped to count
requests per method and to turn :class:`ServiceError` into the matching gRPC status.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1 import types
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status  # type: ignore[import-untyped]

from ._errors import AckIdFailures, InvalidArgument, ServiceError
from ._resources import Delivered
from ._state import Broker
from ._streams import StreamSession

Empty: Any = empty_pb2.Empty


def _pb(name: str) -> Any:
    return getattr(types, name).pb()


class RequestCounter:
    """Per-method request counts; a StreamingPull stream counts once, when it opens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, method: str) -> None:
        with self._lock:
            self._counts[method] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def _abort(context: grpc.ServicerContext, error: ServiceError) -> NoReturn:
    if isinstance(error, AckIdFailures):
        info = error_details_pb2.ErrorInfo(
            reason=AckIdFailures.REASON, domain="pubsub.googleapis.com", metadata=error.failures
        )
        status = status_pb2.Status(code=error.code.value[0], message=error.message)
        status.details.add().Pack(info)
        context.abort_with_status(rpc_status.to_status(status))
    context.abort(error.code, error.message)
    raise AssertionError("context.abort returns only by raising")  # pragma: no cover


def _fill_received(target: Any, delivered: list[Delivered]) -> None:
    add = target.add
    for item in delivered:
        if item.delivery_attempt:
            add(ack_id=item.ack_id, message=item.message, delivery_attempt=item.delivery_attempt)
        else:
            add(ack_id=item.ack_id, message=item.message)


class PubSubService:
    """The handlers, bound to one broker."""

    def __init__(self, broker: Broker, counter: RequestCounter, pull_wait_seconds: float) -> None:
        self._broker = broker
        self._counter = counter
        self._pull_wait_seconds = pull_wait_seconds

    # --- Publisher ----------------------------------------------------------------------------

    def create_topic(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._broker.create_topic(request)

    def get_topic(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._broker.get_topic(request.topic)

    def update_topic(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._broker.update_topic(request.topic, list(request.update_mask.paths))

    def list_topics(self, request: Any, context: grpc.ServicerContext) -> Any:
        topics, token = self._broker.list_topics(
            request.project, request.page_size, request.page_token
        )
        return _pb("ListTopicsResponse")(topics=topics, next_page_token=token)

    def list_topic_subscriptions(self, request: Any, context: grpc.ServicerContext) -> Any:
        names, token = self._broker.list_topic_subscriptions(
            request.topic, request.page_size, request.page_token
        )
        return _pb("ListTopicSubscriptionsResponse")(subscriptions=names, next_page_token=token)

    def delete_topic(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._broker.delete_topic(request.topic)
        return Empty()

    def publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        message_ids = self._broker.publish(request.topic, request.messages, request.ByteSize())
        return _pb("PublishResponse")(message_ids=message_ids)

    # --- Subscriber ---------------------------------------------------------------------------

    def create_subscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._broker.create_subscription(request)

    def get_subscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._broker.get_subscription(request.subscription)

    def update_subscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._broker.update_subscription(
            request.subscription, list(request.update_mask.paths)
        )

    def list_subscriptions(self, request: Any, context: grpc.ServicerContext) -> Any:
        subscriptions, token = self._broker.list_subscriptions(
            request.project, request.page_size, request.page_token
        )
        return _pb("ListSubscriptionsResponse")(subscriptions=subscriptions, next_page_token=token)

    def delete_subscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._broker.delete_subscription(request.subscription)
        return Empty()

    def modify_push_config(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._broker.modify_push_config(request.subscription, request.push_config)
        return Empty()

    def create_snapshot(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._broker.create_snapshot(request.name, request.subscription, request.labels)

    def get_snapshot(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._broker.get_snapshot(request.snapshot)

    def update_snapshot(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._broker.update_snapshot(request.snapshot, list(request.update_mask.paths))

    def list_snapshots(self, request: Any, context: grpc.ServicerContext) -> Any:
        snapshots, token = self._broker.list_snapshots(
            request.project, request.page_size, request.page_token
        )
        return _pb("ListSnapshotsResponse")(snapshots=snapshots, next_page_token=token)

    def delete_snapshot(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._broker.delete_snapshot(request.snapshot)
        return Empty()

    def seek(self, request: Any, context: grpc.ServicerContext) -> Any:
        target = request.WhichOneof("target")
        if target == "time":
            self._broker.seek_to_time(request.subscription, request.time)
        elif target == "snapshot":
            self._broker.seek_to_snapshot(request.subscription, request.snapshot)
        else:
            raise InvalidArgument("A Seek request needs a time or a snapshot")
        return _pb("SeekResponse")()

    def pull(self, request: Any, context: grpc.ServicerContext) -> Any:
        # Never wait past the caller's own deadline.
        remaining = context.time_remaining()
        wait = self._pull_wait_seconds
        if remaining is not None:
            wait = max(0.0, min(wait, remaining - 0.05))
        delivered = self._broker.pull(
            request.subscription, request.max_messages, request.return_immediately, wait
        )
        response = _pb("PullResponse")()
        _fill_received(response.received_messages, delivered)
        return response

    def acknowledge(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._broker.acknowledge(request.subscription, request.ack_ids)
        return Empty()

    def modify_ack_deadline(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._broker.modify_ack_deadline(
            request.subscription, request.ack_ids, request.ack_deadline_seconds
        )
        return Empty()

    def streaming_pull(
        self, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        try:
            first = next(requests)
        except StopIteration:
            return
        if not first.subscription:
            raise InvalidArgument("The first StreamingPull request must name a subscription")
        session = self._broker.open_stream(
            first.subscription,
            first.stream_ack_deadline_seconds,
            first.max_outstanding_messages,
            first.max_outstanding_bytes,
        )
        # A stream ends when the client stops, cancels or the server stops; wake the sender.
        context.add_callback(session.close)
        self._apply_stream_request(session, first)
        reader = threading.Thread(
            target=self._read_stream,
            args=(session, requests),
            daemon=True,
            name="pubsub-local-stream-reader",
        )
        reader.start()
        response_type = _pb("StreamingPullResponse")
        while True:
            delivered = session.next_batch()
            if delivered is None:
                return
            response = response_type()
            properties = response.subscription_properties
            properties.message_ordering_enabled = session.ordered
            properties.exactly_once_delivery_enabled = session.exactly_once
            _fill_received(response.received_messages, delivered)
            yield response

    def _apply_stream_request(self, session: StreamSession, request: Any) -> None:
        if request.subscription and request.subscription != session.subscription_name:
            raise InvalidArgument("subscription may only be set on the first StreamingPull request")
        if (
            request.stream_ack_deadline_seconds
            or request.max_outstanding_messages
            or (request.max_outstanding_bytes)
        ):
            session.update(
                request.stream_ack_deadline_seconds,
                request.max_outstanding_messages,
                request.max_outstanding_bytes,
            )
        if request.ack_ids or request.modify_deadline_ack_ids or request.modify_deadline_seconds:
            self._broker.stream_settle(
                session,
                request.ack_ids,
                request.modify_deadline_ack_ids,
                request.modify_deadline_seconds,
            )

    def _read_stream(self, session: StreamSession, requests: Iterator[Any]) -> None:
        """Consume client requests (acks, deadline changes, heartbeats) until the stream ends."""
        try:
            for request in requests:
                self._apply_stream_request(session, request)
        except ServiceError as error:
            session.fail(error)
            return
        except Exception:  # the stream was cancelled or broke; the sender just stops
            pass
        session.close()

    # --- registration -------------------------------------------------------------------------

    def _unary(
        self,
        method: str,
        handler: Callable[[Any, grpc.ServicerContext], Any],
        request: str,
        response: Any,
    ) -> grpc.RpcMethodHandler:
        counter = self._counter

        def counted(req: Any, context: grpc.ServicerContext) -> Any:
            counter.add(method)
            try:
                return handler(req, context)
            except ServiceError as error:
                _abort(context, error)

        return grpc.unary_unary_rpc_method_handler(
            counted,
            request_deserializer=_pb(request).FromString,
            response_serializer=response.SerializeToString,
        )

    def _streaming_pull_handler(self) -> grpc.RpcMethodHandler:
        counter = self._counter

        def counted(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            counter.add("StreamingPull")
            try:
                yield from self.streaming_pull(requests, context)
            except ServiceError as error:
                _abort(context, error)

        return grpc.stream_stream_rpc_method_handler(
            counted,
            request_deserializer=_pb("StreamingPullRequest").FromString,
            response_serializer=_pb("StreamingPullResponse").SerializeToString,
        )

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        topic, subscription, snapshot = _pb("Topic"), _pb("Subscription"), _pb("Snapshot")
        publisher = {
            "CreateTopic": self._unary("CreateTopic", self.create_topic, "Topic", topic),
            "GetTopic": self._unary("GetTopic", self.get_topic, "GetTopicRequest", topic),
            "UpdateTopic": self._unary(
                "UpdateTopic", self.update_topic, "UpdateTopicRequest", topic
            ),
            "ListTopics": self._unary(
                "ListTopics", self.list_topics, "ListTopicsRequest", _pb("ListTopicsResponse")
            ),
            "ListTopicSubscriptions": self._unary(
                "ListTopicSubscriptions",
                self.list_topic_subscriptions,
                "ListTopicSubscriptionsRequest",
                _pb("ListTopicSubscriptionsResponse"),
            ),
            "DeleteTopic": self._unary(
                "DeleteTopic", self.delete_topic, "DeleteTopicRequest", Empty
            ),
            "Publish": self._unary(
                "Publish", self.publish, "PublishRequest", _pb("PublishResponse")
            ),
        }
        subscriber = {
            "CreateSubscription": self._unary(
                "CreateSubscription", self.create_subscription, "Subscription", subscription
            ),
            "GetSubscription": self._unary(
                "GetSubscription", self.get_subscription, "GetSubscriptionRequest", subscription
            ),
            "UpdateSubscription": self._unary(
                "UpdateSubscription",
                self.update_subscription,
                "UpdateSubscriptionRequest",
                subscription,
            ),
            "ListSubscriptions": self._unary(
                "ListSubscriptions",
                self.list_subscriptions,
                "ListSubscriptionsRequest",
                _pb("ListSubscriptionsResponse"),
            ),
            "DeleteSubscription": self._unary(
                "DeleteSubscription",
                self.delete_subscription,
                "DeleteSubscriptionRequest",
                Empty,
            ),
            "Pull": self._unary("Pull", self.pull, "PullRequest", _pb("PullResponse")),
            "Acknowledge": self._unary(
                "Acknowledge", self.acknowledge, "AcknowledgeRequest", Empty
            ),
            "ModifyAckDeadline": self._unary(
                "ModifyAckDeadline", self.modify_ack_deadline, "ModifyAckDeadlineRequest", Empty
            ),
            "StreamingPull": self._streaming_pull_handler(),
            "ModifyPushConfig": self._unary(
                "ModifyPushConfig", self.modify_push_config, "ModifyPushConfigRequest", Empty
            ),
            "CreateSnapshot": self._unary(
                "CreateSnapshot", self.create_snapshot, "CreateSnapshotRequest", snapshot
            ),
            "GetSnapshot": self._unary(
                "GetSnapshot", self.get_snapshot, "GetSnapshotRequest", snapshot
            ),
            "UpdateSnapshot": self._unary(
                "UpdateSnapshot", self.update_snapshot, "UpdateSnapshotRequest", snapshot
            ),
            "ListSnapshots": self._unary(
                "ListSnapshots",
                self.list_snapshots,
                "ListSnapshotsRequest",
                _pb("ListSnapshotsResponse"),
            ),
            "DeleteSnapshot": self._unary(
                "DeleteSnapshot", self.delete_snapshot, "DeleteSnapshotRequest", Empty
            ),
            "Seek": self._unary("Seek", self.seek, "SeekRequest", _pb("SeekResponse")),
        }
        return [
            grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", publisher),
            grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", subscriber),
            _Unimplemented(self._counter),
        ]


class _Unimplemented(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every other method (schemas, IAM, DetachSubscription, ...): UNIMPLEMENTED, named.

    gRPC's own answer to an unknown method says only "Method not found!"; naming the method
    tells the user which feature the local server lacks.
    """

    def __init__(self, counter: RequestCounter) -> None:
        self._counter = counter

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        full_name = str(handler_call_details.method).lstrip("/")
        counter = self._counter

        def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
            counter.add(full_name.rsplit("/", 1)[-1])
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{full_name} is not supported by this local Pub/Sub server",
            )
            raise AssertionError("context.abort returns only by raising")  # pragma: no cover

        return grpc.unary_unary_rpc_method_handler(refuse)
