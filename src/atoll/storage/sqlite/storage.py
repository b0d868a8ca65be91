"""SqliteStorage: reads on the event-loop thread, writes batched into group commits.

Theory of operation
- One WAL database file and three connections (connection.py): the reader, used only by
  the event-loop thread (reads.py), the writer, used by one batch at a time, and the
  checkpointer's (checkpoints.py).
- Write jobs queue on the event-loop thread and run in batches, one transaction each
  (batches.py: group commit, and the replay of a batch without a job that failed after
  writing).
- Where a batch runs: a job submitted with `inline=True` is short (one request's items).
  A batch of only such jobs runs on the event-loop thread, and its COMMIT on the writer
  thread. Any other batch (replication, backfill, purges, DDL) runs whole on the writer
  thread, so the loop keeps serving meanwhile. One batch is in flight at a time (from
  its start to the end of its COMMIT), whichever thread runs it, so jobs see each
  other's writes in submission order.
  Why inline: a job's statements each release and retake the GIL, and on the writer
  thread each retake waited for the busy event loop. Measured under wrk (PutItem,
  32 connections): SQL of a put took 82 us there against 21 us alone. Why the COMMIT
  goes to the writer thread: committing on the event-loop thread instead measured
  PutItem x0.90.
- A committed batch goes to the syncer thread (durability.py), whose fdatasync of the
  WAL makes it durable; only then are its jobs answered, in commit order, and the item
  cache (cache.py) learns what it changed before any caller hears of it. Answers built
  from reads wait for `settle()`. In-memory (tmpfs, `durable=False`) there is no fsync:
  a batch is answered as soon as it committed.
- Between two batches, the writer thread may pause to checkpoint the WAL so that the
  next batch starts it over (a rewind, asked for by the checkpointer thread).
- Each batch carries a `writepath.BatchTimes`, stamped at each hand-over above (queued,
  started, run, handed to the writer, COMMIT, fdatasync, answered); `write_path` keeps
  the recent ones for /_atoll/status and the bench.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from atoll.errors import ServiceUnavailable
from atoll.invariant import invariant
from atoll.storage.protocol import ItemKey, Storage, WriteTxn
from atoll.storage.sqlite.batches import MAX_BATCH_JOBS, BatchRunner, Changes, Job, Ran
from atoll.storage.sqlite.checkpoints import Checkpointer
from atoll.storage.sqlite.connection import connect, init_schema, next_local_seq
from atoll.storage.sqlite.durability import Durability, WriteState
from atoll.storage.sqlite.filecopy import copy_database
from atoll.storage.sqlite.reads import SqliteReads
from atoll.storage.sqlite.trees import FOLD_AT, FOLD_LIMIT, SqliteTreeAccess
from atoll.storage.sqlite.txn import SqliteTxn
from atoll.storage.treeprotocol import TreeAccess
from atoll.storage.writepath import BatchTimes, WritePath, now_ns

log = logging.getLogger(__name__)

MAX_QUEUED_JOBS = 20_000


def _fold(txn: SqliteTxn) -> int:
    return txn.tree_fold(FOLD_LIMIT)

_STOP = object()
_REWIND = object()


class SqliteStorage(SqliteReads):
    """One node's database file. Construct, then `start(loop)` before writing."""

    def __init__(self, path: str, *, durable: bool = True, region: str = "local",
                 trees: bool = True) -> None:
        self._writer = connect(path, durable)
        init_schema(self._writer, path)
        state = WriteState()
        super().__init__(path, durable, region, state)
        self.durability = Durability(path, durable, state)
        self.trees = trees  # hash trees kept (storage/treeprotocol.py)
        self._runner = BatchRunner(
            self._writer, SqliteTxn(self._writer, region, next_local_seq(self._writer, region),
                                    self.integrity, trees),
            state)
        self._checkpointer = Checkpointer(path, durable)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_thread: threading.Thread | None = None
        self._shut = False  # close() ran
        self.commit_listeners: list[Callable[[], None]] = []  # loop thread, after each batch
        self.visible_listeners: list[Callable[[], None]] = []  # loop thread, after each COMMIT
        self._current_batch: list[Job] = []  # the batch running on the writer thread
        self._pending: list[Job] = []  # event-loop thread: jobs waiting for a batch
        self._in_flight = False  # a batch runs on the writer thread
        self._start_scheduled = False
        self._rewind_wanted = False  # the checkpointer asked for a rewind of the WAL
        self.write_path = WritePath()  # stage times of recent batches (loop thread)
        self._folding = False  # a job folding tree deltas is queued

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        invariant(self._writer_thread is None, "storage started twice")
        self._loop = loop
        self._writer_thread = threading.Thread(target=self._run_writer, name="atoll-writer",
                                               daemon=True)
        self._writer_thread.start()
        self.durability.start(loop, self._synced, self._sync_failed)
        self._checkpointer.start(self._ask_rewind)

    def close(self) -> None:
        """Finish every queued write, then close both connections (checkpointing the WAL)."""
        if self._shut:
            return
        self._shut = self._state.refused = True  # new writes are refused from here on
        if self._writer_thread is not None:
            self._queue.put(_STOP)  # behind the batch in flight, if any
            self._writer_thread.join()
            leftovers, self._pending = self._pending, []
            if leftovers:  # queued but not started: run them here; the syncer answers them
                self._commit(leftovers, self._runner.run(leftovers), on_loop=True,
                             times=BatchTimes(len(leftovers), leftovers[0].queued))
            self.durability.stop()
        self._checkpointer.stop()
        self._reader.close()
        try:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # a busy reader elsewhere: the WAL stays, nothing is lost
            log.warning("checkpoint at close failed: %s", exc)
        self._writer.close()
        self.durability.close()

    def _ask(self, callback: Callable[[], None]) -> None:
        """From another thread: run `callback` on the event-loop thread, unless the loop
        has closed (the storage is being shut down then; nothing is left to do)."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed
            pass

    def _ask_rewind(self) -> None:
        """Checkpointer thread: the WAL is ready to start over."""
        self._ask(self._want_rewind)

    def _want_rewind(self) -> None:
        """Event-loop thread: the next turn of the writer thread checkpoints the rest of
        the WAL, so that the batch after it starts the WAL over (see checkpoints.py)."""
        self._rewind_wanted = True
        self._schedule_start()

    def copy_to(self, path: str) -> int:
        """A consistent copy of the whole database at `path` while writes go on (blocking:
        run it off the event loop); its size in bytes (filecopy.py)."""
        return copy_database(self.path, path)

    # --- figures -------------------------------------------------------------------------
    @property
    def batches_committed(self) -> int:
        return self._runner.batches_committed

    @property
    def jobs_committed(self) -> int:
        return self._runner.jobs_committed

    def wal_summary(self) -> dict[str, Any]:
        return self._checkpointer.summary()

    def status(self) -> dict[str, Any]:
        return {
            "writes_committed": self.jobs_committed,
            "write_batches_committed": self.batches_committed,
            "write_path": {**self.write_path.summary(), "wal": self.wal_summary()},
        }

    # --- writes --------------------------------------------------------------------------
    def write(self, fn: Callable[[SqliteTxn], Any], *, inline: bool = False,
              keys: Sequence[ItemKey] = ()) -> asyncio.Future[Any]:
        """Queue a write job; the future resolves once its batch is durable. `keys`
        makes no difference here: a lookup is a local read.

        `inline`: the job is short (one request's items, well under a millisecond), so a
        batch of only such jobs may run on the event-loop thread (see the module doc).
        Anything that may run longer (replication, backfill, purges, DDL) leaves it False.
        """
        invariant(self._loop is not None, "storage not started")
        state = self._state
        if state.refused:
            raise ServiceUnavailable("The server is shutting down")
        if state.queued >= MAX_QUEUED_JOBS:
            raise ServiceUnavailable("Too many writes queued; retry")
        future: asyncio.Future[Any] = self._loop.create_future()  # type: ignore[union-attr]
        state.queued += 1
        self._pending.append(Job(fn, future, inline))
        self._schedule_start()  # later jobs of this loop iteration join the batch
        return future

    def _schedule_start(self) -> None:
        """Event-loop thread: run `_start_batch` once soon, unless a batch is in flight
        (its end starts the next)."""
        if not self._in_flight and not self._start_scheduled:
            self._start_scheduled = True
            self._loop.call_soon(self._start_batch)  # type: ignore[union-attr]

    def write_sync(self, fn: Callable[[SqliteTxn], Any]) -> Any:
        """Run one write job on the calling thread (only before `start`, e.g. recovery)."""
        invariant(self._writer_thread is None, "write_sync after start")
        job = Job(fn, None, False)  # type: ignore[arg-type]
        running = self._runner.run([job])
        if running is not None and self._runner.commit(running) is not None:
            self.durability.sync_now()
        self._state.durable = self._state.taken  # nothing is answered before start
        if self._runner.txn.tree_pending >= FOLD_AT:
            self.write_sync(_fold)
        if job.error is not None:
            raise job.error
        return job.result

    def _start_batch(self) -> None:
        """Event-loop thread: start the next batch unless one is in flight. A batch of
        inline jobs runs here and goes to the writer thread for its COMMIT; any other
        batch runs there whole (one batch at a time, so jobs see each other's writes in
        submission order). In-memory, an inline batch also commits here (no fsync)."""
        self._start_scheduled = False
        if self._in_flight or self._state.refused:
            return
        if self._rewind_wanted:
            self._rewind_wanted = False
            self._in_flight = True
            self._queue.put(_REWIND)
            return
        if not self._pending:
            return
        batch = self._pending[:MAX_BATCH_JOBS]
        del self._pending[:MAX_BATCH_JOBS]
        self._current_batch = batch
        times = BatchTimes(len(batch), batch[0].queued)
        if not all(job.inline for job in batch):
            self._in_flight = True
            times.handed = times.started
            self._queue.put((batch, None, times))
            return
        try:
            running = self._runner.run(batch)
            times.ran = times.handed = now_ns()
            if running is not None and self.durable:
                self._in_flight = True
                self._queue.put((batch, running, times))
                return
            self._commit(batch, running, on_loop=True, times=times)
            self._visible()
        except Exception:  # a bug, as on the writer thread
            log.critical("a write batch failed; refusing writes", exc_info=True)
            self._writer_died()
            return
        self._current_batch = []
        if self._pending:  # more than one batch's worth
            self._schedule_start()

    def _commit(self, batch: list[Job], running: list[Job] | None, *, on_loop: bool,
                times: BatchTimes) -> None:
        """COMMIT the jobs `BatchRunner.run` left running, if any (synchronous=NORMAL: no
        fsync here), then hand the batch over for durability: to the syncer, whose
        fdatasync of the WAL makes it durable before any job is answered. Batches reach
        the syncer in commit order."""
        changes = None
        if running is not None:
            times.commit_from = now_ns()
            changes = self._runner.commit(running)
            times.committed = now_ns()
        ran: Ran = (batch, changes, self._state.taken, times)
        if self.durable:
            self.durability.hand_over(ran)
        elif on_loop:  # nothing to fsync (tmpfs): answered next
            self._loop.call_soon(self._synced, [ran])  # type: ignore[union-attr]
        else:
            self._loop.call_soon_threadsafe(self._synced, [ran])  # type: ignore[union-attr]

    def _run_writer(self) -> None:
        try:
            while True:
                message = self._queue.get()
                if message is _STOP:
                    return
                if message is _REWIND:
                    self._checkpointer.rewind(self._writer)
                else:
                    batch, running, times = message
                    times.taken = now_ns()
                    if running is None:  # not run yet: a batch with long jobs
                        times.run_from = times.taken
                        running = self._runner.run(batch)
                        times.ran = now_ns()
                    self._commit(batch, running, on_loop=False, times=times)
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._writer_done)
        except BaseException:
            # A bug, not a fault: no write can be made durable any more.
            log.critical("the storage writer thread died; refusing writes", exc_info=True)
            self._state.refused = True
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._writer_died)

    def _writer_done(self) -> None:
        """Event-loop thread: the writer thread committed its batch (or rewound the
        WAL); tell the visible listeners and start the next (its COMMIT may overlap
        this one's fdatasync)."""
        self._in_flight = False
        self._current_batch = []
        self._visible()
        self._start_batch()

    def _visible(self) -> None:
        """Event-loop thread: a batch committed (readable, maybe not yet durable)."""
        for listener in self.visible_listeners:
            listener()

    def _writer_died(self) -> None:
        """Event-loop thread: refuse new writes and fail the running batch and every
        queued job (none of them was acknowledged) instead of leaving them hanging."""
        self._state.refused = True
        failed = self._current_batch + self._pending
        self._current_batch, self._pending = [], []
        for job in failed:
            job.error = ServiceUnavailable("The storage writer failed; see the log")
        self._deliver(failed, None)

    # --- answers (event-loop thread) -----------------------------------------------------
    def _synced(self, ran: list[Ran]) -> None:
        """These batches are durable: answer them, in commit order."""
        answered = now_ns()
        for batch, changes, _commit, times in ran:
            self._deliver(batch, changes)
            self.write_path.answered(times, answered)
        self.durability.durable_through(ran[-1][2])

    def _sync_failed(self, ran: list[Ran]) -> None:
        """Durability is lost. Fail these batches, everything queued, and every answer
        waiting to settle (none of it was acknowledged)."""
        failure = self.durability.lost()
        self._state.refused = True
        pending, self._pending = self._pending, []
        for batch in [ran_batch for ran_batch, *_ in ran] + [pending]:
            for job in batch:
                job.result, job.error = None, failure
            self._deliver(batch, None)
        self.durability.fail_waiters()

    def _deliver(self, batch: list[Job], changes: Changes | None) -> None:
        # The read cache learns what committed before any caller hears of it, so a read
        # that follows an acknowledged write always sees it.
        if changes is not None:
            self._cache.committed(*changes)
            self._fold_trees()
        self._state.queued -= len(batch)
        for listener in self.commit_listeners:
            listener()
        for job in batch:
            if job.future.done():  # the caller went away (connection closed)
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)

    def tree_access(self) -> TreeAccess:
        """Verify's access, on a connection of its own (trees.py); on the loop thread,
        or anywhere before `start` (its writes then run through `write_sync`)."""
        sync = self.write_sync if self._writer_thread is None else None
        return SqliteTreeAccess(self.path, self.durable, self._state, self.region, self.write,
                                self.settled, sync)

    def _fold_trees(self) -> None:
        """Event-loop thread, after a batch committed: once enough tree deltas are
        logged, fold some into the trees, as a job of its own behind the queued writes
        (sqlite/trees.py says why the write path only logs them)."""
        if (self._folding or self._state.refused
                or self._runner.txn.tree_pending < FOLD_AT):
            return
        self._folding = True
        self.write(_fold).add_done_callback(self._folded)

    def _folded(self, _future: asyncio.Future[Any]) -> None:
        self._folding = False
        if not _future.cancelled():
            _future.exception()  # a failed fold is retried after the next batch

    def settle(self) -> asyncio.Future[None] | None:
        """None if every commit that a read may have seen is durable; else a future that
        resolves once it is (or fails with ServiceUnavailable if it never will be).
        Answers (and requests to peers) that carry what was read wait for it: nothing a
        crash could still undo leaves the node."""
        state = self._state
        if state.durable >= state.read:
            return None
        return self.durability.settle()

    async def settled(self) -> None:
        """Wait until `settle()` has nothing to wait for."""
        waiter = self.settle()
        if waiter is not None:
            await waiter


if TYPE_CHECKING:
    def _implements(storage: SqliteStorage, txn: SqliteTxn) -> tuple[Storage, WriteTxn]:
        return storage, txn  # mypy checks that both implement the protocols
