"""The node's fold loop (atoll.node.replicator) and what it needs beside the core: the
CPU time of each fold job, which sizes the next (atoll.replication.pacing), and the log
lines of a pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from atoll.replication.fold import FoldStats
from atoll.replication.store import StoreTxn

log = logging.getLogger("atoll.node.replicator")
R = TypeVar("R")


class TimedJob(Generic[R]):
    """A storage job that notes the CPU time of its last run (on the thread that ran
    it: waits for the GIL or for a core on a busy machine do not count)."""

    def __init__(self, job: Callable[[StoreTxn], R]) -> None:
        self.job = job
        self.ran_s = 0.0

    def __call__(self, txn: StoreTxn) -> R:
        started = time.thread_time()
        try:
            return self.job(txn)
        finally:
            self.ran_s = time.thread_time() - started


def log_fold(before: str, stats: FoldStats) -> None:
    if before != "scanning" and stats.state == "scanning":
        log.warning("folding the counters of %s (regions that left the topology)",
                    ", ".join(stats.target))
    elif before == "scanning" and stats.state != "scanning":
        log.warning("fold pass done: %d items folded in %d changes so far (%d rows scanned)",
                    stats.folded_items, stats.fold_changes, stats.scanned_rows)
