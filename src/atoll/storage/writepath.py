"""Where a write batch's time goes, stage by stage, for /_atoll/status and the bench.

A batch passes through up to three threads (see the sqlite module doc): its jobs wait on
the event loop for the batch before them, run (on the loop, or on the writer thread),
are handed to the writer thread, COMMIT there, wait for the syncer's fdatasync, and are
answered on the loop. Each batch carries one `BatchTimes`, stamped by whichever thread
reaches each point (a queue hands it from one thread to the next, so no stamp races
another); the loop files its stage spans in `WritePath` once the batch is answered.
Stamping costs a few clock reads per batch and one per write.

`summary()` gives percentiles of each stage over the batches answered in the last
`window_s` seconds: under steady load, what limits the write path now.
"""

from __future__ import annotations

import collections
import time
from typing import Any

now_ns = time.perf_counter_ns

# At most this many recent batches are kept (~5 s at 400 batches/s, wrk PutItem): a
# summary of 2,048 takes ~1 ms of the event loop, one of 8,192 took ~19 ms.
RING_BATCHES = 2048
WINDOW_S = 2.0
PERCENTILES = (50, 90, 99)

# (name in the summary, stamp it starts at, stamp it ends at); a stage whose stamps were
# not both taken (an in-memory batch has no fdatasync) is left out for that batch.
STAGES = (
    ("wait", "queued", "started"),          # oldest job: queued -> its batch starts
    ("run", "run_from", "ran"),             # the batch's jobs run (loop or writer)
    ("to_writer", "handed", "taken"),       # handed over -> the writer thread has it
    ("commit", "commit_from", "committed"),  # COMMIT (writes the WAL, no fsync)
    ("fsync", "committed", "synced"),       # COMMIT done -> its fdatasync returned
    ("answer", "synced", "answered"),       # fdatasync done -> the loop answers
    ("total", "queued", "answered"),        # oldest job: queued -> answered
)


class BatchTimes:
    """perf_counter_ns stamps of one batch; 0 = not reached."""

    __slots__ = ("jobs", "queued", "started", "run_from", "ran", "handed", "taken",
                 "commit_from", "committed", "synced", "answered")

    def __init__(self, jobs: int, queued: int, started: int | None = None) -> None:
        self.jobs = jobs
        self.queued = queued
        self.started = now_ns() if started is None else started
        self.run_from = self.started  # a batch run on the writer thread restarts it there
        self.ran = self.handed = self.taken = 0
        self.commit_from = self.committed = self.synced = self.answered = 0


def spans(times: BatchTimes) -> tuple[int, ...]:
    """(answered, jobs, then each stage's ns in STAGES order, -1 where not reached)."""
    return (times.answered, times.jobs, *(
        getattr(times, end) - getattr(times, start)
        if getattr(times, start) and getattr(times, end) else -1
        for _name, start, end in STAGES))


class WritePath:
    """The recent batches' stage spans (event-loop thread only)."""

    def __init__(self, ring: int = RING_BATCHES) -> None:
        self._recent: collections.deque[tuple[int, ...]] = collections.deque(maxlen=ring)
        self.batches = 0  # answered since start

    def answered(self, times: BatchTimes, at: int) -> None:
        times.answered = at
        self._recent.append(spans(times))
        self.batches += 1

    def summary(self, window_s: float = WINDOW_S, at: int | None = None) -> dict[str, Any]:
        """Percentiles (ms) of each stage over the batches answered in the last
        `window_s` seconds (at most the last RING_BATCHES), and of their sizes."""
        since = (now_ns() if at is None else at) - int(window_s * 1e9)
        recent = [row for row in self._recent if row[0] >= since]
        stages: dict[str, dict[str, float]] = {}
        for column, (name, _start, _end) in enumerate(STAGES, start=2):
            ordered = sorted(row[column] for row in recent if row[column] >= 0)
            if ordered:
                stages[name] = percentiles_ms(ordered)
        sizes = sorted(row[1] for row in recent)
        return {
            "window_s": window_s, "batches": len(recent), "batches_total": self.batches,
            "writes_per_batch": {f"p{p}": percentile(sizes, p) for p in PERCENTILES}
            if sizes else {},
            "stages_ms": stages,
        }


def percentile(ordered: list[int], p: int) -> int:
    """Nearest-rank percentile of a sorted, non-empty list."""
    return ordered[min(len(ordered) - 1, max(0, -(-len(ordered) * p // 100) - 1))]


def percentiles_ms(ordered: list[int], *, with_max: bool = False) -> dict[str, float]:
    """PERCENTILES (and the max, if asked) of sorted, non-empty ns spans, in ms."""
    result = {f"p{p}": round(percentile(ordered, p) / 1e6, 3) for p in PERCENTILES}
    if with_max:
        result["max"] = round(ordered[-1] / 1e6, 3)
    return result
