"""Durability: the syncer thread's fdatasync, and answers that wait until reads are durable.

Theory of operation
- Durability is pipelined. COMMIT runs with synchronous=NORMAL: it writes the WAL and
  returns without an fsync, and the batch goes to the syncer thread. The syncer's
  fdatasync of the WAL makes durable every batch that committed before it started
  (however many queued up during the last one); only then are the batches' futures
  resolved, in commit order. So a write is acknowledged only once it is durable, while
  the next batches run and commit during the fsync. Why: with synchronous=FULL, COMMIT
  held the write lock through its fsync, so the fsync was a link in the chain of one
  batch after another. Measured (wrk, 32 connections, medians of 4-5 interleaved rounds
  against FULL): PutItem x1.09-1.19, mixed x1.05-1.12 with p99 11-13 -> 8.3-8.5 ms,
  UpdateItem x0.97-1.05.
- Nothing that a crash could undo leaves the node: a committed batch is readable before
  it is durable, so every read on the reader connection notes the commits it may see
  (`WriteState.read`), and answers — API responses, replication pulls served, pulls
  sent — wait for `settle()` until those commits are durable. With no write waiting for
  its fsync that costs one comparison.
- A failed fdatasync cannot be retried (the kernel may have dropped the pages): it fails
  every write not yet answered and every answer waiting to settle, and the node refuses
  writes until restarted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from atoll.errors import ServiceUnavailable
from atoll.storage.writepath import now_ns

log = logging.getLogger(__name__)

_STOP = object()


class WriteState:
    """Where the write path stands, shared by the writes, the reads and the syncer.
    Commits are numbered; the number is taken before COMMIT, so a read that sees a commit
    finds its number (or a higher one) in `taken` afterwards."""

    def __init__(self) -> None:
        self.refused = False  # writes refused (shutting down, the writer or an fsync failed)
        self.queued = 0  # jobs accepted and not yet answered (event-loop thread)
        self.taken = 0  # commits numbered so far (by the thread running the COMMIT)
        self.durable = 0  # every commit up to this number is durable and answered
        self.read = 0  # the highest commit number a read may have seen


class Durability:
    """The syncer thread, and the answers waiting for durability (event-loop thread)."""

    def __init__(self, path: str, durable: bool, state: WriteState) -> None:
        self.durable = durable
        self.state = state
        # the WAL, fdatasynced by the syncer thread (the schema statements created it)
        self.wal_fd = os.open(path + "-wal", os.O_RDONLY) if durable else -1
        self.fdatasync: Callable[[int], None] = os.fdatasync  # tests wrap it to delay or fail
        self.error: OSError | None = None  # an fdatasync failed: nothing is durable
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = \
            collections.deque()

    def start(self, loop: asyncio.AbstractEventLoop, synced: Callable[[list[Any]], None],
              failed: Callable[[list[Any]], None]) -> None:
        """Start the syncer: it calls `synced(batches)` on the loop once a batch handed
        over is durable, or `failed(batches)` once it never will be."""
        self._loop = loop
        self._worker = threading.Thread(target=self._run, args=(synced, failed),
                                         name="atoll-syncer", daemon=True)
        self._worker.start()

    def hand_over(self, ran: Any) -> None:
        """A committed batch (writer or event-loop thread), in commit order."""
        self._queue.put(ran)

    def stop(self) -> None:
        """Make durable and answer every batch handed over, then end the thread."""
        if self._worker is not None:
            self._queue.put(_STOP)  # behind every batch waiting for its fdatasync
            self._worker.join()

    def close(self) -> None:
        if self.wal_fd >= 0:
            os.close(self.wal_fd)
            self.wal_fd = -1

    def sync_now(self) -> None:
        """An fdatasync of the WAL on the calling thread (before start)."""
        if self.durable:
            self.fdatasync(self.wal_fd)

    def _run(self, synced: Callable[[list[Any]], None],
             failed: Callable[[list[Any]], None]) -> None:
        """Make committed batches durable: one fdatasync of the WAL covers every batch
        that committed before it started, however many queued up during the last one."""
        assert self._loop is not None
        while True:
            ran = [self._queue.get()]
            while True:
                try:
                    ran.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = ran[-1] is _STOP
            if stop:
                ran.pop()
            if ran:
                if self.error is None:
                    self._sync(ran)
                if self.error is None:
                    self._loop.call_soon_threadsafe(synced, ran)
                else:
                    self._loop.call_soon_threadsafe(failed, ran)
            if stop:
                return

    def _sync(self, ran: list[Any]) -> None:
        try:
            self.fdatasync(self.wal_fd)
            synced = now_ns()
            for _batch, _changes, _commit, times in ran:
                times.synced = synced
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: no later
            # fsync can vouch for them. Nothing is durable any more.
            log.critical("fdatasync of the WAL failed; refusing writes: %s", exc)
            self.error = exc
            self.state.refused = True

    # --- answers wait for durability (event-loop thread) ---------------------------------
    def settle(self) -> asyncio.Future[None] | None:
        """See SqliteStorage.settle (which answers the common case itself)."""
        state = self.state
        if state.durable >= state.read:
            return None
        # One future per caller, never shared: a caller that stops waiting (its task
        # cancelled: a verify session ending, a client gone) cancels the future it
        # awaits, and a shared one would end every other answer waiting for the same
        # commits with CancelledError, a replication pull loop among them.
        waiter: asyncio.Future[None] = self._loop.create_future()  # type: ignore[union-attr]
        if self.error is not None:  # it never will be
            waiter.set_exception(self.lost())
        else:
            self._waiters.append((state.read, waiter))
        return waiter

    def durable_through(self, commit: int) -> None:
        """Every commit up to `commit` is durable and answered: release the answers that
        waited for them."""
        state = self.state
        state.durable = max(state.durable, commit)
        waiters = self._waiters
        while waiters and waiters[0][0] <= state.durable:
            waiter = waiters.popleft()[1]
            if not waiter.done():
                waiter.set_result(None)

    def fail_waiters(self) -> None:
        """Durability is lost: every answer waiting to settle fails."""
        failure = self.lost()
        while self._waiters:
            waiter = self._waiters.popleft()[1]
            if not waiter.done():
                waiter.set_exception(failure)

    def lost(self) -> ServiceUnavailable:
        """What writes and answers get once an fdatasync failed."""
        return ServiceUnavailable(f"The data could not be made durable: {self.error}")
