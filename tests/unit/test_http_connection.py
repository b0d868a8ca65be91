"""The HTTP layer's connection handling, on a real HttpServer on a loopback socket.

When a handler raises instead of answering (a bug, not bad input) — before its first
suspension, after awaiting a future, on the Task path (a bare yield) or in a GET
handler — the client gets DynamoDB's 500 (InternalServerError), the traceback is logged,
and the server keeps serving; a cancelled handler stays a 503. A client that half-closes
after sending still gets the answers to what it sent, however long they take, and
pipelined requests are answered in the order they were sent. A request that asks to
upgrade the protocol (h2c, websocket) is answered in HTTP/1.1 with its whole body, and the
requests behind it on the connection too. A request left unfinished
past the request timeout is answered 408 and its connection closed; a connection idle past
the idle timeout is closed; a connection that keeps working, or waits on a slow handler,
is not.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from atoll.http.limits import ConnectionLimits
from atoll.http.server import HttpServer


class Boom(RuntimeError):
    pass


async def _api(target: str | None, body: bytes) -> tuple[int, bytes]:
    if target == "Raise.Now":
        raise Boom("raised before suspending")
    if target == "Raise.AfterFuture":
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.set_result, None)
        await future
        raise Boom("raised after a future")
    if target == "Raise.AfterYield":
        await asyncio.sleep(0)
        raise Boom("raised on the task path")
    if target == "Cancel":
        raise asyncio.CancelledError
    if target == "Slow":
        await asyncio.sleep(0.05)
        return 200, b'{"slow":true}'
    if target == "Echo":
        return 200, b'{"echo":' + body + b"}"
    if target == "VerySlow":
        await asyncio.sleep(3 * IDLE_TIMEOUT_S)
        return 200, b'{"very slow":true}'
    return 200, b'{"ok":true}'


def _get(path: str) -> Any:
    if path == "/slow":
        async def slow() -> tuple[int, bytes, bytes]:
            await asyncio.sleep(0.05)
            return 200, b"slow get", b"text/plain"
        return slow()
    if path == "/raise":
        async def failing() -> tuple[int, bytes, bytes]:
            await asyncio.sleep(0)
            raise Boom("raised in a GET handler")
        return failing()
    return 200, b"healthy", b"text/plain"


def _serve(**timeouts: float) -> Iterator[int]:
    """A real HttpServer on a loopback port, its loop on a thread; yields the port."""
    loop = asyncio.new_event_loop()
    server = HttpServer(_api, _get, limits=ConnectionLimits(**timeouts))
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        listener = await loop.create_server(server.protocol, "127.0.0.1", 0)
        holder["port"] = listener.sockets[0].getsockname()[1]
        holder["listener"] = listener
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(main()), loop.run_forever()))
    thread.start()
    assert started.wait(10)
    yield int(holder["port"])
    loop.call_soon_threadsafe(holder["listener"].close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def port() -> Iterator[int]:
    yield from _serve()


REQUEST_TIMEOUT_S = 0.3
IDLE_TIMEOUT_S = 0.6


@pytest.fixture
def strict_port() -> Iterator[int]:
    """A server whose timeouts are short enough to watch."""
    yield from _serve(request_timeout_s=REQUEST_TIMEOUT_S, idle_timeout_s=IDLE_TIMEOUT_S)


def _call(port: int, method: str, path: str, target: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"X-Amz-Target": target} if target else {}
    connection.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
    response = connection.getresponse()
    answer = response.status, response.read()
    connection.close()
    return answer


@pytest.mark.parametrize("target", ["Raise.Now", "Raise.AfterFuture", "Raise.AfterYield"])
def test_a_raising_api_handler_is_a_logged_500(port: int, target: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="atoll.http.server"):
        status, body = _call(port, "POST", "/", target)
    assert status == 500, body
    assert json.loads(body)["__type"].endswith("#InternalServerError"), body
    failures = [r for r in caplog.records if r.getMessage() == "request handler failed"]
    assert failures and failures[0].exc_info is not None
    assert isinstance(failures[0].exc_info[1], Boom)
    assert _call(port, "POST", "/", "Fine.Op") == (200, b'{"ok":true}')


def test_a_raising_get_handler_is_a_logged_500(port: int,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="atoll.http.server"):
        status, body = _call(port, "GET", "/raise")
    assert status == 500, body
    assert any(r.getMessage() == "request handler failed" for r in caplog.records)
    assert _call(port, "GET", "/health") == (200, b"healthy")


def test_a_cancelled_handler_is_a_503(port: int) -> None:
    status, body = _call(port, "POST", "/", "Cancel")
    assert status == 503, body
    assert _call(port, "POST", "/", "Fine.Op") == (200, b'{"ok":true}')


def test_a_half_closed_connection_still_gets_its_answers(port: int) -> None:
    request = (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Slow\r\nContent-Length: 2\r\n"
               b"\r\n{}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request * 2)  # two pipelined requests, each answered after 50 ms
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):  # the server closes once it has answered
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 2, received
    assert received.endswith(b'{"slow":true}'), received


def test_pipelined_answers_keep_their_order_behind_a_slow_get(port: int) -> None:
    slow_get = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
    fast_post = (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Fine.Op\r\n"
                 b"Content-Length: 2\r\n\r\n{}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(slow_get + fast_post)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert 0 <= received.find(b"slow get") < received.find(b'{"ok":true}'), received


_H2C = (b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n")


def _exchange(port: int, *pieces: bytes) -> bytes:
    """Send the pieces 50 ms apart, half-close, and return all the answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.05)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_an_upgrade_request_is_answered_in_http_1_1_with_its_body(port: int) -> None:
    body = b'{"k":"v"}'
    upgrade = (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Echo\r\n" + _H2C
               + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    after = b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Echo\r\nContent-Length: 2\r\n\r\n[]"
    received = _exchange(port, upgrade + after)  # one packet: body and the next request
    assert received.count(b"HTTP/1.1 200 OK") == 2, received
    assert b"101" not in received.split(b"\r\n", 1)[0], received
    assert 0 <= received.find(b'{"echo":{"k":"v"}}') < received.find(b'{"echo":[]}'), received


def test_an_upgrade_request_body_may_arrive_in_pieces(port: int) -> None:
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Echo\r\n" + _H2C
            + b"Content-Length: 11\r\n\r\n")
    after = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    received = _exchange(port, head, b'{"a":', b'[1,2]}' + after[:10], after[10:])
    assert b'{"echo":{"a":[1,2]}}' in received, received
    assert received.endswith(b"healthy"), received


def test_a_get_asking_for_a_websocket_is_answered_in_http_1_1(port: int) -> None:
    received = _exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                         b"Upgrade: websocket\r\n\r\n" * 2)
    assert received.count(b"HTTP/1.1 200 OK") == 2, received


def test_a_chunked_upgrade_request_is_refused_and_closed(port: int) -> None:
    received = _exchange(port, b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Echo\r\n" + _H2C
                         + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 "), received
    assert b"upgrade not supported" in received and b"Connection: close" in received, received


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    start = time.monotonic()
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - start


def test_a_request_never_finished_is_answered_408_and_closed(strict_port: int) -> None:
    with socket.create_connection(("127.0.0.1", strict_port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Fine.Op\r\n"
                     b"Content-Length: 100\r\n\r\n{\"partial")
        received, waited = _read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received
    assert b"RequestTimeoutException" in received, received
    assert b"Connection: close" in received, received
    assert waited >= REQUEST_TIMEOUT_S


def test_a_connection_that_sends_nothing_is_closed_once_idle(strict_port: int) -> None:
    with socket.create_connection(("127.0.0.1", strict_port), timeout=10) as sock:
        received, waited = _read_until_closed(sock)
    assert received == b""
    assert waited >= IDLE_TIMEOUT_S - 0.2  # the sweep's clock is as coarse as its interval


def test_a_keep_alive_connection_is_closed_once_idle_after_answers(strict_port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", strict_port, timeout=10)
    connection.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "Fine.Op"})
    assert connection.getresponse().read() == b'{"ok":true}'
    assert connection.sock is not None
    received, waited = _read_until_closed(connection.sock)
    assert received == b""
    assert IDLE_TIMEOUT_S - 0.2 <= waited < 10
    connection.close()


def test_busy_and_slow_connections_are_not_cut(strict_port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", strict_port, timeout=10)
    deadline = time.monotonic() + 3 * IDLE_TIMEOUT_S
    answers = 0
    while time.monotonic() < deadline:  # one request every 0.1 s: never idle for long
        connection.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "Fine.Op"})
        assert connection.getresponse().read() == b'{"ok":true}'
        answers += 1
        time.sleep(0.1)
    # a handler that takes longer than both timeouts still gets its answer through
    connection.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "VerySlow"})
    assert connection.getresponse().read() == b'{"very slow":true}'
    connection.close()
    assert answers >= 10
