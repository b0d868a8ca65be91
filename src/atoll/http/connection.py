"""One HTTP/1.1 connection: a raw asyncio Protocol with httptools parsing (server.py's
module doc says how requests flow through it and what the limits do)."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Coroutine
from typing import Any

import httptools
import orjson

from atoll.checksum import crc32
from atoll.http.timing import now_ns
from atoll.http.wire import (
    DETACHED_PARSER,
    MAX_BODY_BYTES,
    MAX_PIPELINED,
    REASONS,
    TOO_LARGE,
    Request,
    ServerState,
    error_body,
    resume,
)

log = logging.getLogger("atoll.http.server")

# An answer's body up to this size is copied behind its head into one write; a longer one
# (a Scan page of 100 items is ~24 KB) is handed over beside it, uncopied.
COPIED_BODY_MAX_BYTES = 4096


class Connection(asyncio.Protocol):
    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.table = server.table
        self.limits = server.table.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current = Request()
        self.body_size = 0
        self.body_counted = 0  # of it, counted in the table's budget for bodies arriving
        self.queue: collections.deque[Request] = collections.deque()
        self.busy = False
        self.paused = False
        self.closed = False  # nothing more is written (closing, or lingering)
        self.eof = False  # the client half-closed: answer what it sent, then close
        self.last_active = server.now  # when it last sent bytes or got an answer
        self.begun: float | None = None  # when the request being received began
        self.upgrading: Request | None = None  # asked to upgrade: its body read here
        self.body_left = 0  # bytes of that body still to come
        # the head of the request being received: between its first byte and its end
        limits = self.limits
        self.in_head = False
        self.head_left = 0  # of its byte budget (on_header says what a field costs)
        self.head_read_bytes = 0  # of reads that continued it; -1 in the read it began
        self.max_head_bytes = limits.max_head_bytes
        self.header_field_cost = limits.max_head_bytes // limits.max_header_fields
        self.max_request_line_bytes = limits.max_request_line_bytes
        self.keep_headers = server.keep_headers
        # called with the connection once per answer: it becomes the last to be evicted
        self.progressed = self.table.open.move_to_end
        self.discarding = False  # refused: what still arrives is dropped (lingering)
        self.discarded_bytes = 0
        self.linger: asyncio.TimerHandle | None = None
        self.peer: dict[str, Any] | None = None  # the client's verified TLS certificate

    # --- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # On a TLS listener this runs after the handshake: the certificate is verified.
        self.peer = transport.get_extra_info("peercert") or None
        if not self.table.admit(self):
            self.closed = True
            transport.abort()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.table.discard(self)
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        self._release_body()
        # Let go of what the connection buffered now: the parser refers back to this
        # connection, a cycle the garbage collector reaches only rarely (node.py raises
        # its thresholds), holding a partial request's head and body until then.
        self.parser = DETACHED_PARSER
        self.current = Request()
        self.queue.clear()
        self.upgrading = None

    def eof_received(self) -> bool:
        """The client sent all it will (a half-close, as `nc -N` does): keep the socket
        open for the answers still being worked on; `_next` closes it when idle."""
        self.eof = True
        # (over TLS a half-close cannot keep the socket open: asyncio closes it)
        return (self.busy or bool(self.queue)) and self.peer is None \
            and self.transport is not None \
            and self.transport.get_extra_info("sslcontext") is None

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            self._discard(data)
            return
        self.last_active = self.server.now
        if self.upgrading is not None:
            self._read_upgrade_body(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._ignore_upgrade(data[upgrade.args[0]:])
            return
        except httptools.HttpParserError:
            if not self.discarding:  # (a callback refused the request: already answered)
                self._refuse(400, b"malformed HTTP request")
            return
        if self.begun is not None:  # the read ended inside a request (rare: not per request)
            self._partial_request(len(data))

    def _partial_request(self, read_bytes: int) -> None:
        """Bound what a request spread over reads makes this process hold: its head (the
        parser buffers a field it has not seen the end of) and, with every connection's
        together, the bodies still arriving."""
        if self.in_head:
            if self.head_read_bytes < 0:  # it began in this read (its callbacks counted it)
                self.head_read_bytes = 0
            else:  # the whole read continued it
                self.head_read_bytes += read_bytes
                if self.head_read_bytes > self.max_head_bytes:
                    self._refuse_head(431, b"Request header fields too large")
        elif self.body_size > self.body_counted:
            table = self.table
            table.buffered_body_bytes += self.body_size - self.body_counted
            self.body_counted = self.body_size
            if table.buffered_body_bytes > self.limits.max_buffered_body_bytes:
                table.refused_request("busy")
                self._refuse(503, b"Too many request bodies are arriving at once; retry later")

    def _discard(self, data: bytes) -> None:
        """Lingering after a refusal: drop what arrives, within a bound."""
        self.discarded_bytes += len(data)
        if self.discarded_bytes > self.limits.linger_max_bytes and self.transport:
            self.transport.abort()

    def evict(self) -> None:
        """Closed to admit another connection (ConnectionTable.admit)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _ignore_upgrade(self, rest: bytes) -> None:
        """A request asked to switch protocols (`Connection: Upgrade` with `Upgrade: h2c`,
        as curl --http2 and Java's HttpClient send on http://). A server that does not
        speak the other protocol answers in HTTP/1.1 (RFC 9110 7.8), so does this one.
        The parser stops at such a request's headers; its body is read here, then a new
        parser takes the rest of the stream."""
        request, self.upgrading = self.upgrading, None
        if request is None or request.method == b"CONNECT" or request.chunked:
            self._refuse(400, b"upgrade not supported")
            return
        length = int(request.content_length or b"0")  # the parser rejected a malformed one
        if length > MAX_BODY_BYTES:
            self.table.refused_request("body")
            self._refuse(413, TOO_LARGE)
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
        self.current = Request()
        self.current.peer = self.peer
        self.body_size = 0
        self.begun = self.server.now
        self.in_head = True
        self.head_left = self.max_head_bytes
        self.head_read_bytes = -1

    def on_url(self, url: bytes) -> None:
        url = self.current.url + url
        self.current.url = url
        if len(url) > self.max_request_line_bytes:
            self._refuse_head(414, b"Request line too long")
            raise httptools.HttpParserError("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)
        # One budget bounds both the head's bytes and its fields: each field costs its
        # bytes, and at least max_head_bytes / max_header_fields, so neither limit can
        # be passed (a head of fields that are each that short or shorter may have all
        # max_header_fields of them).
        cost = size + len(value) + 4  # ": " and CRLF
        if cost < self.header_field_cost:
            cost = self.header_field_cost
        self.head_left -= cost
        if self.head_left < 0:
            self._refuse_head(431, b"Request header fields too large")
            raise httptools.HttpParserError("request head too large")
        if self.keep_headers:
            self.current.headers.append((name, value))
        if size == 12 and name.lower() == b"x-amz-target":
            self.current.target = value.decode("latin-1")
        elif size == 14 and name.lower() == b"content-length":
            self.current.content_length = value
        elif size == 4 and name.lower() == b"host":
            self.current.host = value.decode("latin-1")
        elif size == 17 and name.lower() == b"transfer-encoding":
            self.current.chunked = True
        elif name[:8].lower() == b"x-atoll-":
            if self.current.atoll_headers is None:
                self.current.atoll_headers = {}
            self.current.atoll_headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.in_head = False

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > MAX_BODY_BYTES:
            self.table.refused_request("body")
            self._refuse(413, TOO_LARGE)
            raise httptools.HttpParserError("body too large")
        self.current.body.append(body)

    def on_message_complete(self) -> None:
        request = self.current
        request.method = self.parser.get_method()
        request.keep_alive = self.parser.should_keep_alive()
        if self.body_counted:
            self._release_body()
        if self.parser.should_upgrade():  # its body, if any, is still to come
            self.upgrading = request
            return
        self.begun = None
        self._accept(request)

    def _release_body(self) -> None:
        """The body received stops counting against the listener's budget for bodies
        still arriving (it is complete, refused, or its connection is gone)."""
        self.table.buffered_body_bytes -= self.body_counted
        self.body_counted = 0

    def _refuse_head(self, status: int, message: bytes) -> None:
        limits = self.limits
        self.table.refused_request("head")
        self._refuse(status, message + b" (limits: request line %d bytes, head %d bytes, "
                     b"%d header fields)" % (limits.max_request_line_bytes,
                                             limits.max_head_bytes, limits.max_header_fields))

    def _refuse(self, status: int, message: bytes) -> None:
        """Refuse the request being received: stop parsing, drop whatever else arrives,
        and answer `status` after the answers to earlier requests (then linger)."""
        if self.discarding or self.closed:
            return
        self.discarding = True
        self.in_head = False
        self.begun = None
        self._release_body()
        self.current = Request()
        request = Request()
        request.keep_alive = False
        request.refusal = (status, error_body(status, message))
        if self.paused and self.transport is not None:  # keep reading, to drop it
            self.paused = False
            self.transport.resume_reading()
        self.queue.append(request)
        if not self.busy:
            self._next()

    def _accept(self, request: Request) -> None:
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
            if request.refusal is not None:
                self._respond(request, *request.refusal)  # and linger: nothing follows it
            elif request.method == b"POST":
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
                    handler = router(request, path, body, query)
                    if not self._step(request, handler):
                        return  # suspended: `_finish` continues the queue
                    continue
                answer = self.server.api(request.target, body, request)
                if isinstance(answer, tuple):  # answered at once: nothing to step
                    self._respond(request, answer[0], answer[1])
                elif not self._step(request, answer):
                    return  # suspended: `_finish` continues the queue
            elif not self._serve_get(request):
                return  # suspended: its done callback continues the queue
        self.busy = False
        if self.eof:
            self.close_when_idle()

    def _step(self, request: Request, coro: Coroutine[Any, Any, tuple[int, bytes]]) -> bool:
        """Run the handler until it first suspends. True if it finished at once."""
        self.server.in_flight += 1
        return self._advance(request, coro)

    def _advance(self, request: Request, coro: Coroutine[Any, Any, tuple[int, bytes]]) -> bool:
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
            task = asyncio.ensure_future(resume(coro, yielded))
            task.add_done_callback(lambda t: self._finish(request, t))
        return False

    def _continue(self, request: Request, coro: Coroutine[Any, Any, tuple[int, bytes]]) -> None:
        if self._advance(request, coro):
            self._next()

    def _finish(self, request: Request, task: asyncio.Future[tuple[int, bytes]]) -> None:
        self.server.in_flight -= 1
        if self._task_failed(task):
            return
        status, body = task.result()
        self._respond(request, status, body)
        self._next()

    def _serve_get(self, request: Request) -> bool:
        """Answer a GET (or refuse another method); False if its handler suspended."""
        path = request.url.split(b"?", 1)[0].decode("latin-1")
        if request.method not in (b"GET", b"HEAD"):
            self._respond(request, 405, b'{"message":"method not allowed"}', b"application/json")
            return True
        result = self.server.get(request, path)
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

    def _respond(self, request: Request, status: int, body: bytes,
                 content_type: bytes = b"application/x-amz-json-1.0") -> None:
        if self.transport is None or self.closed:
            return
        keep_alive = request.keep_alive and not self.server.closing
        server = self.server
        head = b"".join((
            b"HTTP/1.1 ", str(status).encode(), b" ", REASONS.get(status, b"Unknown"),
            b"\r\nContent-Type: ", content_type,
            b"\r\nContent-Length: ", str(len(body)).encode(),
            b"\r\nx-amzn-RequestId: ", server.request_ids.next(),
            b"\r\nx-amz-crc32: ", str(crc32(body)).encode(),
            b"\r\nDate: ", server.clock.date(),
            b"\r\nConnection: keep-alive\r\n\r\n" if keep_alive else b"\r\nConnection: close\r\n\r\n",
        ))
        if len(body) > COPIED_BODY_MAX_BYTES:
            # handed to the transport beside its head (one writev), not copied behind it
            self.transport.writelines((head, body))
        else:
            self.transport.write(head + body)
        server.request_times.add(request.began, now_ns())
        self.last_active = server.now
        if keep_alive:
            self.progressed(self)  # the last to be evicted
        elif request.refusal is not None:
            self._linger()
        else:
            self.transport.close()
            self.closed = True

    def _linger(self) -> None:
        """After a refusal: send nothing more (FIN after the answer), keep reading and
        dropping what the client still sends, and close once it closes, after
        `linger_s`, or past `linger_max_bytes` — so the client reads the answer."""
        transport = self.transport
        assert transport is not None
        self.closed = True
        self.discarding = True
        if transport.can_write_eof():
            transport.write_eof()
        self.linger = asyncio.get_running_loop().call_later(
            self.limits.linger_s, transport.abort)

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
        """Answer `status` and close at once (a timeout, a handler that failed)."""
        if self.transport is not None and not self.closed:
            request = Request()
            request.keep_alive = False
            self._respond(request, status, error_body(status, message))

    def close_when_idle(self) -> None:
        if not self.busy and not self.queue and self.transport is not None:
            self.transport.close()

    def check_timeouts(self, now: float) -> None:
        if self.closed or self.transport is None:
            return
        table = self.table
        if self.begun is not None:
            # (while earlier requests are answered, reading may be paused: not the
            # client's fault, and a 408 now would overtake their answers)
            allowed_s = table.request_timeout_s
            if table.under_pressure:  # a large body still moving is not a stalled one
                allowed_s += self.body_size / self.limits.min_body_rate_bytes_per_s
            if not self.busy and not self.queue and now - self.begun > allowed_s:
                table.timed_out()
                self._fail(408, b"The request was not received in full within %d seconds"
                           % allowed_s)
        elif now - self.last_active > table.idle_timeout_s:
            if not self.busy and not self.queue:
                table.closed_idle()
            self.close_when_idle()
