"""Moving a verify session's bytes: this region's answers off the event loop, peers' over
the peer link, and a session driven to its end.

Theory of operation
- `LocalAnswers` answers a request from this node's `StorageTreeStore` with the core's
  `serve`. On a storage whose verify access may leave the loop thread (SQLite), it runs
  on one worker thread of its own: a scrub of 4,096 buckets re-hashes tens of thousands
  of rows, which must not stall requests; its writes (a scrub's correction, a repair)
  come back to the loop as ordinary write jobs (TreeAccess.write_now). The answer leaves
  once every commit it read is durable (`TreeAccess.settled`), like every answer a node
  sends. A table whose tree is still being built, or any failure of the storage, is
  answered with the protocol's Error message, never an exception.
- `PeerAnswers` posts a request to a peer's `POST /_atoll/verify` and returns its body;
  transport failures raise `PeerHttpError`.
- `run_session` drives a `Session`: every request the session emits goes out at once
  (at most one per region is in flight: the session's rule), each answer is fed back as
  it arrives, a failure or timeout is reported to the session (which ends INCOMPLETE).
  Each request is bounded by `timeout_s`; the session bounds the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from atoll.antientropy import RepairLogEntry, Session, TableReport, serve
from atoll.antientropy.messages import Error, Request
from atoll.antientropy.wire import decode_request, encode_response
from atoll.engine.treestore import StorageTreeStore, TreeNotReady
from atoll.http.client import HttpClient, PeerHttpError
from atoll.replication.errors import BadMessage

log = logging.getLogger(__name__)

VERIFY_PATH = "/_atoll/verify"
REQUEST_TIMEOUT_S = 120.0
Transport = Callable[[bytes], Awaitable[bytes]]
T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


def answer_now(data: bytes, store: StorageTreeStore, repairs: list[RepairLogEntry]) -> bytes:
    """`serve`, with what it cannot answer turned into an Error message."""
    try:
        return serve(data, store, now_ms(), repairs)
    except TreeNotReady as exc:
        return _error(data, str(exc))
    except Exception as exc:  # a storage fault: the asker's session ends INCOMPLETE
        log.exception("verify could not answer a request")
        return _error(data, f"{store.region} could not answer: {exc}")


def _error(data: bytes, why: str) -> bytes:
    try:
        sid = decode_request(data).sid
    except BadMessage:
        sid = 0
    return encode_response(Error(sid, why))


class LocalAnswers:
    """This region's side of verify (see the module doc)."""

    def __init__(self, store: StorageTreeStore) -> None:
        self.store = store
        self._executor = (ThreadPoolExecutor(1, thread_name_prefix="atoll-verify")
                          if store.access.threaded else None)
        self.repairs: list[RepairLogEntry] = []  # applied here since the last `take_repairs`

    async def __call__(self, data: bytes) -> bytes:
        repairs: list[RepairLogEntry] = []
        answer = await self.call(lambda: answer_now(data, self.store, repairs))
        await self.store.access.settled()
        self.repairs.extend(repairs)
        return answer

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` (which uses the store) where the store may be used."""
        if self._executor is None:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def take_repairs(self) -> list[RepairLogEntry]:
        taken, self.repairs = self.repairs, []
        return taken

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.store.access.close()


class PeerAnswers:
    """A peer's side of verify, over its peer endpoint."""

    def __init__(self, client: HttpClient, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.client = client
        self.timeout_s = timeout_s

    async def __call__(self, data: bytes) -> bytes:
        try:
            status, body = await self.client.post(VERIFY_PATH, data, self.timeout_s)
        except asyncio.CancelledError:
            # cancelled mid-exchange (the session ended): the connection may hold the
            # answer still on its way, which must not be read as the next request's
            self.client.close()
            raise
        if status != 200:
            raise PeerHttpError(f"{VERIFY_PATH} answered {status}: {body[:200]!r}")
        return body


Watcher = Callable[[str, Request, float], None]  # (region, request answered, seconds taken)


async def run_session(session: Session, transports: Mapping[str, Transport],
                      timeout_s: float = REQUEST_TIMEOUT_S,
                      watch: Watcher | None = None) -> TableReport:
    """Drive `session` to its end over `transports` (one per region it compares)."""
    pending: dict[asyncio.Task[bytes], tuple[str, bytes, float]] = {}

    def send(outbound: list[tuple[str, bytes]]) -> None:
        for region, data in outbound:
            task = asyncio.ensure_future(asyncio.wait_for(transports[region](data), timeout_s))
            pending[task] = (region, data, time.monotonic())

    send(session.start())
    try:
        while pending and not session.done:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                region, data, started = pending.pop(task)
                try:
                    answer = task.result()
                except (PeerHttpError, TimeoutError, OSError) as exc:
                    send(session.fail(region, f"{type(exc).__name__}: {exc}", now_ms()))
                    continue
                if watch is not None:
                    _watch(watch, region, data, time.monotonic() - started)
                send(session.receive(region, answer, now_ms()))
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    if not session.done:  # nothing in flight and not finished: the session's own bug
        session.fail(session.regions[0], "the session stopped with nothing in flight", now_ms())
    return session.report


def _watch(watch: Watcher, region: str, data: bytes, seconds: float) -> None:
    try:
        watch(region, decode_request(data), seconds)
    except BadMessage:
        pass


def report_summary(report: TableReport) -> dict[str, Any]:
    """The figures of a report that status and the log keep (JSON-ready)."""
    return {"status": report.status.value.lower(), "error": report.error,
            "pairs": {f"{p.a}|{p.b}": {"status": p.status.value.lower(),
                                        "transient": p.transient + p.unconfirmed,
                                        "diverged": p.diverged} for p in report.pairs},
            "repaired": sum(1 for r in report.repairs if r.outcome == "applied")}
