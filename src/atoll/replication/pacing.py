"""Pacing the fold and the compaction sweep (atoll.replication.fold) beside the requests
a node serves: slices sized by their measured cost, and a pause after each.

Theory of operation: the walk runs on the node's event loop (a page of rows read and
their states decoded) and its jobs on the storage's writer thread, holding the GIL for
most of their run and keeping every write queued behind them waiting. Either is a
stall of the requests served meanwhile, as long as the slice. So each slice is sized to
take about `slice_ms` of CPU: the shell measures the CPU time of each page (on the
loop's thread) and of each job (on the writer's) and how many rows or items it held,
keeps a moving estimate of the cost of one (`Slicer`), and asks for the next page or
job of `budget / cost` of them (at least one, at most the configured page or job
size). CPU time, not wall time: on a busy machine every piece of work, a request's
too, takes longer by the same factor, and sizing slices by wall time there would
shrink jobs to an item each, one replicated change per item. A slice that cost more
than the estimate makes the next ones smaller at once; cheaper ones let them grow
again, at most doubling at a time. After each slice the shell pauses for as long as
the slice ran times `(1 - share) / share` (`pause_s`), so that the walk takes at most
`share` of the loop and of the writer, however many rows or items it still has to go:
with share 0.5 a sweep takes at least twice its own run time, and requests arriving
meanwhile find the loop and the writer free at least half the time.

Pure: the shell measures the time and passes it in.
"""

from __future__ import annotations

from dataclasses import dataclass

from atoll.invariant import invariant

SMOOTHING = 0.3  # weight of the newest measurement in the cost estimate
MAX_GROWTH = 2  # a slice at most doubles from one to the next


@dataclass(slots=True)
class Slicer:
    """The size of the next slice (rows of a page, or items of a job) for a budget of
    `slice_ms`, from the measured cost of the slices before it."""

    slice_ms: float
    most: int  # the configured size: never more
    size: int = 0  # the next slice's size (0: `first`)
    first: int = 8  # before anything was measured
    cost_ms: float = 0.0  # per row or item, smoothed (0: nothing measured yet)

    def __post_init__(self) -> None:
        invariant(self.slice_ms > 0 and self.most > 0 and self.first > 0, "bad slice bounds")
        if not self.size:
            self.size = min(self.first, self.most)

    def ran(self, units: int, elapsed_ms: float) -> None:
        """A slice of `units` took `elapsed_ms`; size the next one."""
        if units <= 0:
            return
        cost_ms = max(elapsed_ms, 0.0) / units
        self.cost_ms = cost_ms if not self.cost_ms else \
            SMOOTHING * cost_ms + (1 - SMOOTHING) * self.cost_ms
        fits = int(self.slice_ms / self.cost_ms) if self.cost_ms > 0 else self.most
        self.size = max(1, min(self.most, fits, self.size * MAX_GROWTH))


@dataclass(frozen=True, slots=True)
class Pacing:
    """How the shell paces the walk: `slice_ms` per page and per job, and at most
    `share` of the time spent on them."""

    slice_ms: float
    share: float

    def __post_init__(self) -> None:
        invariant(self.slice_ms > 0 and 0 < self.share <= 1, "bad pacing")

    def pause_s(self, ran_s: float) -> float:
        """The pause after a slice that ran `ran_s` seconds."""
        return max(ran_s, 0.0) * (1 - self.share) / self.share
