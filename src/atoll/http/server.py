"""HTTP/1.1 server: a raw asyncio Protocol with httptools parsing.

Theory of operation
- One `Connection` per socket. httptools calls back as it parses; a complete request is
  queued, and requests of one connection are answered strictly in order (pipelining).
- A request is handled by `Api.handle`, a coroutine. Reads finish without suspending, so
  the coroutine is stepped once by hand and answered at once — no Task per request.
  Writes suspend on the storage's commit future; the coroutine is stepped again from that
  future's done callback (`_advance`), still without a Task. Only a handler that yields
  something other than a future (`asyncio.sleep(0)`) gets a Task to finish it.
  (Measured to matter for GetItem and PutItem throughput.)
- Bounds: a body over MAX_BODY_BYTES is refused with 413 and the connection closed; a
  connection with more than MAX_PIPELINED requests queued stops being read until it
  drains. A request still incomplete REQUEST_TIMEOUT_S after its first byte is answered
  408 and its connection closed, and a connection idle for IDLE_TIMEOUT_S (nothing
  received, nothing being answered) is closed: slow or vanished clients cannot hold
  connections (and descriptors) forever. One sweep every few seconds checks them
  against a clock it reads then, so the timeouts are that coarse, and requests pay
  nothing for them.
- `GET /health` answers probes; everything else that is not a POST is refused.
- POSTs go to the DynamoDB API, except: on a listener with a `post` router (the peer
  port) every POST is routed by path, and on the client port POSTs to `/_atoll/...`
  (cluster administration, e.g. the topology) go to the `admin_post` router.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import os
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httptools
import orjson

from atoll.http.timing import RequestTimes, now_ns

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
_TOO_LARGE = b"Request payload size exceeds the limit of %d bytes" % MAX_BODY_BYTES
MAX_PIPELINED = 64
REQUEST_TIMEOUT_S = 60.0
IDLE_TIMEOUT_S = 300.0
MAX_SWEEP_INTERVAL_S = 5.0

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            408: b"Request Timeout", 413: b"Request Entity Too Large",
            500: b"Internal Server Error",
            503: b"Service Unavailable"}

ApiHandler = Callable[[str | None, bytes], Coroutine[Any, Any, tuple[int, bytes]]]
PostHandler = Callable[[str, dict[str, str], bytes, str],
                       Coroutine[Any, Any, tuple[int, bytes]]]
GetHandler = Callable[[str], Awaitable[tuple[int, bytes, bytes]] | tuple[int, bytes, bytes]]


class _RequestIds:
    """DynamoDB-shaped request ids (52 upper-case alphanumerics), cheap to make."""

    def __init__(self) -> None:
        import base64
        self.prefix = base64.b32encode(os.urandom(20))[:32]
        self.counter = 0

    def next(self) -> bytes:
        self.counter += 1
        return self.prefix + b"%020d" % self.counter


class _Clock:
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


class _Request:
    __slots__ = ("method", "url", "target", "body", "keep_alive", "atoll_headers",
                 "content_length", "chunked", "began")

    def __init__(self) -> None:
        self.began = now_ns()  # its first bytes were parsed (see RequestTimes)
        self.method = b""
        self.url = b""
        self.target: str | None = None
        self.atoll_headers: dict[str, str] | None = None  # x-atoll-* (peer requests)
        self.body: list[bytes] = []
        self.keep_alive = True
        self.content_length = b""  # read only if the request asks to upgrade
        self.chunked = False


class ListenError(Exception):
    """A server could not open its listening socket (the address is taken or not local)."""


async def listen(protocol: Callable[[], asyncio.Protocol], host: str, port: int, backlog: int,
                 what: str = "") -> asyncio.AbstractServer:
    """A listening server on host:port, or ListenError saying why not in one line."""
    try:
        return await asyncio.get_running_loop().create_server(
            protocol, host, port, backlog=backlog, reuse_address=True)
    except OSError as exc:  # in use, or not an address of this machine
        raise ListenError(f"cannot listen on {host}:{port}{what}: {exc.strerror or exc}") from None


class HttpServer:
    """Shared state of all connections: handlers, counters, shutdown."""

    def __init__(self, api: ApiHandler, get: GetHandler, post: PostHandler | None = None,
                 admin_post: PostHandler | None = None, *,
                 request_timeout_s: float = REQUEST_TIMEOUT_S,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.api = api
        self.get = get
        self.post = post  # when set, POSTs are routed by path (the peer listener)
        self.admin_post = admin_post  # POSTs to /_atoll/... when `post` is not set
        self.request_ids = _RequestIds()
        self.request_times = RequestTimes()
        self.clock = _Clock()
        self.connections: set[Connection] = set()
        self.in_flight = 0
        self.closing = False
        self.request_timeout_s = request_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.sweep_interval_s = min(MAX_SWEEP_INTERVAL_S, request_timeout_s / 4,
                                    idle_timeout_s / 4)
        self.now = time.monotonic()  # as of the last sweep: what connections stamp
        self._sweeping = False

    def protocol(self) -> Connection:
        if not self._sweeping:
            self._sweeping = True
            asyncio.get_running_loop().call_later(self.sweep_interval_s, self._sweep)
        return Connection(self)

    def _sweep(self) -> None:
        """Close connections whose request stalled or that sat idle too long."""
        self.now = time.monotonic()
        for connection in list(self.connections):
            connection.check_timeouts(self.now)
        if self.connections or not self.closing:
            asyncio.get_running_loop().call_later(self.sweep_interval_s, self._sweep)
        else:
            self._sweeping = False

    async def drain(self, timeout_s: float) -> None:
        """Stop taking requests; wait (bounded) for in-flight ones to be answered."""
        self.closing = True
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.close_when_idle()


class Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current = _Request()
        self.body_size = 0
        self.queue: collections.deque[_Request] = collections.deque()
        self.busy = False
        self.paused = False
        self.closed = False
        self.eof = False  # the client half-closed: answer what it sent, then close
        self.last_active = server.now  # when it last sent bytes or got an answer
        self.begun: float | None = None  # when the request being received began
        self.upgrading: _Request | None = None  # asked to upgrade: its body read here
        self.body_left = 0  # bytes of that body still to come

    # --- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)

    def eof_received(self) -> bool:
        """The client sent all it will (a half-close, as `nc -N` does): keep the socket
        open for the answers still being worked on; `_next` closes it when idle."""
        self.eof = True
        return self.busy or bool(self.queue)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.server.now
        if self.upgrading is not None:
            self._read_upgrade_body(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._ignore_upgrade(data[upgrade.args[0]:])
        except httptools.HttpParserError:
            self._fail(400, b"malformed HTTP request")

    def _ignore_upgrade(self, rest: bytes) -> None:
        """A request asked to switch protocols (`Connection: Upgrade` with `Upgrade: h2c`,
        as curl --http2 and Java's HttpClient send on http://). A server that does not
        speak the other protocol answers in HTTP/1.1 (RFC 9110 7.8), so does this one.
        The parser stops at such a request's headers; its body is read here, then a new
        parser takes the rest of the stream."""
        request, self.upgrading = self.upgrading, None
        if request is None or request.method == b"CONNECT" or request.chunked:
            self._fail(400, b"upgrade not supported")
            return
        length = int(request.content_length or b"0")  # the parser rejected a malformed one
        if length > MAX_BODY_BYTES:
            self._fail(413, _TOO_LARGE)
            return
        self.upgrading, self.body_left = request, length
        self.parser = httptools.HttpRequestParser(self)
        self._read_upgrade_body(rest)

    def _read_upgrade_body(self, data: bytes) -> None:
        request = self.upgrading
        assert request is not None
        taken = data[:self.body_left]
        if taken:
            request.body.append(taken)
            self.body_left -= len(taken)
        if self.body_left:
            return
        self.upgrading = None
        self.begun = None
        self._accept(request)
        if len(data) > len(taken):  # pipelined requests behind it
            self.data_received(data[len(taken):])

    # --- httptools callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        self.current = _Request()
        self.body_size = 0
        self.begun = self.server.now

    def on_url(self, url: bytes) -> None:
        self.current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)
        if size == 12 and name.lower() == b"x-amz-target":
            self.current.target = value.decode("latin-1")
        elif size == 14 and name.lower() == b"content-length":
            self.current.content_length = value
        elif size == 17 and name.lower() == b"transfer-encoding":
            self.current.chunked = True
        elif name[:8].lower() == b"x-atoll-":
            if self.current.atoll_headers is None:
                self.current.atoll_headers = {}
            self.current.atoll_headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > MAX_BODY_BYTES:
            self._fail(413, _TOO_LARGE)
            raise httptools.HttpParserError("body too large")
        self.current.body.append(body)

    def on_message_complete(self) -> None:
        request = self.current
        request.method = self.parser.get_method()
        request.keep_alive = self.parser.should_keep_alive()
        if self.parser.should_upgrade():  # its body, if any, is still to come
            self.upgrading = request
            return
        self.begun = None
        self._accept(request)

    def _accept(self, request: _Request) -> None:
        """Queue a request received in full; answer it now unless answers are pending."""
        self.queue.append(request)
        if len(self.queue) > MAX_PIPELINED and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()
        if not self.busy:
            self._next()

    # --- request handling --------------------------------------------------------------
    def _next(self) -> None:
        while self.queue and not self.closed:
            request = self.queue.popleft()
            if self.paused and len(self.queue) <= MAX_PIPELINED // 2 and self.transport:
                self.paused = False
                self.transport.resume_reading()
            if request.method == b"POST":
                body = b"".join(request.body)
                if self.server.closing:
                    self._respond(request, 503, orjson.dumps(
                        {"__type": "com.amazon.coral.service#ServiceUnavailableException",
                         "message": "The server is shutting down"}))
                    continue
                router = self.server.post
                if router is None and request.url[:8] == b"/_atoll/":
                    router = self.server.admin_post
                if router is not None:
                    path = request.url.split(b"?", 1)[0].decode("latin-1")
                    query = request.url.split(b"?", 1)[1].decode("latin-1") if b"?" in request.url else ""
                    handler = router(path, request.atoll_headers or {}, body, query)
                else:
                    handler = self.server.api(request.target, body)
                if not self._step(request, handler):
                    return  # suspended: `_finish` continues the queue
            elif not self._serve_get(request):
                return  # suspended: its done callback continues the queue
        self.busy = False
        if self.eof:
            self.close_when_idle()

    def _step(self, request: _Request, coro: Coroutine[Any, Any, tuple[int, bytes]]) -> bool:
        """Run the handler until it first suspends. True if it finished at once."""
        self.server.in_flight += 1
        return self._advance(request, coro)

    def _advance(self, request: _Request, coro: Coroutine[Any, Any, tuple[int, bytes]]) -> bool:
        """Step the handler; answer if it finished (True). A handler suspended on a future
        continues from that future's done callback: no Task per write."""
        try:
            yielded = coro.send(None)
        except StopIteration as done:
            self.server.in_flight -= 1
            status, body = done.value
            self._respond(request, status, body)
            return True
        except BaseException as exc:  # cancelled, or a bug the handler did not turn into a 500
            self.server.in_flight -= 1
            self._handler_failed(exc)
            return True
        self.busy = True
        if isinstance(yielded, asyncio.Future):
            # `await future` marked it as awaited; after it is done the coroutine's
            # send(None) returns (or raises) the future's outcome, as a Task would.
            yielded._asyncio_future_blocking = False
            yielded.add_done_callback(lambda _: self._continue(request, coro))
        else:  # a bare `yield` (asyncio.sleep(0)) or anything else: a Task finishes it
            task = asyncio.ensure_future(_resume(coro, yielded))
            task.add_done_callback(lambda t: self._finish(request, t))
        return False

    def _continue(self, request: _Request, coro: Coroutine[Any, Any, tuple[int, bytes]]) -> None:
        if self._advance(request, coro):
            self._next()

    def _finish(self, request: _Request, task: asyncio.Future[tuple[int, bytes]]) -> None:
        self.server.in_flight -= 1
        if self._task_failed(task):
            return
        status, body = task.result()
        self._respond(request, status, body)
        self._next()

    def _serve_get(self, request: _Request) -> bool:
        """Answer a GET (or refuse another method); False if its handler suspended."""
        path = request.url.split(b"?", 1)[0].decode("latin-1")
        if request.method not in (b"GET", b"HEAD"):
            self._respond(request, 405, b'{"message":"method not allowed"}', b"application/json")
            return True
        result = self.server.get(path)
        if isinstance(result, tuple):
            status, body, content_type = result
            self._respond(request, status, body, content_type)
            return True
        self.busy = True
        self.server.in_flight += 1
        task = asyncio.ensure_future(result)

        def done(t: asyncio.Future[tuple[int, bytes, bytes]]) -> None:
            self.server.in_flight -= 1
            if self._task_failed(t):
                return
            status, body, content_type = t.result()
            self._respond(request, status, body, content_type)
            self._next()
        task.add_done_callback(done)
        return False

    def _respond(self, request: _Request, status: int, body: bytes,
                 content_type: bytes = b"application/x-amz-json-1.0") -> None:
        if self.transport is None or self.closed:
            return
        keep_alive = request.keep_alive and not self.server.closing
        server = self.server
        head = b"".join((
            b"HTTP/1.1 ", str(status).encode(), b" ", _REASONS.get(status, b"Unknown"),
            b"\r\nContent-Type: ", content_type,
            b"\r\nContent-Length: ", str(len(body)).encode(),
            b"\r\nx-amzn-RequestId: ", server.request_ids.next(),
            b"\r\nx-amz-crc32: ", str(zlib.crc32(body)).encode(),
            b"\r\nDate: ", server.clock.date(),
            b"\r\nConnection: keep-alive\r\n\r\n" if keep_alive else b"\r\nConnection: close\r\n\r\n",
        ))
        self.transport.write(head + body)
        server.request_times.add(request.began, now_ns())
        self.last_active = server.now
        if not keep_alive:
            self.transport.close()
            self.closed = True

    def _task_failed(self, task: asyncio.Future[Any]) -> bool:
        """If a handler's task was cancelled or raised, answer so; True if it did."""
        if not task.cancelled() and task.exception() is None:
            return False
        self._handler_failed(None if task.cancelled() else task.exception())
        return True

    def _handler_failed(self, exc: BaseException | None) -> None:
        """A handler raised instead of answering: cancelled (shutdown) is a 503; anything
        else is a bug, logged with its traceback and answered as DynamoDB's 500."""
        if exc is None or isinstance(exc, asyncio.CancelledError):
            self._fail(503, b"cancelled")
            return
        log.error("request handler failed", exc_info=exc)
        self._fail(500, b"Internal server error")

    def _fail(self, status: int, message: bytes) -> None:
        if self.transport is not None and not self.closed:
            type_name = ("com.amazon.coral.service#RequestEntityTooLargeException" if status == 413
                         else "com.amazon.coral.service#RequestTimeoutException" if status == 408
                         else "com.amazonaws.dynamodb.v20120810#InternalServerError"
                         if status == 500
                         else "com.amazon.coral.service#SerializationException")
            body = orjson.dumps({"__type": type_name, "message": message.decode()})
            request = _Request()
            request.keep_alive = False
            self._respond(request, status, body)

    def close_when_idle(self) -> None:
        if not self.busy and not self.queue and self.transport is not None:
            self.transport.close()

    def check_timeouts(self, now: float) -> None:
        if self.closed or self.transport is None:
            return
        if self.begun is not None:
            # (while earlier requests are answered, reading may be paused: not the
            # client's fault, and a 408 now would overtake their answers)
            if (not self.busy and not self.queue
                    and now - self.begun > self.server.request_timeout_s):
                self._fail(408, b"The request was not received in full within %d seconds"
                           % self.server.request_timeout_s)
        elif now - self.last_active > self.server.idle_timeout_s:
            self.close_when_idle()


async def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
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
