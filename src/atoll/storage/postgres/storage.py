"""PostgresStorage: a region's data in PostgreSQL, shared by any number of Atoll nodes.

Theory of operation
- Reads run on the event-loop thread over one autocommit connection (reads.py). Writes
  are jobs `job(txn) -> result` queued from the event-loop thread and run in batches on
  the writer thread over a second connection: every job queued while the previous
  batch ran (up to MAX_BATCH_JOBS) goes into one transaction that commits once (group
  commit). All batches run on the writer thread, whatever `inline` says: their
  statements wait on the network, which the event loop must not do for writes.
- A batch: BEGIN, lock the region's changelog head (txn.py: the region's write lock,
  loghead.py: why it orders the changelog) and, in the same round trip, read the keys
  its jobs announced (readahead.py), run the jobs in pipeline mode, add the table
  statistics and the new head, send the item rows and changelog records the jobs left
  (writebehind.py), COMMIT. So a batch of puts waits on two round trips, whatever its
  size: the lock's and the COMMIT's. With synchronous_commit on, COMMIT returns
  once the batch is durable: the jobs are answered right after, in order, and
  `settle()` never waits (what a read sees is durable too, reads.py).
- A job that raises after writing poisons the batch: it is rolled back and replayed
  without that job (jobs are deterministic functions of the stored state), as on
  SQLite. A statement the server refused surfaces at the next sync, possibly in a later
  job, so such a batch is replayed once more syncing after each job, which pins the
  failure on its job. The engine's victim errors (serialization failure, deadlock, lock
  timeout) replay the whole batch, at most MAX_ATTEMPTS times with a growing pause.
- A lost server fails the batch with ServiceUnavailable (503, retryable) and drops the
  connection; the next batch connects again. A COMMIT whose answer was lost may or may
  not have committed: its jobs get 503, never an acknowledgement, so nothing
  acknowledged is lost, and nothing is cached across batches (the next one reads the
  head again), so either outcome is consistent.
- The watcher thread (own connection) polls the changelog heads and cursors every
  WATCH_INTERVAL_S and calls the commit listeners when another node moved them (long
  polls of replication peers wake for changes any node of the region wrote), and takes
  and renews the leases this node wants (leases.py).
- There is no item cache: other nodes change the same rows.
- Hash trees (trees.py) are kept in each batch's transaction, as on SQLite; verify
  reads them through `tree_access` (a connection of its own). A storage constructed
  with `trees=False` keeps none and forgets the region's trees at start, so that none
  claims to be complete afterwards (every node of a region must agree on it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from atoll.errors import InternalError, ServiceUnavailable
from atoll.invariant import invariant
from atoll.storage.integrity import IntegrityFaults
from atoll.storage.postgres import leases
from atoll.storage.postgres.connection import (
    JOB,
    RETRY,
    UNAVAILABLE,
    classify,
    connect,
    init_schema,
)
from atoll.storage.postgres.loghead import Head
from atoll.storage.postgres.reads import PostgresReads, _first_line
from atoll.storage.postgres.trees import PostgresTreeAccess
from atoll.storage.postgres.txn import PostgresTxn
from atoll.storage.protocol import ItemKey, Storage, WriteTxn
from atoll.storage.treeprotocol import TreeAccess, TreeStorage, TreeWriteTxn
from atoll.storage.writepath import BatchTimes, WritePath, now_ns

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH_JOBS = 512
MAX_QUEUED_JOBS = 20_000
MAX_ATTEMPTS = 5  # of a batch the engine chose as a victim (serialization, deadlock)
RETRY_PAUSE_S = 0.005  # doubled after each victim attempt
OPEN_ATTEMPTS = 6  # connecting at start, while the server cannot be reached
OPEN_PAUSE_S = 0.2  # doubled after each: about 6 s in all
WATCH_INTERVAL_S = 0.05
_STOP = object()

# What one run of a batch came to.
_COMMITTED = "committed"
_CAREFUL = "careful"  # a refused statement surfaced: replay syncing after each job
_POISONED = "poisoned"  # a job raised after writing: replay without it
_RETRY = "retry"


class Job:
    __slots__ = ("fn", "future", "keys", "result", "error", "queued")

    def __init__(self, fn: Callable[[PostgresTxn], Any], future: asyncio.Future[Any] | None,
                 keys: Sequence[ItemKey] = ()) -> None:
        self.fn = fn
        self.future = future
        self.keys = keys  # what it will look up (txn.py reads them ahead)
        self.result: Any = None
        self.error: BaseException | None = None
        self.queued = now_ns()


class _Unavailable(Exception):
    """The server or the connection was lost during a batch."""


class PostgresStorage(PostgresReads):
    """A region's storage in PostgreSQL. Construct, then `start(loop)` before writing."""

    def __init__(self, dsn: str, *, region: str = "local", node: str | None = None,
                 trees: bool = True) -> None:
        self.node = node or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        name = f"atoll-{region}"
        writer = _at_start("the writer connection",
                           lambda: _open_writer(dsn, region, f"{name}-writes"))
        if not trees:
            for table in ("tree_buckets", "tree_progress"):
                writer.execute(f"DELETE FROM {table}")  # noqa: S608
            writer.commit()
        _at_start("the reader connection", lambda: PostgresReads.__init__(self, dsn, region, name))
        self.trees = trees  # hash trees kept (storage/treeprotocol.py)
        self.integrity = IntegrityFaults()
        self._writer: psycopg.Connection | None = writer
        self._txn = PostgresTxn(writer, region, trees)
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()
        self._refused = False  # new writes refused (closing)
        self._shut = False
        self._queued = 0  # event-loop thread: accepted, not yet answered
        self.commit_listeners: list[Callable[[], None]] = []
        self.visible_listeners = self.commit_listeners  # COMMIT returns once durable
        # Event-loop thread: another node changed a table definition (watcher).
        self.catalog_listeners: list[Callable[[], None]] = []
        # Writer thread, at the start of every batch, under the region's write lock, with
        # the head as the batch found it: what a node must learn from its siblings before
        # its jobs run (node/shared_region.py: the clock, the catalog).
        self.batch_hook: Callable[[PostgresTxn, Head], None] | None = None
        self.write_path = WritePath()
        self.batches_committed = 0
        self.jobs_committed = 0
        self.batch_replays = 0  # victim retries, careful replays and poisoned replays
        self.batches_unavailable = 0
        self._wanted_leases: set[str] = set()
        self._held_until: dict[str, float] = {}  # lease -> monotonic deadline (watcher)

    @property
    def where(self) -> str:
        """The server and database, for logs (no password)."""
        info = self._writer.info if self._writer is not None else None
        return f"{info.host}:{info.port}/{info.dbname}" if info is not None else "?"

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        invariant(self._writer_thread is None, "storage started twice")
        self._loop = loop
        self._writer_thread = threading.Thread(target=self._run_writer, name="atoll-pg-writer",
                                               daemon=True)
        self._writer_thread.start()
        self._watcher = threading.Thread(target=self._run_watcher, name="atoll-pg-watcher",
                                         daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Finish every queued write, release this node's leases, close the connections."""
        if self._shut:
            return
        self._shut = self._refused = True
        if self._writer_thread is not None:
            self._jobs.put(_STOP)  # behind every queued job
            self._writer_thread.join()
        self._stop_watching.set()
        if self._watcher is not None:
            self._watcher.join()
        if self._writer is not None:
            self._writer.close()
        self.close_reads()

    def _ask(self, callback: Callable[..., None], *args: Any) -> None:
        """From another thread: run `callback` on the event-loop thread (unless the loop
        has closed: the storage is being shut down then)."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass

    # --- writes --------------------------------------------------------------------------
    def write(self, fn: Callable[[PostgresTxn], Any], *, inline: bool = False,
              keys: Sequence[ItemKey] = ()) -> asyncio.Future[Any]:
        """Queue a job; the future resolves once its batch committed (and so is durable).
        `inline` makes no difference here: every batch runs on the writer thread. The
        batch reads `keys` ahead, with its lock (txn.py)."""
        invariant(self._loop is not None, "storage not started")
        if self._refused:
            raise ServiceUnavailable("The server is shutting down")
        if self._queued >= MAX_QUEUED_JOBS:
            raise ServiceUnavailable("Too many writes queued; retry")
        future: asyncio.Future[Any] = self._loop.create_future()  # type: ignore[union-attr]
        self._queued += 1
        self._jobs.put(Job(fn, future, keys))
        return future

    def write_sync(self, fn: Callable[[PostgresTxn], Any]) -> Any:
        """Run one job now on the calling thread (only before `start`)."""
        invariant(self._writer_thread is None, "write_sync after start")
        job = Job(fn, None)
        self._execute([job], BatchTimes(1, job.queued))
        if job.error is not None:
            raise job.error
        return job.result

    def tree_access(self) -> TreeAccess:
        """Verify's access, on a connection of its own (trees.py); on the loop thread."""
        return PostgresTreeAccess(self.dsn, self.region, f"atoll-{self.region}", self.write)

    def settle(self) -> asyncio.Future[None] | None:
        """Never waits: a commit (and whatever a read saw) is durable when it returns."""
        return None

    async def settled(self) -> None:
        return None

    def _run_writer(self) -> None:
        stop = False
        while not stop:
            first = self._jobs.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < MAX_BATCH_JOBS:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                batch.append(job)
            times = BatchTimes(len(batch), batch[0].queued)
            times.handed = times.taken = times.started
            try:
                self._execute(batch, times)
            except BaseException as exc:  # a bug: fail the batch, keep serving
                log.critical("a write batch failed unexpectedly", exc_info=True)
                for job in batch:
                    job.result, job.error = None, InternalError(f"write failed: {exc}")
            self._ask(self._answer, batch, times)

    def _answer(self, batch: list[Job], times: BatchTimes) -> None:
        """Event-loop thread: the batch is over (durable, or failed): answer it in order."""
        self._queued -= len(batch)
        self.write_path.answered(times, now_ns())
        for listener in self.commit_listeners:
            listener()
        for job in batch:
            future = job.future
            if future is None or future.done():  # the caller went away
                continue
            if job.error is not None:
                future.set_exception(job.error)
            else:
                future.set_result(job.result)

    # --- one batch (writer thread, or the caller of write_sync) --------------------------
    def _execute(self, batch: list[Job], times: BatchTimes) -> None:
        """Run and commit the jobs; each ends with its result or its error."""
        running = batch
        careful = False
        victims = 0
        for _attempt in range(2 * len(batch) + MAX_ATTEMPTS + 2):  # bounded (see below)
            for job in running:
                job.result, job.error = None, None
            times.run_from = now_ns()
            try:
                outcome, culprit = self._attempt(running, careful, times)
            except _Unavailable as exc:
                self.batches_unavailable += 1
                failure = ServiceUnavailable(f"The database is unavailable: {exc}")
                for job in batch:
                    job.result, job.error = None, failure
                return
            if outcome == _COMMITTED:
                self.batches_committed += 1
                self.jobs_committed += len(running)
                return
            self.batch_replays += 1
            if outcome == _RETRY:
                victims += 1
                if victims >= MAX_ATTEMPTS:
                    failure = ServiceUnavailable("The write conflicted with others; retry")
                    for job in batch:
                        job.result, job.error = None, failure
                    return
                time.sleep(RETRY_PAUSE_S * 2 ** victims)
            elif outcome == _CAREFUL:
                careful = True  # once: a careful run ends in a culprit or a commit
            else:  # _POISONED: each replay drops a job, so this ends
                running = [j for j in running if j is not culprit and j.error is None]
                if not running:
                    return
        invariant(False, "batch replay did not converge")

    def _attempt(self, running: list[Job], careful: bool, times: BatchTimes
                 ) -> tuple[str, Job | None]:
        """One run of the jobs in a new transaction, committed if nothing poisoned it."""
        conn = self._writer_conn()
        txn = self._txn
        culprit: Job | None = None
        try:
            with conn.pipeline() as pipeline:
                head = txn.begin(pipeline, [key for job in running for key in job.keys])
                if self.batch_hook is not None:
                    self.batch_hook(txn, head)
                for job in running:
                    writes_before = txn.writes
                    try:
                        job.result = job.fn(txn)
                        if careful:
                            txn.sync()
                    except psycopg.Error as exc:
                        if classify(exc) != JOB:
                            raise
                        if not careful:
                            return self._roll_back(_CAREFUL)
                        job.error = InternalError(f"The database refused the write: "
                                                  f"{_first_line(exc)}")
                        return self._roll_back(_POISONED, job)
                    except Exception as exc:
                        job.error = exc
                        if txn.writes != writes_before:
                            culprit = job
                            break
                if culprit is not None:
                    return self._roll_back(_POISONED, culprit)
                txn.finish()
                times.ran = times.commit_from = now_ns()
                conn.commit()
            times.committed = times.synced = now_ns()
            return _COMMITTED, None
        except psycopg.Error as exc:
            kind = classify(exc)
            if kind == UNAVAILABLE:
                self._drop_writer()
                raise _Unavailable(_first_line(exc)) from None
            if kind == RETRY:
                return self._roll_back(_RETRY)
            if careful:  # refused at COMMIT itself (nothing in the schema defers checks)
                log.error("a batch's COMMIT was refused: %s", exc)
                for job in running:
                    job.error = InternalError(f"The database refused the write: "
                                              f"{_first_line(exc)}")
                self._roll_back(_POISONED)
                return _POISONED, running[0]
            return self._roll_back(_CAREFUL)
        finally:
            txn.forget()

    def _roll_back(self, outcome: str, culprit: Job | None = None) -> tuple[str, Job | None]:
        try:
            if self._writer is not None:
                self._writer.rollback()
        except psycopg.Error as exc:
            if classify(exc) == UNAVAILABLE:
                self._drop_writer()
                raise _Unavailable(_first_line(exc)) from None
            raise
        return outcome, culprit

    def _writer_conn(self) -> psycopg.Connection:
        if self._writer is None or self._writer.closed:
            try:
                self._writer = connect(self.dsn, autocommit=False, name=f"{self._name}-writes")
            except psycopg.Error as exc:
                raise _Unavailable(_first_line(exc)) from None
            self._txn = PostgresTxn(self._writer, self.region, self.trees)
        return self._writer

    def _drop_writer(self) -> None:
        conn, self._writer = self._writer, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    # --- the watcher thread: other nodes' commits, leases --------------------------------
    def want_lease(self, name: str) -> None:
        """Ask the watcher to take and keep the lease `name` (see leases.py)."""
        self._wanted_leases.add(name)

    def holds_lease(self, name: str) -> bool:
        """Whether this node holds `name` now (and may run its job)."""
        return self._held_until.get(name, 0.0) > time.monotonic()

    def lease_holders(self) -> list[tuple[str, str, int]]:
        """(lease, holder, ms left) of every lease of the region."""
        return [(str(n), str(h), int(ms)) for n, h, ms in self._all(leases.HOLDERS)]

    def _run_watcher(self) -> None:
        conn: psycopg.Connection | None = None
        seen: list[Any] | None = None
        catalog: int | None = None
        renewed_at = 0.0
        while not self._stop_watching.wait(WATCH_INTERVAL_S):
            try:
                if conn is None or conn.closed:
                    conn = connect(self.dsn, autocommit=True, name=f"{self._name}-watch")
                heads = conn.execute(
                    "SELECT 'h', origin, seq, catalog FROM log_heads UNION ALL"
                    " SELECT 'c', origin, seq, 0 FROM cursors ORDER BY 1, 2").fetchall()
                if seen is not None and heads != seen:
                    self._ask(self._moved)
                seen = heads
                versions = sum(int(row[3]) for row in heads)
                if catalog is not None and versions != catalog:
                    self._ask(self._catalog_moved)
                catalog = versions
                if self._wanted_leases and time.monotonic() - renewed_at >= \
                        leases.RENEW_INTERVAL_S:
                    renewed_at = time.monotonic()
                    for name in sorted(self._wanted_leases):
                        if leases.take(conn, name, self.node):
                            self._held_until[name] = renewed_at + \
                                leases.TTL_MS / 1000 * leases.SAFETY
                        else:
                            self._held_until.pop(name, None)
            except psycopg.Error as exc:
                log.debug("watcher: %s", _first_line(exc))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None and not conn.closed:
            try:
                leases.release_all(conn, self.node)
            except psycopg.Error:
                pass
            conn.close()

    def _moved(self) -> None:
        """Event-loop thread: some node committed changes; wake whoever waits for them."""
        for listener in self.commit_listeners:
            listener()

    def _catalog_moved(self) -> None:
        """Event-loop thread: some node changed a table definition."""
        for listener in self.catalog_listeners:
            listener()

    # --- figures -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "writes_committed": self.jobs_committed,
            "write_batches_committed": self.batches_committed,
            "write_path": self.write_path.summary(),
            "postgres": {"node": self.node, "batch_replays": self.batch_replays,
                         "batches_unavailable": self.batches_unavailable,
                         "keys_read_ahead": self._txn.ahead.sent,
                         "lookups_read_ahead": self._txn.ahead.used,
                         "leases_held": sorted(n for n in self._held_until
                                               if self.holds_lease(n))},
        }


def _at_start(what: str, open_: Callable[[], T]) -> T:
    """`open_()` at start, tried again while the server cannot be reached yet (starting,
    restarting, or slow to accept under load): OPEN_ATTEMPTS times in all with a
    doubling pause, before the start fails with ServiceUnavailable."""
    for attempt in range(1, OPEN_ATTEMPTS):
        try:
            return open_()
        except ServiceUnavailable as exc:
            log.warning("opening %s: %s (attempt %d of %d)", what, exc, attempt, OPEN_ATTEMPTS)
        time.sleep(OPEN_PAUSE_S * 2 ** (attempt - 1))
    return open_()


def _open_writer(dsn: str, region: str, name: str) -> psycopg.Connection:
    """The writer connection, with the schema in place (connection.init_schema)."""
    writer: psycopg.Connection | None = None
    try:
        writer = connect(dsn, autocommit=False, name=name)
        init_schema(writer, region)
        return writer
    except psycopg.Error as exc:
        if writer is not None:
            writer.close()
        if classify(exc) != UNAVAILABLE:
            raise
        raise ServiceUnavailable(f"The database is unavailable: {_first_line(exc)}") from None


if TYPE_CHECKING:
    def _implements(storage: PostgresStorage, txn: PostgresTxn
                    ) -> tuple[Storage, WriteTxn, TreeStorage, TreeWriteTxn]:
        return storage, txn, storage, txn  # mypy checks that both implement the protocols
