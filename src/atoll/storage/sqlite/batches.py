"""BatchRunner: a batch of write jobs in one transaction of the writer connection.

Theory of operation
- Write jobs are callables `job(txn) -> result`. Queued jobs (up to MAX_BATCH_JOBS) run
  in one transaction that commits once: group commit. A job that raises before writing
  anything (a failed condition, bad input — the usual case) simply fails alone. One that
  raises after writing poisons the batch: it is rolled back whole and replayed without
  that job (jobs are deterministic functions of the database state, so the replay gives
  the others the same outcome). That spares a SAVEPOINT round trip per write.
- A failed COMMIT (disk full, I/O error) fails every job of the batch: nothing of it was
  acknowledged, so nothing acknowledged is lost.
- The runner is used by one thread at a time: the one running the batch in flight
  (storage.py says which).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from atoll.errors import ServiceUnavailable
from atoll.invariant import invariant
from atoll.storage.sqlite.durability import WriteState
from atoll.storage.sqlite.txn import SqliteTxn
from atoll.storage.writepath import BatchTimes, now_ns

log = logging.getLogger(__name__)

MAX_BATCH_JOBS = 512
_FAILED = object()


class Job:
    __slots__ = ("fn", "future", "inline", "result", "error", "queued")

    def __init__(self, fn: Callable[[SqliteTxn], Any], future: asyncio.Future[Any],
                 inline: bool) -> None:
        self.fn = fn
        self.future = future
        self.inline = inline
        self.result: Any = None
        self.error: BaseException | None = None
        self.queued = now_ns()


# What a batch's COMMIT did to live items, for the read cache: (key, row or None) each,
# and the tids of the tables it dropped.
Changes = tuple[list[Any], set[int]]

# What a batch leaves for delivery: its jobs, what its commit did to live items (None if
# it did not commit), the number of the last commit its jobs may have seen, and its
# stage times.
Ran = tuple[list[Job], Changes | None, int, BatchTimes]


class BatchRunner:
    """Runs batches on the writer connection and COMMITs them (synchronous=NORMAL: no
    fsync here; durability.py makes them durable)."""

    def __init__(self, conn: sqlite3.Connection, txn: SqliteTxn, state: WriteState) -> None:
        self.conn = conn
        self.txn = txn
        self.state = state
        self._seq_before = 0  # the open transaction's first changelog sequence
        self._pos_before = 0  # and its first stream position
        self.batches_committed = 0
        self.jobs_committed = 0

    def run(self, batch: list[Job]) -> list[Job] | None:
        """BEGIN and run the jobs, leaving the transaction open; returns the jobs whose
        writes it holds, or None if it failed (each job then holds its error)."""
        running = batch
        for _attempt in range(len(batch) + 1):  # each replay drops at least one job
            poisoned = self._try(running)
            if poisoned is _FAILED:
                return None
            if poisoned is None:
                return running
            running = [job for job in running if job is not poisoned and job.error is None]
        invariant(False, "batch replay did not converge")
        return None

    def _try(self, batch: list[Job]) -> object:
        """Run the jobs in a new transaction; return a job that failed after writing (the
        transaction was rolled back: replay without it), _FAILED, or None."""
        conn = self.conn
        txn = self.txn
        self._seq_before = txn.next_seq
        self._pos_before = txn.next_stream_pos
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                writes_before = txn.writes
                try:
                    job.result = job.fn(txn)
                except Exception as exc:
                    job.error = exc
                    if txn.writes != writes_before:
                        self._roll_back()
                        return job
            txn.flush_stream_records()
            txn.flush_stats()
            txn.flush_trees()
        except sqlite3.Error as exc:
            self._fail(batch, exc)
            return _FAILED
        return None

    def commit(self, batch: list[Job]) -> Changes | None:
        """COMMIT the transaction `run` left open; returns what it did to live items
        (for the read cache), or None if the COMMIT failed."""
        txn = self.txn
        self.state.taken += 1  # before COMMIT: see WriteState
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._fail(batch, exc)
            return None
        changes = (txn.item_changes, txn.dropped_tids)
        txn.reset()
        self.batches_committed += 1
        self.jobs_committed += len(batch)
        return changes

    def _roll_back(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.txn.forget_stats()
        self.txn.next_seq = self._seq_before
        self.txn.next_stream_pos = self._pos_before
        self.txn.reset()

    def _fail(self, batch: list[Job], exc: sqlite3.Error) -> None:
        log.error("commit of %d writes failed: %s", len(batch), exc)
        self._roll_back()
        failure = ServiceUnavailable(f"The write could not be made durable: {exc}")
        for job in batch:
            job.result, job.error = None, failure
