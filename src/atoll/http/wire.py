"""What every connection of an HTTP listener shares: the limits' constants, the answers
the HTTP layer gives itself (DynamoDB's error shape), request ids, the Date header, the
request being parsed, and the state a listener keeps for all its connections
(`ServerState`, which `HttpServer` extends with the listening side)."""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httptools
import orjson

from atoll.http.connections import ConnectionTable
from atoll.http.limits import ConnectionLimits
from atoll.http.timing import RequestTimes, now_ns

MAX_BODY_BYTES = 16 * 1024 * 1024
TOO_LARGE = b"Request payload size exceeds the limit of %d bytes" % MAX_BODY_BYTES
MAX_PIPELINED = 64
REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            408: b"Request Timeout", 413: b"Request Entity Too Large", 414: b"URI Too Long",
            431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
            503: b"Service Unavailable"}
ERROR_TYPES = {
    408: "com.amazon.coral.service#RequestTimeoutException",
    413: "com.amazon.coral.service#RequestEntityTooLargeException",
    414: "com.amazon.coral.service#RequestURITooLongException",
    431: "com.amazon.coral.service#RequestHeaderFieldsTooLargeException",
    500: "com.amazonaws.dynamodb.v20120810#InternalServerError",
    503: "com.amazon.coral.service#ServiceUnavailableException",
}



# "000" .. "999": the last three digits of a request id's counter
_LAST_DIGITS = tuple(b"%03d" % n for n in range(1000))


class RequestIds:
    """DynamoDB-shaped request ids (52 upper-case alphanumerics): a random prefix of 32 and
    a counter in 20 digits. Cheap to make: the counter's digits but the last three are
    formatted once per thousand ids, the last three come from a table (formatting all
    twenty, `b"%020d" % n`, was ~0.4 µs of a GetItem's CPU)."""

    def __init__(self) -> None:
        import base64
        self.prefix = base64.b32encode(os.urandom(20))[:32]
        self.counter = 0
        self._thousands = -1  # the counter // 1000 that `_head` spells
        self._head = b""  # the prefix and the counter's digits but the last three

    def next(self) -> bytes:
        n = self.counter + 1
        self.counter = n
        thousands = n // 1000
        if thousands != self._thousands:
            self._thousands = thousands
            self._head = self.prefix + b"%017d" % thousands
        return self._head + _LAST_DIGITS[n % 1000]


class HeaderClock:
    """The Date header, formatted once per second."""

    def __init__(self) -> None:
        self.second = 0
        self.value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = email.utils.formatdate(now, usegmt=True).encode()
        return self.value


class Request:
    """One request as received. `headers` keeps every header field, in order, as the
    bytes received (repeats kept, names in their case): request signatures (SigV4) are
    computed over them (empty on a listener that keeps none: `ServerState.keep_headers`;
    the headers the server reads itself are kept apart either way). `peer` is the verified TLS certificate of the connection's
    client (`getpeercert()`), None on plain HTTP or without a client certificate."""

    __slots__ = ("method", "url", "target", "host", "body", "keep_alive", "atoll_headers",
                 "content_length", "chunked", "began", "refusal", "headers", "peer")

    def __init__(self) -> None:
        self.began = now_ns()  # its first bytes were parsed (see RequestTimes)
        self.method = b""
        self.url = b""
        self.target: str | None = None
        self.host = ""  # the Host header (what a GET of / echoes)
        self.headers: list[tuple[bytes, bytes]] = []
        self.peer: dict[str, Any] | None = None
        self.atoll_headers: dict[str, str] | None = None  # x-atoll-* (peer requests)
        self.body: list[bytes] = []
        self.keep_alive = True
        self.content_length = b""  # read only if the request asks to upgrade
        self.chunked = False
        self.refusal: tuple[int, bytes] | None = None  # answered so, then the connection lingers


# An API handler answers at once (a (status, body) tuple) or with a coroutine that answers
# (atoll.api.dispatch's `Api.answer`: reads that need no wait are answered at once).
ApiHandler = Callable[[str | None, bytes, Request],
                      tuple[int, bytes] | Coroutine[Any, Any, tuple[int, bytes]]]
PostHandler = Callable[[Request, str, bytes, str], Coroutine[Any, Any, tuple[int, bytes]]]
GetHandler = Callable[[Request, str],
                      Awaitable[tuple[int, bytes, bytes]] | tuple[int, bytes, bytes]]


# What a closed connection keeps as its parser (httptools parsers cannot be released).
DETACHED_PARSER = httptools.HttpRequestParser(object())


class ServerState:
    """Shared state of all connections of one listener: handlers, ids, the clock, the
    connection table and shutdown (`HttpServer` adds the listening and the sweep)."""

    def __init__(self, api: ApiHandler, get: GetHandler, post: PostHandler | None = None,
                 admin_post: PostHandler | None = None, *,
                 limits: ConnectionLimits | None = None, keep_headers: bool = True) -> None:
        self.api = api
        # whether requests keep their header fields (`Request.headers`): a listener whose
        # handlers verify no signatures and forward no headers does without them
        self.keep_headers = keep_headers
        self.get = get
        self.post = post  # when set, POSTs are routed by path (the peer listener)
        self.admin_post = admin_post  # POSTs to /_atoll/... when `post` is not set
        self.request_ids = RequestIds()
        self.request_times = RequestTimes()
        self.clock = HeaderClock()
        self.table = ConnectionTable(limits or ConnectionLimits(), MAX_BODY_BYTES)
        self.in_flight = 0
        self.closing = False
        self.now = time.monotonic()  # as of the last sweep: what connections stamp


def error_body(status: int, message: bytes) -> bytes:
    """DynamoDB's error shape for an answer the HTTP layer gives itself."""
    type_name = ERROR_TYPES.get(status, "com.amazon.coral.service#SerializationException")
    return orjson.dumps({"__type": type_name, "message": message.decode()})


async def resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Finish a coroutine that `_step` started, awaiting whatever it yields."""
    while True:
        try:
            if yielded is None:  # a bare `yield` (asyncio.sleep(0)): just let the loop run
                await asyncio.sleep(0)
                value = None
            else:
                # the coroutine already marked the future as awaited when it yielded it
                yielded._asyncio_future_blocking = False
                value = await yielded
        except BaseException as exc:  # deliver the failure into the handler
            try:
                yielded = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                yielded = coro.send(value)
            except StopIteration as done:
                return done.value

