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
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from atoll.http.limits import ConnectionLimits
from atoll.http.server import HttpServer
from atoll.http.wire import RequestIds


class Boom(RuntimeError):
    pass


def _api(target: str | None, body: bytes, head: Any = None) -> Any:
    """Answers "Now" at once, as a value (as `Api.answer` answers a read that needs no
    wait), and every other target with a coroutine."""
    if target == "Now":
        return 200, b'{"now":' + body + b"}"
    return _api_coroutine(target, body, head)


async def _api_coroutine(target: str | None, body: bytes, head: Any = None
                         ) -> tuple[int, bytes]:
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
    if target == "Stats":
        return 200, json.dumps(SERVERS[-1].connection_stats()).encode()
    if target == "Head":
        assert head is not None
        return 200, json.dumps({"headers": [[n.decode(), v.decode()] for n, v in head.headers],
                                "target": head.target, "host": head.host}).encode()
    return 200, b'{"ok":true}'


SERVERS: list[HttpServer] = []  # the one a test runs against is the last


def _get(head: Any, path: str) -> Any:
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


def _serve(keep_headers: bool = True, **timeouts: Any) -> Iterator[int]:
    """A real HttpServer on a loopback port, its loop on a thread; yields the port."""
    loop = asyncio.new_event_loop()
    server = HttpServer(_api, _get, limits=ConnectionLimits(**timeouts),
                        keep_headers=keep_headers)
    SERVERS.append(server)
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


@pytest.fixture
def headerless_port() -> Iterator[int]:
    """A server that keeps no header fields (a node's client port with auth off)."""
    yield from _serve(keep_headers=False)


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


def test_answers_given_at_once_and_by_coroutines_keep_their_order(port: int) -> None:
    def post(target: bytes, body: bytes) -> bytes:
        return (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: " + target
                + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    sent = [(b"Now", b'"a"'), (b"Slow", b"{}"), (b"Now", b'"b"'), (b"Echo", b'"c"'),
            (b"Now", b'"d"' * 3000)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(post(t, b) for t, b in sent))
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    heads, bodies, ids = [], [], set()
    rest = received
    while rest:
        head, rest = rest.split(b"\r\n\r\n", 1)
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        length = int(fields[b"Content-Length"])
        body, rest = rest[:length], rest[length:]
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert int(fields[b"x-amz-crc32"]) == zlib.crc32(body)
        ids.add(fields[b"x-amzn-RequestId"])
        heads.append(head)
        bodies.append(body)
    assert bodies == [b'{"now":"a"}', b'{"slow":true}', b'{"now":"b"}', b'{"echo":"c"}',
                      b'{"now":' + b'"d"' * 3000 + b"}"]
    assert len(ids) == 5 and all(len(i) == 52 and i.isalnum() and i.upper() == i for i in ids)


def test_request_ids_count_up_in_twenty_digits_after_a_fixed_prefix() -> None:
    ids = RequestIds()
    made = [ids.next() for _ in range(2345)]
    prefix = made[0][:32]
    assert made == [prefix + b"%020d" % n for n in range(1, 2346)]
    ids.counter = 10**20 - 2  # past twenty digits the counter just grows
    assert [ids.next(), ids.next()] == [prefix + b"%020d" % (10**20 - 1), prefix + b"%d" % 10**20]


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


# --- limits ------------------------------------------------------------------------------
# A request's line and head are bounded (414, 431); the answer comes after the answers to
# earlier requests, and the connection lingers so the client reads it instead of a reset.
# At the cap the connection that made progress longest ago is closed to admit a new one;
# a connection being answered never is. Under pressure a stalled request gets 408 sooner.

FINE = b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Fine.Op\r\nContent-Length: 2\r\n\r\n{}"


def _head_with(extra: bytes) -> bytes:
    return b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Fine.Op\r\n" + extra


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


@pytest.mark.parametrize("extra,status", [
    # with Host, X-Amz-Target and Content-Length: 100 fields, then 101
    (b"".join(b"X-F%d: v\r\n" % i for i in range(97)), 200),
    (b"".join(b"X-F%d: v\r\n" % i for i in range(98)), 431),
    (b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * 140) for i in range(97)), 200),
    (b"".join(b"X-F%d: v\r\n" % i for i in range(10_000)), 431),
    (b"X-Big: " + b"a" * 15_000 + b"\r\n", 200),
    (b"X-Big: " + b"a" * 17_000 + b"\r\n", 431),
    (b"X-Big: " + b"a" * (1 << 20) + b"\r\n", 431),
])
def test_a_head_over_its_limits_is_answered_431(port: int, extra: bytes, status: int) -> None:
    received = _exchange(port, _head_with(extra) + b"Content-Length: 2\r\n\r\n{}")
    assert _status(received) == status, received[:200]
    if status == 431:
        assert b"RequestHeaderFieldsTooLargeException" in received, received
        assert b"Connection: close" in received, received


def test_a_request_line_over_its_limit_is_answered_414(port: int) -> None:
    ok = _exchange(port, b"GET /health?" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(ok) == 200, ok[:200]
    long = _exchange(port, b"GET /health?" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(long) == 414 and b"RequestURITooLongException" in long, long[:300]


def test_a_header_trickled_over_many_reads_is_bounded_before_it_ends(port: int) -> None:
    """The parser keeps a field it has not seen the end of: a header that never ends is
    refused once the reads that continued it pass the head limit, not never."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_head_with(b"X-Trickle: "))
        for _ in range(40):  # 40 reads of 1 KB, 40 ms apart: past 16 KB after ~17
            time.sleep(0.04)
            try:
                sock.sendall(b"a" * 1024)
            except OSError:
                break
        received, _waited = _read_until_closed(sock)
    assert _status(received) == 431, received[:200]


def test_a_refusal_comes_after_the_answers_to_earlier_requests(port: int) -> None:
    slow = b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Slow\r\nContent-Length: 2\r\n\r\n{}"
    big = _head_with(b"X-Big: " + b"a" * 40_000 + b"\r\nContent-Length: 2\r\n\r\n{}")
    received = _exchange(port, slow + FINE + big + FINE)
    assert received.count(b"HTTP/1.1 ") == 3, received[:600]  # nothing after the refusal
    assert 0 <= received.find(b'{"slow":true}') < received.find(b'{"ok":true}') \
        < received.find(b"HTTP/1.1 431 "), received[:600]


def test_the_client_reads_the_refusal_while_it_is_still_sending(port: int) -> None:
    """After refusing, the server half-closes and keeps reading and dropping: a client
    that sends its whole request before reading (as SDKs do) gets the answer, not a
    reset."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/", body=b"{}" * (1 << 20),
                       headers={"X-Amz-Target": "Fine.Op", "X-Big": "a" * (1 << 20)})
    response = connection.getresponse()
    assert response.status == 431
    assert json.loads(response.read())["__type"].endswith("RequestHeaderFieldsTooLargeException")
    connection.close()


@pytest.fixture
def capped_port() -> Iterator[int]:
    """At most 4 connections; pressure from 3."""
    yield from _serve(max_connections=4, pressure_fraction=0.75, log_interval_s=0.3)


def _stats(port: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "Stats"})
    stats = json.loads(connection.getresponse().read())
    connection.close()
    return stats  # type: ignore[no-any-return]


def _closed_by_server(sock: socket.socket, wait_s: float = 0.3) -> bool:
    """Whether the server closed the connection (within `wait_s`: closes are immediate
    here, and a slow machine only makes a false "not closed" less likely)."""
    sock.settimeout(wait_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_at_the_cap_the_longest_idle_connection_makes_room(capped_port: int) -> None:
    worker = http.client.HTTPConnection("127.0.0.1", capped_port, timeout=10)

    def work() -> None:
        worker.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "Fine.Op"})
        assert worker.getresponse().read() == b'{"ok":true}'

    work()
    working = worker.sock
    idle = [socket.create_connection(("127.0.0.1", capped_port), timeout=10) for _ in range(3)]
    time.sleep(0.05)
    work()  # the worker made progress after the idle ones connected
    flood = [socket.create_connection(("127.0.0.1", capped_port), timeout=10) for _ in range(3)]
    time.sleep(0.1)
    work()
    assert worker.sock is working  # the same connection, never closed
    assert all(_closed_by_server(sock, 2.0) for sock in idle)  # the oldest idle went first
    assert not any(_closed_by_server(sock) for sock in flood)
    # Four newcomers: the three flood connections, then the worker (idle longest now)
    newcomers = [socket.create_connection(("127.0.0.1", capped_port), timeout=10)
                 for _ in range(4)]
    assert all(_closed_by_server(sock, 2.0) for sock in flood + [working])
    assert not any(_closed_by_server(sock) for sock in newcomers)
    flood += newcomers
    for sock in idle + flood:
        sock.close()
    worker.close()


def test_a_connection_being_answered_is_never_closed_to_make_room(capped_port: int) -> None:
    busy = []
    for _ in range(4):  # every slot holds a request that takes longer than the test
        sock = socket.create_connection(("127.0.0.1", capped_port), timeout=10)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: VerySlow\r\n"
                     b"Content-Length: 2\r\n\r\n{}")
        busy.append(sock)
    time.sleep(0.1)
    newcomer = socket.create_connection(("127.0.0.1", capped_port), timeout=10)
    assert _closed_by_server(newcomer, 2.0)  # refused: the others are all being answered
    assert not any(_closed_by_server(sock) for sock in busy[:1])
    for sock in busy + [newcomer]:
        sock.close()


def test_under_pressure_a_stalled_request_times_out_sooner() -> None:
    for port in _serve(max_connections=8, pressure_fraction=0.5, request_timeout_s=30.0,
                       pressure_request_timeout_s=0.3):
        calm = socket.create_connection(("127.0.0.1", port), timeout=10)
        calm.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le")
        assert not _closed_by_server(calm, 1.0)  # one connection, no pressure: 30 s
        others = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        started = time.monotonic()
        received, _waited = _read_until_closed(calm)
        assert _status(received) == 408, received
        assert time.monotonic() - started < 3.0
        for sock in others + [calm]:
            sock.close()


def test_pressure_is_logged_with_counts_not_per_connection(
        capped_port: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="atoll.http.server"):
        flood = []
        for _ in range(40):
            flood.append(socket.create_connection(("127.0.0.1", capped_port), timeout=10))
            time.sleep(0.01)
        time.sleep(1.5)  # past the 0.3 s interval and a sweep
        stats = _stats(capped_port)
        for sock in flood:
            sock.close()
    lines = [r.getMessage() for r in caplog.records
             if "connections closed to admit new ones" in r.getMessage()]
    counts = [int(line.split()[0]) for line in lines]
    assert stats["evicted_total"] >= 36, stats
    assert sum(counts) >= 36 and len(lines) <= 6, lines  # ~0.5 s of flood: 1-3 reports
    assert max(counts) > 1, lines


def _head_seen(port: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/", body=b"{}", headers={
        "X-Amz-Target": "Head", "X-Amz-Date": "20260101T000000Z", "Authorization": "a b"})
    response = connection.getresponse()
    assert response.status == 200
    seen: dict[str, Any] = json.loads(response.read())
    connection.close()
    return seen


def test_a_handler_gets_every_header_field_as_received(port: int) -> None:
    seen = _head_seen(port)
    names = [name for name, _ in seen["headers"]]
    assert names == ["Host", "Accept-Encoding", "Content-Length", "X-Amz-Target",
                     "X-Amz-Date", "Authorization"], names
    assert ["Authorization", "a b"] in seen["headers"]
    assert seen["target"] == "Head" and seen["host"] == f"127.0.0.1:{port}"


def test_a_listener_that_keeps_no_headers_still_reads_the_ones_it_routes_by(
        headerless_port: int) -> None:
    seen = _head_seen(headerless_port)
    assert seen["headers"] == []
    assert seen["target"] == "Head" and seen["host"] == f"127.0.0.1:{headerless_port}"
