"""MemoryStorage: the Storage contract in pure Python, on the event-loop thread alone.

Theory of operation
- Everything lives in a MemoryData (data.py): nothing touches a disk, so it suits tests
  and a simulator that runs many nodes in one process. A storage built on the data of a
  closed one sees what was committed there, as after a restart.
- Write jobs queue as in the SQLite storage and run in batches of up to MAX_BATCH_JOBS,
  one batch per turn of the event loop, in submission order. A job that raises is undone
  alone (txn.py), the others keep their effects. Every batch runs on the event-loop
  thread whatever `inline` says: no thread, no lock, and a run that depends only on the
  loop's scheduling (a simulator's seed replays it).
- A batch is committed and durable when its last job returns: its jobs are answered
  right away (in order, on that same turn of the loop), so `settle()` never has to wait.
- Reads see the data as the last batch left it (no batch is ever half-run between two
  turns of the loop). Stored rows carry no checksums: nothing here can rot.
- Each batch's stage times go to a `writepath.WritePath` as the SQLite storage's do
  (waiting, running, total; no COMMIT, no fsync).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from atoll.errors import ServiceUnavailable
from atoll.invariant import invariant
from atoll.storage.integrity import IntegrityFaults
from atoll.storage.memory.data import MemoryData
from atoll.storage.memory.reads import MemoryReads
from atoll.storage.memory.trees import MemoryTreeAccess
from atoll.storage.memory.txn import MemoryTxn
from atoll.storage.protocol import ItemKey, Storage, WriteTxn
from atoll.storage.treeprotocol import TreeAccess
from atoll.storage.writepath import BatchTimes, WritePath, now_ns

MAX_BATCH_JOBS = 512
MAX_QUEUED_JOBS = 20_000


class _Job:
    __slots__ = ("fn", "future", "result", "error", "queued")

    def __init__(self, fn: Callable[[MemoryTxn], Any], future: asyncio.Future[Any] | None
                 ) -> None:
        self.fn = fn
        self.future = future
        self.result: Any = None
        self.error: Exception | None = None
        self.queued = now_ns()


class MemoryStorage(MemoryReads):
    """One node's data in memory. Construct, then `start(loop)` before writing."""

    def __init__(self, region: str = "local", data: MemoryData | None = None,
                 trees: bool = True) -> None:
        super().__init__(data if data is not None else MemoryData(), region)
        self.trees = trees  # hash trees kept (storage/treeprotocol.py)
        self._txn = MemoryTxn(self.data, region, trees)
        self.integrity = IntegrityFaults()  # rows here carry no checksums: stays empty
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Job] = []  # jobs waiting for a batch
        self._queued = 0  # jobs accepted and not yet answered
        self._start_scheduled = False
        self._refused = False  # close() ran
        self.commit_listeners: list[Callable[[], None]] = []
        self.visible_listeners = self.commit_listeners  # a commit is visible as answered
        self.batches_committed = 0
        self.jobs_committed = 0
        self.write_path = WritePath()

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        invariant(self._loop is None, "storage started twice")
        self._loop = loop

    def close(self) -> None:
        """Refuse new writes and run every queued one now (their futures resolve)."""
        if self._refused:
            return
        self._refused = True
        leftovers, self._pending = self._pending, []
        if leftovers:
            self._run_batch(leftovers)

    # --- writes --------------------------------------------------------------------------
    def write(self, fn: Callable[[MemoryTxn], Any], *, inline: bool = False,
              keys: Sequence[ItemKey] = ()) -> asyncio.Future[Any]:
        """Queue a write job; the future resolves once its batch ran (see the module doc:
        `inline` and `keys` change nothing here)."""
        invariant(self._loop is not None, "storage not started")
        if self._refused:
            raise ServiceUnavailable("The server is shutting down")
        if self._queued >= MAX_QUEUED_JOBS:
            raise ServiceUnavailable("Too many writes queued; retry")
        future: asyncio.Future[Any] = self._loop.create_future()  # type: ignore[union-attr]
        self._queued += 1
        self._pending.append(_Job(fn, future))
        if not self._start_scheduled:  # later jobs of this loop iteration join the batch
            self._start_scheduled = True
            self._loop.call_soon(self._start_batch)  # type: ignore[union-attr]
        return future

    def write_sync(self, fn: Callable[[MemoryTxn], Any]) -> Any:
        """Run one write job now (only before `start`, e.g. recovery)."""
        invariant(self._loop is None, "write_sync after start")
        job = _Job(fn, None)
        self._run_job(job)
        self._txn.end_batch()
        if job.error is not None:
            raise job.error
        return job.result

    def run_now(self, fn: Callable[[MemoryTxn], Any]) -> Any:
        """Run one job now as a batch of its own, on the loop thread between batches
        (verify's writes: trees.py); returns its result or raises its error."""
        invariant(self._loop is not None and not self._refused, "storage not running")
        self._queued += 1
        job = _Job(fn, None)
        self._run_batch([job])
        if job.error is not None:
            raise job.error
        return job.result

    def tree_access(self) -> TreeAccess:
        return MemoryTreeAccess(self, self.run_now)

    def _start_batch(self) -> None:
        self._start_scheduled = False
        if self._refused or not self._pending:
            return
        batch = self._pending[:MAX_BATCH_JOBS]
        del self._pending[:MAX_BATCH_JOBS]
        self._run_batch(batch)
        if self._pending and not self._start_scheduled:  # more than one batch's worth
            self._start_scheduled = True
            self._loop.call_soon(self._start_batch)  # type: ignore[union-attr]

    def _run_batch(self, batch: list[_Job]) -> None:
        """Run the jobs, end the batch and answer them."""
        times = BatchTimes(len(batch), batch[0].queued)
        for job in batch:
            self._run_job(job)
        self._txn.end_batch()
        times.ran = now_ns()
        self.batches_committed += 1
        self.jobs_committed += len(batch)
        self._queued -= len(batch)
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
        self.write_path.answered(times, now_ns())

    def _run_job(self, job: _Job) -> None:
        txn = self._txn
        savepoint = txn.savepoint()
        try:
            job.result = job.fn(txn)
        except Exception as exc:
            job.error = exc
            txn.roll_back(savepoint)

    def settle(self) -> asyncio.Future[None] | None:
        """Always None: a batch is answered when it is durable, and only then readable."""
        return None

    async def settled(self) -> None:
        return None

    # --- figures -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "writes_committed": self.jobs_committed,
            "write_batches_committed": self.batches_committed,
            "write_path": self.write_path.summary(),
        }


if TYPE_CHECKING:
    def _implements(storage: MemoryStorage, txn: MemoryTxn) -> tuple[Storage, WriteTxn]:
        return storage, txn  # mypy checks that both implement the protocols
