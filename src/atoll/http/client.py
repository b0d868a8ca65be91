"""A small keep-alive HTTP/1.1 client for peer-to-peer requests (asyncio + httptools).

Peers talk JSON over POST (and GET for the topology), so this stays tiny: one connection
per peer, reused while it stays healthy, dropped on any error or timeout (the caller
retries with backoff). A peer may have several endpoints: one that cannot be connected
to is passed over within the request, after any other failure the next request goes to
the next one, and `set_endpoints` follows a topology change without interrupting a
request in flight. Response bodies are bounded.

Two timeouts: `connect_timeout_s` bounds opening a TCP connection, the request's
`timeout_s` bounds the whole exchange (TLS's handshake included). They differ because a
request may be a long poll (a peer holds a Pull for up to its wait), so its timeout must
be long, while an endpoint that silently drops SYNs (a dead host, a firewall, a full
accept queue) would otherwise hold every request for that long before the next endpoint
is tried. A connection not opened in time was sent nothing: the next endpoint is tried
within the same request. Once open, a connection is given the request's whole time.

TLS (`tls`, an `ssl.SSLContext`): every connection is TLS whatever the endpoint's
scheme says, so a topology that names an `http://` endpoint cannot talk a node out of
it. The endpoint's host is the server name checked against the certificate, and
`check_server` is shown the server's verified certificate (`getpeercert()`) before
anything is sent: a node calling region R refuses a server whose certificate names
another region (`PeerRefused`, nothing sent). `local_address` binds the connection's
source address (the drill tells regions apart by it on loopback).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httptools

from atoll.invariant import invariant

MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class PeerHttpError(Exception):
    """The peer could not be reached or answered badly (a dead peer, not a bug).
    `sent`: the request was (at least partly) written, so the peer may have acted on it."""

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class PeerRefused(PeerHttpError):
    """The server's certificate is not the one expected (nothing was sent)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


ServerCheck = Callable[[dict[str, Any] | None], str | None]
"""Shown the server's verified certificate; returns why it is refused, or None."""


class _Response:
    def __init__(self) -> None:
        self.status = 0
        self.body: list[bytes] = []
        self.size = 0
        self.done = False
        self.keep_alive = False
        self.parser: httptools.HttpResponseParser | None = None

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_RESPONSE_BYTES:
            raise PeerHttpError("response too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        # asked here: once feed_data returns, llhttp has reset for the next message and
        # should_keep_alive() says False (every connection was closed after one request)
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True


def _address(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"bad endpoint {endpoint!r}")
    return parts.hostname, parts.port


class HttpClient:
    def __init__(self, endpoint: str | Sequence[str], headers: dict[str, str] | None = None,
                 *, tls: ssl.SSLContext | None = None, check_server: ServerCheck | None = None,
                 local_address: str | None = None,
                 connect_timeout_s: float | None = None) -> None:
        invariant(connect_timeout_s is None or connect_timeout_s > 0,
                  "a connect timeout must be positive")
        self.addresses: tuple[tuple[str, int], ...] = ()
        self._index = 0
        self.set_endpoints(endpoint)
        self.headers = headers or {}
        self.tls = tls
        self.check_server = check_server
        self.local_address = local_address
        self.connect_timeout_s = connect_timeout_s  # None: only the request's timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connected_to: tuple[str, int] | None = None
        self._lock = asyncio.Lock()
        self._sent = False

    @property
    def host(self) -> str:
        return self.addresses[self._index][0]

    @property
    def port(self) -> int:
        return self.addresses[self._index][1]

    @property
    def closed_by_peer(self) -> bool:
        """The peer closed this idle keep-alive connection (it restarted, or timed the
        connection out): the next request opens a new one instead of failing on it."""
        return self._reader is not None and self._reader.at_eof()

    def set_endpoints(self, endpoints: str | Sequence[str]) -> None:
        """Use these endpoints from the next request on (the current one, if still
        listed, stays preferred)."""
        addresses = tuple(_address(e) for e in ([endpoints] if isinstance(endpoints, str)
                                                 else endpoints))
        if not addresses:
            raise ValueError("a peer needs at least one endpoint")
        current = self.addresses[self._index] if self.addresses else None
        self.addresses = addresses
        self._index = addresses.index(current) if current in addresses else 0

    async def post(self, path: str, body: bytes, timeout_s: float) -> tuple[int, bytes]:
        return await self.request("POST", path, body, timeout_s)

    async def get(self, path: str, timeout_s: float) -> tuple[int, bytes]:
        return await self.request("GET", path, b"", timeout_s)

    async def request(self, method: str, path: str, body: bytes, timeout_s: float,
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One exchange, within `timeout_s` in all. An endpoint that fails before the
        request was written (refused, unreachable, or not connected within
        `connect_timeout_s`) is passed over at once for the next one, each endpoint at
        most once: a peer whose first endpoints are dead answers
        through a live one in this same request. Once the request was written the
        failure is the caller's to judge (`PeerHttpError.sent`); the next request goes
        to the next endpoint."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            failures: list[str] = []
            for _endpoint in range(len(self.addresses)):
                host, port = self.host, self.port
                self._sent = False
                try:
                    return await asyncio.wait_for(self._exchange(path, body, method, headers),
                                                  max(0.0, deadline - loop.time()))
                except PeerRefused:
                    self.close()
                    self._index = (self._index + 1) % len(self.addresses)
                    raise
                except (TimeoutError, OSError, httptools.HttpParserError, PeerHttpError,
                        asyncio.IncompleteReadError) as exc:  # (ssl.SSLError is an OSError)
                    self.close()
                    self._index = (self._index + 1) % len(self.addresses)
                    failures.append(f"{host}:{port}{path}: {exc!r}")
                    if self._sent or loop.time() >= deadline:
                        break
            raise PeerHttpError("; ".join(failures), self._sent)

    async def _exchange(self, path: str, body: bytes, method: str,
                        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if self._connected_to != (self.host, self.port):
            self.close()  # the endpoints changed since this connection was opened
        if self._writer is None or self._writer.is_closing() or self.closed_by_peer:
            self.close()
            await self._connect()
        assert self._reader is not None and self._writer is not None
        extra = headers or {}
        default_port = 443 if self.tls is not None else 80
        host = self.host if self.port == default_port else f"{self.host}:{self.port}"
        if ":" in self.host:  # an IPv6 address
            host = f"[{self.host}]" if self.port == default_port else f"[{self.host}]:{self.port}"
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        if not any(k.lower() == "content-type" for k in extra):
            head.append("Content-Type: application/json")
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        head += [f"{k}: {v}" for k, v in extra.items()]
        self._sent = True
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self._writer.drain()
        response = _Response()
        parser = response.parser = httptools.HttpResponseParser(response)
        while not response.done:
            data = await self._reader.read(256 * 1024)
            if not data:
                raise PeerHttpError("connection closed by peer")
            parser.feed_data(data)
        status = parser.get_status_code()
        if not response.keep_alive:
            self.close()
        return status, b"".join(response.body)

    async def _connect(self) -> None:
        host, port = self.host, self.port
        if self.connect_timeout_s is None:
            local = (self.local_address, 0) if self.local_address else None
            self._reader, self._writer = await asyncio.open_connection(
                host, port, ssl=self.tls, server_hostname=host if self.tls else None,
                local_addr=local)
        else:
            sock = await self._tcp(host, port, self.connect_timeout_s)
            try:  # TLS's handshake, under the request's timeout
                self._reader, self._writer = await asyncio.open_connection(
                    sock=sock, ssl=self.tls, server_hostname=host if self.tls else None)
            except BaseException:
                sock.close()
                raise
        self._connected_to = (host, port)
        if self.check_server is not None:
            why = self.check_server(self._writer.get_extra_info("peercert"))
            if why is not None:
                self.close()
                raise PeerRefused(f"{host}:{port}: {why}")

    async def _tcp(self, host: str, port: int, timeout_s: float) -> socket.socket:
        """A TCP connection to host:port opened within `timeout_s` (each address tried in
        turn). Only TCP's handshake is bounded so: the kernel of a live host answers it
        whatever load its process is under, while TLS's handshake waits for that process
        (more than a second was seen for mutual TLS on a machine at load 30)."""
        loop = asyncio.get_running_loop()
        failure: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _name, address in await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                if self.local_address:
                    sock.bind((self.local_address, 0))
                await asyncio.wait_for(loop.sock_connect(sock, address), timeout_s)
                return sock
            except TimeoutError:
                sock.close()
                raise PeerHttpError(f"not connected within {timeout_s:g} s",
                                    sent=False) from None
            except OSError as exc:
                sock.close()
                failure = exc
            except BaseException:
                sock.close()
                raise
        raise failure

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        self._connected_to = None


PeerClientFactory = Callable[[str, Sequence[str], dict[str, str]], HttpClient]
"""(peer region, its peer endpoints, headers) -> a client that talks only to that region
(atoll.node.peers.client_factory: mutual TLS, the server's certificate must name the
region). Every part of a node that calls peers (replication, clock probes, verify, the
console's figures) makes its clients with the node's one factory."""


def plain_peer_client(region: str, endpoints: Sequence[str], headers: dict[str, str]
                      ) -> HttpClient:
    """A peer client without TLS (a cluster without certificates; tests)."""
    return HttpClient(endpoints, headers)
