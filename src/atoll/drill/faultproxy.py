"""A fault-injecting TCP proxy in front of each region's peer endpoint.

Regions replicate over keep-alive connections, mutual TLS between them. The proxy learns
which region is calling from the connection's source address: each region's node makes
its peer connections from an address of its own on loopback (`atoll serve
--peer-source 127.0.0.N`, given to `add` as `source`), since over TLS nothing of the
request can be read in between. Over plain HTTP, a connection from an address it does
not know is named by the `X-Atoll-Region` header of its first request head; over TLS
from an address it does not know, the caller is unknown and gets the worst fault of any
link into the callee. Then it
pipes bytes both ways, applying the rules of that directed link (caller -> callee):

- cut: new connections are closed at once and open ones are closed when the cut starts
  (one-way cuts are cuts of one direction; a partition cuts both);
- latency: each chunk is held `latency_ms` (± jitter) before it is passed on;
- loss: each chunk, with probability `loss`, drops the connection (the caller sees a
  failed request and retries, as after a lost packet's timeout, only sooner).

No root and no kernel support needed (this machine's kernel has no netem). The proxies
run on one asyncio loop in a background thread; rules are changed from any thread.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from dataclasses import dataclass

_CALLER = re.compile(rb"\r\nx-atoll-region:\s*([^\r\n]+)", re.IGNORECASE)
_TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello
UNKNOWN = "?"
MAX_HEAD_BYTES = 64 * 1024
CHUNK = 64 * 1024


@dataclass
class LinkFault:
    cut: bool = False
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0


class FaultRules:
    """Faults per directed link (caller, callee); '*' matches any region."""

    def __init__(self, seed: int = 0) -> None:
        self._links: dict[tuple[str, str], LinkFault] = {}
        self.random = random.Random(seed)
        self._lock = threading.Lock()
        self.on_cut: list[object] = []

    def set(self, caller: str, callee: str, fault: LinkFault) -> None:
        with self._lock:
            self._links[(caller, callee)] = fault

    def clear(self) -> None:
        with self._lock:
            self._links.clear()

    def of(self, caller: str, callee: str) -> LinkFault:
        """The fault of the link caller -> callee. A caller the proxy could not tell
        (UNKNOWN: TLS, and no source address known for it) gets the worst fault of any
        link into `callee`: a partition then cuts more links than it names, never fewer."""
        with self._lock:
            if caller == UNKNOWN:
                faults = [f for (_c, to), f in self._links.items() if to in (callee, "*")]
                if faults:
                    return LinkFault(cut=any(f.cut for f in faults),
                                     latency_ms=max(f.latency_ms for f in faults),
                                     jitter_ms=max(f.jitter_ms for f in faults),
                                     loss=max(f.loss for f in faults))
                return LinkFault()
            for key in ((caller, callee), (caller, "*"), ("*", callee), ("*", "*")):
                if key in self._links:
                    return self._links[key]
        return LinkFault()

    def partition(self, region: str, others: list[str]) -> None:
        for other in others:
            self.set(region, other, LinkFault(cut=True))
            self.set(other, region, LinkFault(cut=True))


class FaultProxy:
    """Listens on `listen`, forwards to `target` (the callee region's real peer port)."""

    def __init__(self, callee: str, listen: tuple[str, int], target: tuple[str, int],
                 rules: FaultRules, sources: dict[str, str] | None = None) -> None:
        self.callee = callee
        self.sources = sources if sources is not None else {}  # source address -> region
        self.listen = listen
        self.target = target
        self.rules = rules
        self.connections: set[tuple[str, asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.server: asyncio.AbstractServer | None = None
        self.dropped = 0
        self.forwarded_bytes = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, *self.listen, reuse_address=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b""
        peername = writer.get_extra_info("peername")
        caller = self.sources.get(peername[0]) if peername else None
        try:
            while caller is None and b"\r\n\r\n" not in head and len(head) < MAX_HEAD_BYTES:
                data = await reader.read(CHUNK)
                if not data:
                    writer.close()
                    return
                head += data
                if head[0] == _TLS_HANDSHAKE:  # TLS: the client waits for our hello
                    caller = UNKNOWN
            if caller is None:
                match = _CALLER.search(head)
                caller = match.group(1).strip().decode("latin-1") if match else UNKNOWN
            if self.rules.of(caller, self.callee).cut:
                self.dropped += 1
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        entry = (caller, writer, up_writer)
        self.connections.add(entry)
        try:
            up_writer.write(head)
            await asyncio.gather(self._pump(reader, up_writer, caller, self.callee),
                                 self._pump(up_reader, writer, self.callee, caller))
        finally:
            self.connections.discard(entry)
            writer.close()
            up_writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    source: str, sink: str) -> None:
        # latency and loss of a request/response belong to the caller -> callee link
        caller, callee = (source, sink) if sink == self.callee else (sink, source)
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                fault = self.rules.of(caller, callee)
                if fault.cut or (fault.loss and self.rules.random.random() < fault.loss):
                    self.dropped += 1
                    break
                if fault.latency_ms:
                    delay = fault.latency_ms + self.rules.random.uniform(-fault.jitter_ms,
                                                                         fault.jitter_ms)
                    await asyncio.sleep(max(0.0, delay) / 1000)
                writer.write(data)
                self.forwarded_bytes += len(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def cut_open_connections(self) -> None:
        """Close open connections of links that are now cut (loop thread)."""
        for caller, writer, up_writer in list(self.connections):
            if self.rules.of(caller, self.callee).cut:
                writer.close()
                up_writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for _caller, writer, up_writer in list(self.connections):
            writer.close()
            up_writer.close()


class FaultNetwork:
    """All proxies of a cluster on one background event loop."""

    def __init__(self, rules: FaultRules) -> None:
        self.rules = rules
        self.proxies: list[FaultProxy] = []
        self.sources: dict[str, str] = {}  # a region's peer source address -> the region
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="atoll-faults",
                                        daemon=True)
        self._thread.start()

    def add(self, callee: str, listen: tuple[str, int], target: tuple[str, int],
            source: str | None = None) -> FaultProxy:
        """A proxy for `callee` at `listen`, forwarding to `target`; `source`: the
        address `callee` itself makes its peer connections from."""
        if source is not None:
            self.sources[source] = callee
        proxy = FaultProxy(callee, listen, target, self.rules, self.sources)
        asyncio.run_coroutine_threadsafe(proxy.start(), self.loop).result(10)
        self.proxies.append(proxy)
        return proxy

    def apply(self) -> None:
        """Make new rules bite on connections already open."""
        def cut_all() -> None:
            for proxy in self.proxies:
                proxy.cut_open_connections()
        self.loop.call_soon_threadsafe(cut_all)

    def dropped(self) -> int:
        return sum(p.dropped for p in self.proxies)

    def close(self) -> None:
        async def stop_all() -> None:
            for proxy in self.proxies:
                await proxy.stop()
        asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
