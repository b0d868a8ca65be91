"""HTTP/1.1 server: a raw asyncio Protocol with httptools parsing.

Theory of operation
- One `Connection` per socket. httptools calls back as it parses; a complete request is
  queued, and requests of one connection are answered strictly in order (pipelining).
- A request is handed to the API handler (`Api.answer`), which answers a read that needs
  no wait at once, as a value, and anything else with a coroutine. A coroutine is
  stepped once by hand; if it finishes then, it is answered at once — no Task per
  request. Writes suspend on the storage's commit future; the coroutine is stepped again
  from that future's done callback (`_advance`), still without a Task. Only a handler that yields
  something other than a future (`asyncio.sleep(0)`) gets a Task to finish it.
  (Measured to matter for GetItem and PutItem throughput.)
- Limits (`limits.py` says why and how much): at most `max_connections` open; at the cap
  a new connection is admitted by closing the one that made progress longest ago. The
  open connections are kept in an OrderedDict in the order they last made progress (an
  answer sent, or accepted): one `move_to_end` per answer, so the oldest are at its head
  and admission looks at a bounded few of them. A request's line and head are bounded
  (414, 431), its body too (413); these refusals are answered in order behind what the
  connection already sent, then the connection lingers — reading and dropping what the
  client is still sending, for a bounded time and number of bytes — so the client reads
  the answer rather than a reset. A connection with more than MAX_PIPELINED requests
  queued stops being read until it drains.
- Timeouts: a request still incomplete `request_timeout_s` after its first byte is
  answered 408 and its connection closed; a connection idle for `idle_timeout_s`
  (nothing received, nothing being answered) is closed. Both are shorter under
  connection pressure. One sweep every second or so checks them against a clock it reads
  then, re-judges the pressure and logs what pressure did since the last report (once
  per interval per kind, with counts): requests pay nothing for them.
- GETs go to the `get` handler (`/health`, the node's `/_atoll/...` pages); every other
  method but POST is refused.
- POSTs go to the DynamoDB API, except: on a listener with a `post` router (the peer
  port) every POST is routed by path, and on the client port POSTs to `/_atoll/...`
  (cluster administration, e.g. the topology) go to the `admin_post` router.
- Every handler is given the `Request`: its headers as received (the node verifies
  request signatures over them; a listener told `keep_headers=False`, the client port
  of a node with auth off, keeps none: a tuple per header field per request, about
  0.5 us of a GetItem's CPU in process) and, on a TLS listener that asks for client
  certificates, the verified certificate of the connection's client.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from atoll.http.connection import Connection
from atoll.http.limits import ConnectionLimits
from atoll.http.tlsaccept import Refused, TlsListener
from atoll.http.wire import (
    MAX_BODY_BYTES,
    ApiHandler,
    GetHandler,
    PostHandler,
    ServerState,
)

__all__ = ["MAX_BODY_BYTES", "ApiHandler", "Connection", "GetHandler", "HttpServer",
           "ListenError", "PostHandler", "listen"]

log = logging.getLogger(__name__)

MAX_SWEEP_INTERVAL_S = 1.0
TLS_HANDSHAKE_TIMEOUT_S = 10.0


class ListenError(Exception):
    """A server could not open its listening socket (the address is taken or not local)."""


async def listen(protocol: Callable[[], asyncio.Protocol], host: str, port: int, backlog: int,
                 what: str = "", tls: ssl.SSLContext | None = None,
                 refused: Refused | None = None) -> asyncio.AbstractServer:
    """A listening server on host:port (TLS with `tls`), or ListenError saying why not in
    one line. A TLS handshake must finish within TLS_HANDSHAKE_TIMEOUT_S: a client that
    opens connections and never completes one holds no socket for long. With `refused`,
    every failed handshake is reported to it (atoll.http.tlsaccept)."""
    try:
        if tls is None:
            return await asyncio.get_running_loop().create_server(
                protocol, host, port, backlog=backlog, reuse_address=True)
        if refused is not None:
            return await asyncio.get_running_loop().create_server(
                TlsListener(protocol, tls, TLS_HANDSHAKE_TIMEOUT_S, refused), host, port,
                backlog=backlog, reuse_address=True)
        return await asyncio.get_running_loop().create_server(
            protocol, host, port, backlog=backlog, reuse_address=True, ssl=tls,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
    except OSError as exc:  # in use, or not an address of this machine
        raise ListenError(f"cannot listen on {host}:{port}{what}: {exc.strerror or exc}") from None


class HttpServer(ServerState):
    """A listener's connections: creates them, sweeps their timeouts, drains them."""

    def __init__(self, api: ApiHandler, get: GetHandler, post: PostHandler | None = None,
                 admin_post: PostHandler | None = None, *,
                 limits: ConnectionLimits | None = None, keep_headers: bool = True) -> None:
        super().__init__(api, get, post, admin_post, limits=limits, keep_headers=keep_headers)
        limits = self.table.limits
        self.sweep_interval_s = min(MAX_SWEEP_INTERVAL_S, limits.request_timeout_s / 4,
                                    limits.pressure_request_timeout_s / 4,
                                    limits.idle_timeout_s / 4, limits.pressure_idle_timeout_s / 4)
        self._sweeping = False

    def protocol(self) -> Connection:
        if not self._sweeping:
            self._sweeping = True
            asyncio.get_running_loop().call_later(self.sweep_interval_s, self._sweep)
        return Connection(self)

    def _sweep(self) -> None:
        """Judge the pressure, close connections whose request stalled or that sat idle
        too long, log what pressure did (at most once per interval per kind) and hand
        memory back after a flood."""
        self.now = time.monotonic()
        table = self.table
        table.judge_pressure()
        for connection in list(table.open):
            connection.check_timeouts(self.now)
        table.report(self.now)
        table.release_after_flood()
        if table.open or not self.closing:
            asyncio.get_running_loop().call_later(self.sweep_interval_s, self._sweep)
        else:
            self._sweeping = False

    def connection_stats(self) -> dict[str, Any]:
        """Counters for /_atoll/status: connections open and what the limits did."""
        return self.table.stats()

    async def drain(self, timeout_s: float) -> None:
        """Stop taking requests; wait (bounded) for in-flight ones to be answered."""
        self.closing = True
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.table.open):
            connection.close_when_idle()
