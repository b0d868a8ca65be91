"""The peer HTTP client's endpoints, against real sockets on loopback: an endpoint that
cannot be connected to is passed over within the same request; one that took the
request and then failed is not (the peer may have acted on it), and the next request
goes to the next endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from atoll.http.client import HttpClient, PeerHttpError
from tests.support import free_port, in_a_loop

TIMEOUT_S = 5.0


class Peer:
    """A loopback listener that answers every request with `ok` (or, `closing`, reads it
    and closes the connection unanswered); counts the requests it read."""

    def __init__(self, closing: bool = False) -> None:
        self.closing = closing
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
