"""The peer HTTP client's endpoints, against real sockets on loopback: an endpoint that
cannot be connected to is passed over within the same request; one that took the
request and then failed is not (the peer may have acted on it), and the next request
goes to the next endpoint. An endpoint that silently drops connections is given up after
the connect timeout, not the request's; an answer slower than the connect timeout on an
open connection (a long poll) is still waited for."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from atoll.http.client import HttpClient, PeerHttpError
from tests.support import black_hole, free_port, in_a_loop

TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 0.3


class Peer:
    """A loopback listener that answers every request with `ok` (or, `closing`, reads it
    and closes the connection unanswered); counts the requests it read."""

    def __init__(self, closing: bool = False, delay_s: float = 0.0) -> None:
        self.closing = closing
        self.delay_s = delay_s  # before each answer (a long poll)
        self.requests = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.requests += 1
                if self.closing:
                    return
                await asyncio.sleep(self.delay_s)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def _listening(peer: Peer) -> AsyncIterator[str]:
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{peer.port}"
    finally:
        server.close()
        await server.wait_closed()


def _dead() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


@in_a_loop
async def test_dead_endpoints_are_passed_over_within_the_request() -> None:
    live = Peer()
    async with _listening(live) as endpoint:
        client = HttpClient([_dead(), _dead(), endpoint])
        try:
            assert await client.post("/x", b"{}", TIMEOUT_S) == (200, b"ok")
            assert client.port == live.port  # and it stays there
            assert await client.post("/x", b"{}", TIMEOUT_S) == (200, b"ok")
            assert live.requests == 2
        finally:
            client.close()


@in_a_loop
async def test_a_peer_with_no_live_endpoint_fails_once_naming_each() -> None:
    endpoints = [_dead(), _dead()]
    client = HttpClient(endpoints)
    with pytest.raises(PeerHttpError) as failure:
        await client.post("/x", b"{}", TIMEOUT_S)
    assert not failure.value.sent
    message = str(failure.value)
    assert all(message.count(e.removeprefix("http://")) == 1 for e in endpoints), message
    client.close()


@in_a_loop
async def test_a_request_the_peer_took_is_not_sent_again_elsewhere() -> None:
    closing, live = Peer(closing=True), Peer()
    async with _listening(closing) as first, _listening(live) as second:
        client = HttpClient([first, second])
        try:
            with pytest.raises(PeerHttpError) as failure:
                await client.post("/x", b"{}", TIMEOUT_S)
            assert failure.value.sent
            assert (closing.requests, live.requests) == (1, 0)
            assert await client.post("/x", b"{}", TIMEOUT_S) == (200, b"ok")  # the next one
            assert live.requests == 1
        finally:
            client.close()


@in_a_loop
async def test_an_endpoint_dropping_connections_costs_the_connect_timeout_only() -> None:
    live = Peer()
    with black_hole() as hole:
        async with _listening(live) as endpoint:
            client = HttpClient([f"http://127.0.0.1:{hole}", endpoint],
                                connect_timeout_s=CONNECT_TIMEOUT_S)
            try:
                began = time.monotonic()
                assert await client.post("/x", b"{}", TIMEOUT_S) == (200, b"ok")
                assert time.monotonic() - began < CONNECT_TIMEOUT_S + 1.0
                assert client.port == live.port
            finally:
                client.close()


@in_a_loop
async def test_an_endpoint_dropping_connections_alone_fails_within_the_connect_timeout() -> None:
    with black_hole() as hole:
        client = HttpClient(f"http://127.0.0.1:{hole}", connect_timeout_s=CONNECT_TIMEOUT_S)
        began = time.monotonic()
        with pytest.raises(PeerHttpError) as failure:
            await client.post("/x", b"{}", TIMEOUT_S)
        assert time.monotonic() - began < CONNECT_TIMEOUT_S + 1.0
        assert not failure.value.sent and "not connected within" in str(failure.value)
        client.close()


@in_a_loop
async def test_an_answer_slower_than_the_connect_timeout_is_waited_for() -> None:
    slow = Peer(delay_s=CONNECT_TIMEOUT_S * 3)  # a long poll held past the connect bound
    async with _listening(slow) as endpoint:
        client = HttpClient(endpoint, connect_timeout_s=CONNECT_TIMEOUT_S)
        try:
            for _ in range(2):  # a new connection, then the kept-alive one
                assert await client.post("/x", b"{}", TIMEOUT_S) == (200, b"ok")
            assert slow.requests == 2
        finally:
            client.close()
