"""Hybrid logical clock.

A timestamp is one int: physical milliseconds in the high bits, a 16-bit logical counter
in the low bits, so plain integer comparison orders timestamps. (hlc, origin region)
totally orders writes across the cluster (DESIGN.md decision 3).

The clock never reads time itself: `now_ms` is a callable given by the shell (or by the
simulator's fake clock).
"""

from __future__ import annotations

from collections.abc import Callable

from atoll.errors import ClockOffsetTooLarge
from atoll.invariant import invariant

LOGICAL_BITS = 16
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def make_hlc(physical_ms: int, logical: int = 0) -> int:
    invariant(0 <= logical <= LOGICAL_MASK, "logical counter out of range")
    return (physical_ms << LOGICAL_BITS) | logical


def hlc_physical_ms(hlc: int) -> int:
    return hlc >> LOGICAL_BITS


def hlc_logical(hlc: int) -> int:
    return hlc & LOGICAL_MASK


class HybridClock:
    """Issues strictly increasing timestamps; merges remote ones with a skew bound.

    While `refusal` is set (by the node, when its clock is judged off from most of its
    peers: atoll.clock.offset), `tick` raises ClockOffsetTooLarge instead of stamping:
    every local write takes its stamp there, so none is made with a clock known to be
    wrong. Remote changes are still observed and applied (`observe` does not refuse)."""

    def __init__(self, now_ms: Callable[[], int], max_skew_ms: int = 5000) -> None:
        self._now_ms = now_ms
        self.max_skew_ms = max_skew_ms
        self.last = 0
        self.bounded_count = 0  # remote timestamps that were too far ahead
        self.refusal: str | None = None  # why local writes are refused now, if they are
        self.refused_count = 0  # local stamps refused so far

    def tick(self) -> int:
        """A timestamp for a local event, greater than every one issued or observed."""
        refusal = self.refusal
        if refusal is not None:
            self.refused_count += 1
            raise ClockOffsetTooLarge(refusal)
        return self._advance()

    def _advance(self) -> int:
        physical = make_hlc(self._now_ms())
        self.last = physical if physical > self.last else self.last + 1
        return self.last

    def restore(self, persisted: int) -> None:
        """Never issue a stamp <= `persisted`: this node's own last stamp, read back from
        its store at restart. Not skew-bounded — it is our own clock's past."""
        if persisted > self.last:
            self.last = persisted

    def observe(self, remote: int) -> int:
        """Advance past a remote timestamp; one too far in the future is not followed
        beyond now + max_skew_ms, so a region with a wrong clock cannot drag every
        other region's clock (and win every conflict) forever."""
        limit = make_hlc(self._now_ms() + self.max_skew_ms, LOGICAL_MASK)
        if remote > limit:
            self.bounded_count += 1
            remote = limit
        if remote > self.last:
            self.last = remote
        return self._advance()
