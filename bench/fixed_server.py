"""A server that answers every request with the same DynamoDB-shaped JSON: the ceiling.

It does no work per request beyond HTTP parsing and one write, so its throughput is the
most the load generator plus a single-process Python HTTP server can do on this machine.
Two implementations, because DESIGN.md asks for the HTTP stack to be chosen by
measurement:

- `httptools`: a raw asyncio Protocol, httptools parser, uvloop event loop (the main venv).
- `aiohttp`:   aiohttp.web with uvloop (run with bench/.peers/aiohttp-venv's python).

Usage: python bench/fixed_server.py --impl httptools|aiohttp --port PORT
This file imports only what its implementation needs, so it runs under either venv.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import time

# A GetItem-like answer of about 200 bytes, so response sizes resemble the real workloads.
BODY = (
    b'{"Item":{"pk":{"S":"item-000042"},"sk":{"S":"0"},"n":{"N":"42"},'
    b'"t":{"S":"fixed"},"payload":{"S":"'
    + b"x" * 96
    + b'"}}}'
)
CONTENT_TYPE = b"application/x-amz-json-1.0"


class _DateHeader:
    """The Date header, formatted once per second like a real server would."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = email.utils.formatdate(now, usegmt=True).encode()
        return self._value


def serve_httptools(host: str, port: int) -> None:
    import httptools
    import uvloop

    date = _DateHeader()

    class FixedProtocol(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's TCPTransport is not an asyncio.Transport subclass; it has the same API.
            self.transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                assert self.transport is not None
                self.transport.close()

        def on_message_complete(self) -> None:
            assert self.transport is not None
            keep_alive = self.parser.should_keep_alive()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: " + CONTENT_TYPE
                + b"\r\nContent-Length: " + str(len(BODY)).encode()
                + b"\r\nx-amzn-RequestId: fixed\r\nDate: " + date.get()
                + (b"\r\n\r\n" if keep_alive else b"\r\nConnection: close\r\n\r\n")
                + BODY
            )
            if not keep_alive:
                self.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FixedProtocol, host, port, backlog=1024)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def serve_aiohttp(host: str, port: int) -> None:
    import uvloop
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BODY, headers={"Content-Type": CONTENT_TYPE.decode(),
                                                "x-amzn-RequestId": "fixed"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host=host, port=port, access_log=None, print=None, backlog=1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impl", choices=["httptools", "aiohttp"], required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve = serve_httptools if args.impl == "httptools" else serve_aiohttp
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
