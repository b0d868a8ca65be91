"""Accepting TLS connections so that a refused handshake is seen, counted and logged.

Theory of operation: asyncio's own TLS server (`create_server(ssl=...)`) finishes the
handshake before the application's protocol hears of the connection, and drops one that
fails (no client certificate, one of another CA, plain HTTP, a port scanner) without a
word: the event loop reports it only in debug mode. A listener that refuses strangers
must say whom it refused. `TlsListener` is the protocol factory that does what
`create_server(ssl=...)` does inside — each accepted socket gets the event loop's own
SSL protocol (uvloop's under uvloop, asyncio's otherwise) wrapped around the
application's protocol, with the listener's context and handshake timeout — and in
addition hands that SSL protocol a waiter: the SSL protocol completes the waiter when
the handshake ends, with the failure if it failed, and `refused(address, reason)` is
called then. On success nothing changes: the application's protocol gets the TLS
transport, its `connection_made` running after the handshake with the verified
certificate. The SSL protocol is subclassed only to note the caller's address.

Interpreted (setup.py INTERPRETED): it subclasses the event loop's classes, and runs
once per accepted connection, not per request.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl
from collections.abc import Callable
from typing import Any

Refused = Callable[[str, str], None]  # (the caller's address, why)


class _AsyncioTls(asyncio.sslproto.SSLProtocol):
    address = "an unknown address"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.address = _address(transport)
        super().connection_made(transport)


def _uvloop_protocol() -> type | None:
    try:
        from uvloop.loop import SSLProtocol  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        return None

    class _UvloopTls(SSLProtocol):  # type: ignore[misc]
        address = "an unknown address"

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.address = _address(transport)
            super().connection_made(transport)

    return _UvloopTls


_UVLOOP_TLS = _uvloop_protocol()


def _address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "an unknown address"


class TlsListener:
    """The protocol factory of a TLS listener that reports failed handshakes."""

    def __init__(self, protocol: Callable[[], asyncio.Protocol], context: ssl.SSLContext,
                 handshake_timeout_s: float, refused: Refused) -> None:
        self.protocol = protocol
        self.context = context
        self.handshake_timeout_s = handshake_timeout_s
        self.refused = refused

    def __call__(self) -> Any:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        kind: Any = _AsyncioTls
        if _UVLOOP_TLS is not None and type(loop).__module__.startswith("uvloop"):
            kind = _UVLOOP_TLS
        tls = kind(loop, self.protocol(), self.context, waiter, server_side=True,
                   ssl_handshake_timeout=self.handshake_timeout_s)
        waiter.add_done_callback(lambda done: self._finished(tls, done))
        return tls

    def _finished(self, tls: Any, waiter: asyncio.Future[Any]) -> None:
        if waiter.cancelled():
            return
        failure = waiter.exception()
        if failure is not None:
            self.refused(tls.address, handshake_failure(failure))


def handshake_failure(exc: BaseException) -> str:
    """Why a handshake failed, in a few words for the log."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"[:200]
    return f"TLS handshake failed: {type(exc).__name__} {exc}"[:200]
