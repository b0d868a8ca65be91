"""Api: one DynamoDB JSON 1.0 request in, (status, body) out.

Order of checks, as DynamoDB answers them: the request's signature (authentication
errors, api/access.py; before anything of the request is interpreted), the target names
a known operation (UnknownOperationException), the body is a JSON object
(SerializationException), the key may make this request (AccessDeniedException), the
request fits the operation's shape (ValidationException), then the engine's semantics.
A target is DynamoDB's (`DynamoDB_20120810.<Op>`) or DynamoDB Streams'
(`DynamoDBStreams_20120810.<Op>`): both are served on the same endpoint, signed for the
same service ("dynamodb"), as boto3's `dynamodbstreams` client sends them.

Every answer is counted in `stats` (atoll.api.stats) by operation and outcome, with its
time from here to the answer; `clock_ns` is the clock that times it.

Two entries, one answer: `handle` is a coroutine for every request; `answer` (what the
HTTP server calls) answers at once, as a value, a request that needs no wait — auth off,
an operation the engine answers without suspending (engine.NOW_HANDLERS: the reads) and
nothing it read still to become durable — and hands back a coroutine for anything else
(`handle`'s, or one that waits for durability and then answers). The checks, their order
and the answers are the same either way (`_checked` is shared).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import orjson

from atoll.api.access import (
    OFF,
    REQUIRED,
    AccessControl,
    KeyNotHereYet,
    check_not_internal,
    visible_streams,
    visible_tables,
)
from atoll.api.errors import error_response, internal_error_response
from atoll.api.shapes import DYNAMODB, STREAMS, operation_names, validate_request
from atoll.api.stats import UNKNOWN_OPERATION, OperationStats, RequestStats
from atoll.engine.engine import (
    HANDLERS,
    NOW_HANDLERS,
    STREAM_HANDLERS,
    Engine,
    Handler,
    NowHandler,
)
from atoll.errors import AtollError, InternalError, SerializationError, UnknownOperation
from atoll.storage.writepath import now_ns

log = logging.getLogger(__name__)

TARGET_PREFIX = "DynamoDB_20120810."
STREAMS_TARGET_PREFIX = "DynamoDBStreams_20120810."  # DynamoDB Streams, same endpoint
MAX_BODY_BYTES = 16 * 1024 * 1024


class RequestHead(Protocol):
    """What the api reads of an HTTP request besides its body (atoll.http.wire.Request)."""

    method: bytes
    url: bytes
    headers: list[tuple[bytes, bytes]]


Answer = tuple[int, bytes]


class Route:
    """What serves one X-Amz-Target: its service, operation, handler and counters, and
    the handler's synchronous form if it never waits (`now`)."""

    def __init__(self, service: str, operation: str, handler: Handler,
                 stats: OperationStats, now: NowHandler | None = None) -> None:
        self.service = service
        self.operation = operation
        self.handler = handler
        self.stats = stats
        self.now = now


class Api:
    def __init__(self, engine: Engine, clock_ns: Callable[[], int] = now_ns,
                 access: AccessControl | None = None) -> None:
        self.engine = engine
        self._context = engine.context
        self._storage = engine.storage
        self.access = access if access is not None else AccessControl(OFF, None,
                                                                      engine.region)
        self.requests_total = 0
        self.errors_total = 0
        self.stats = RequestStats(sorted(HANDLERS) + sorted(STREAM_HANDLERS))
        self.clock_ns = clock_ns
        # X-Amz-Target -> what serves it: one lookup per request finds the service, the
        # operation, its handler and its counters (any other target: `_operation` says
        # why it is unknown)
        self._routes: dict[str, Route] = {}
        self._unknown_stats = self.stats.of(UNKNOWN_OPERATION)
        for prefix, service, handlers in ((TARGET_PREFIX, DYNAMODB, HANDLERS),
                                          (STREAMS_TARGET_PREFIX, STREAMS, STREAM_HANDLERS)):
            for name, handler in handlers.items():
                now = NOW_HANDLERS.get(name) if service == DYNAMODB else None
                self._routes[prefix + name] = Route(service, name, handler,
                                                    self.stats.of(name), now)

    def answer(self, target: str | None, body: bytes, head: RequestHead | None = None
               ) -> Answer | Coroutine[Any, Any, Answer]:
        """The answer now, if the request needs no wait (the module doc says when), else a
        coroutine to run for it; the same answer `handle` gives either way."""
        route = self._routes.get(target) if target is not None else None
        if route is None or route.now is None or self.access.enabled:
            return self.handle(target, body, head)
        self.requests_total += 1
        began = self.clock_ns()
        counted = route.stats
        failed: type[AtollError] | None = None
        try:
            request = self._checked(route, None, body)
            result = route.now(self._context, request)
            reply = 200, result if type(result) is bytes else orjson.dumps(result)
        except AtollError as error:
            self.errors_total += 1
            failed = type(error)
            reply = error_response(error, route.operation)
        except Exception:
            self.errors_total += 1
            log.exception("internal error handling %s", target)
            counted.count(InternalError, self.clock_ns() - began)
            return internal_error_response()
        waiter = self._storage.settle()
        if waiter is not None:
            return self._settled(reply, waiter, counted, failed, began)
        counted.count(failed, self.clock_ns() - began)
        return reply

    def _checked(self, route: Route, key: Any, body: bytes) -> dict[str, Any]:
        """The request's body decoded and checked, in DynamoDB's order: JSON, then the
        key's permission, then the operation's shape."""
        operation = route.operation
        request = self._decode(body)
        self.access.authorize(key, operation, request)
        check_not_internal(operation, request)
        validate_request(operation, request, route.service)
        return request

    async def handle(self, target: str | None, body: bytes,
                     head: RequestHead | None = None) -> tuple[int, bytes]:
        self.requests_total += 1
        began = self.clock_ns()
        route = self._routes.get(target) if target is not None else None
        operation = UNKNOWN_OPERATION  # (until the target is known to name one)
        counted = self._unknown_stats
        failed: type[AtollError] | None = None
        try:
            access = self.access
            key = None
            if access.enabled:
                if head is None:
                    raise InternalError("a signed request needs its head")
                what = target or "a request with no target"
                try:
                    key = access.authenticate(head.method, head.url, head.headers, body,
                                              what, may_wait=True)
                except KeyNotHereYet:
                    key = await access.wait_for_key(head.method, head.url, head.headers,
                                                    body, what)
            if route is None:
                raise self._unknown(target)
            operation, counted = route.operation, route.stats
            request = self._checked(route, key, body)
            if operation == "ListTables" and key is not None and key.tables is not None \
                    and access.mode == REQUIRED:  # (warn: served as if unlimited)
                result: Any = visible_tables(key, self.engine.catalog.names(), request)
            else:
                result = await route.handler(self._context, request)
                if operation == "ListStreams" and key is not None and key.tables is not None \
                        and access.mode == REQUIRED:  # only the streams of its tables
                    result = visible_streams(key, result)
            answer = 200, result if type(result) is bytes else orjson.dumps(result)
        except AtollError as error:
            self.errors_total += 1
            failed = type(error)
            answer = error_response(error, operation)
        except Exception:
            self.errors_total += 1
            log.exception("internal error handling %s", target)
            counted.count(InternalError, self.clock_ns() - began)
            return internal_error_response()
        waiter = self._storage.settle()
        if waiter is not None:
            return await self._settled(answer, waiter, counted, failed, began)
        counted.count(failed, self.clock_ns() - began)
        return answer

    async def _settled(self, answer: Answer, waiter: Awaitable[Any], counted: OperationStats,
                       failed: type[AtollError] | None, began: int) -> Answer:
        """What was read (errors too: a failed condition can carry the item it read) may
        include commits not yet durable: the answer, once they are."""
        try:
            await waiter
        except AtollError as failure:  # durability lost: that is the answer, then
            if answer[0] == 200:
                self.errors_total += 1
            counted.count(type(failure), self.clock_ns() - began)
            return error_response(failure)
        counted.count(failed, self.clock_ns() - began)
        return answer

    @staticmethod
    def _unknown(target: str | None) -> UnknownOperation:
        """Why X-Amz-Target names no operation served here (every served one has a route):
        not a DynamoDB or DynamoDB Streams target, an operation of the service Atoll does
        not serve yet, or none of the service's."""
        if target and target.startswith(TARGET_PREFIX):
            service, operation = DYNAMODB, target[len(TARGET_PREFIX):]
        elif target and target.startswith(STREAMS_TARGET_PREFIX):
            service, operation = STREAMS, target[len(STREAMS_TARGET_PREFIX):]
        else:
            return UnknownOperation(f"Unknown operation: {target}")
        if operation in operation_names(service):
            return UnknownOperation(f"The operation {operation} is not supported by Atoll yet")
        return UnknownOperation(f"Unknown operation: {operation}")

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        if not body:
            raise SerializationError("Start of structure or map found where not expected")
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SerializationError("Start of structure or map found where not expected") from None
        if type(request) is not dict:
            raise SerializationError("Start of structure or map found where not expected")
        if None in request.values():
            # A JSON null member means "not given" (the shape validator skips it too), so
            # handlers can rely on request.get(member, default).
            request = {k: v for k, v in request.items() if v is not None}
        return request
