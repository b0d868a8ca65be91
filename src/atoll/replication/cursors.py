"""Cursors: per origin, the highest contiguous sequence number applied (a version vector).

Theory of operation: origin O numbers its changes 1, 2, 3, ... A region's cursor for O
is `Cursor(seq, hlc)`: it has applied every change O1..O<seq> and no later one from O
(the apply path only ever accepts seq == cursor.seq + 1), and `hlc` is the timestamp
of change O<seq>. The cursor is advanced in the same store transaction as the change it
covers, so after a crash a region resumes exactly where it stopped.

Because each origin's timestamps increase with its seq, the cursor's `hlc` says which of
O's changes a region holds by time as well as by number: `retention` uses that to know
when no older write can still arrive anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from atoll.invariant import invariant
from atoll.replication.errors import BadMessage


class Cursor(NamedTuple):
    seq: int
    hlc: int


ZERO = Cursor(0, 0)
Cursors = Mapping[str, Cursor]
MAX_ORIGINS = 1000  # a cluster has a handful of regions; a bigger vector is a bad message


def cursor_of(cursors: Cursors, origin: str) -> Cursor:
    return cursors.get(origin, ZERO)


def advance(cursors: dict[str, Cursor], origin: str, seq: int, hlc: int) -> None:
    """Move `origin`'s cursor to the next change (in place)."""
    current = cursors.get(origin, ZERO)
    invariant(seq == current.seq + 1, f"cursor for {origin} would skip {current.seq}->{seq}")
    invariant(hlc > current.hlc, f"origin {origin} timestamps must increase with seq")
    cursors[origin] = Cursor(seq, hlc)


def meet(vectors: Iterable[Cursors], origins: Iterable[str]) -> dict[str, Cursor]:
    """Element-wise minimum over `origins`: what every vector has (missing = ZERO)."""
    vectors = list(vectors)
    result = {}
    for origin in origins:
        result[origin] = min((cursor_of(v, origin) for v in vectors), default=ZERO)
    return result


def join(a: Cursors, b: Cursors) -> dict[str, Cursor]:
    """Element-wise maximum."""
    result = dict(a)
    for origin, cursor in b.items():
        if cursor > result.get(origin, ZERO):
            result[origin] = cursor
    return result


def lag(behind: Cursors, ahead: Cursors) -> dict[str, int]:
    """Per origin, how many records `behind` misses that `ahead` has (only positive)."""
    result = {}
    for origin, cursor in ahead.items():
        missing = cursor.seq - cursor_of(behind, origin).seq
        if missing > 0:
            result[origin] = missing
    return result


def to_wire(cursors: Cursors) -> dict[str, list[int]]:
    return {origin: [c.seq, c.hlc] for origin, c in sorted(cursors.items())}


def from_wire(raw: Any) -> dict[str, Cursor]:
    """Parse a peer's cursor vector; BadMessage if malformed."""
    if not isinstance(raw, dict) or len(raw) > MAX_ORIGINS:
        raise BadMessage("cursors must be a map of origin to [seq, hlc]")
    result = {}
    for origin, value in raw.items():
        if (not isinstance(origin, str) or not origin or not isinstance(value, list | tuple)
                or len(value) != 2 or not all(_natural(v) for v in value)):
            raise BadMessage(f"cursor for {origin!r} is malformed")
        result[origin] = Cursor(int(value[0]), int(value[1]))
    return result


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
