"""A small keep-alive HTTP/1.1 client for peer-to-peer requests (asyncio + httptools).

Peers talk POST-with-JSON only, so this stays tiny: one connection per peer, reused while
it stays healthy, dropped on any error or timeout (the caller retries with backoff).
Response bodies are bounded.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httptools

MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class PeerHttpError(Exception):
    """The peer could not be reached or answered badly (a dead peer, not a bug)."""


class _Response:
    def __init__(self) -> None:
        self.status = 0
        self.body: list[bytes] = []
        self.size = 0
        self.done = False

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_RESPONSE_BYTES:
            raise PeerHttpError("response too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class HttpClient:
    def __init__(self, endpoint: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(endpoint)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"bad endpoint {endpoint!r}")
        self.host = parts.hostname
        self.port = parts.port
        self.headers = headers or {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def post(self, path: str, body: bytes, timeout_s: float) -> tuple[int, bytes]:
        async with self._lock:
            try:
                return await asyncio.wait_for(self._post(path, body), timeout_s)
            except (TimeoutError, OSError, httptools.HttpParserError, PeerHttpError, asyncio.IncompleteReadError) as exc:
                self.close()
                raise PeerHttpError(f"{self.host}:{self.port}{path}: {exc!r}") from None

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None and self._writer is not None
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self._writer.drain()
        response = _Response()
        parser = httptools.HttpResponseParser(response)
        while not response.done:
            data = await self._reader.read(256 * 1024)
            if not data:
                raise PeerHttpError("connection closed by peer")
            parser.feed_data(data)
        status = parser.get_status_code()
        if not parser.should_keep_alive():
            self.close()
        return status, b"".join(response.body)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
