"""SortedRows: rows by key, walked in key order — the memory storage's only index structure.

A dict holds the rows and a sorted list their keys (insort on insert, bisect and delete on
removal), so a point lookup is a dict lookup and a range is a bisect and a walk. Keys are
tuples (or ints) compared as Python compares them, which is the storage order: ints
numerically, bytes bytewise with a prefix first. A bound is (probe, inclusive), where the
probe may be a shorter tuple than the keys: (h, pk) is below every key (h, pk, sk), and
(h, pk + b"\\x00") above every one of them (`successor`).

A walk is lazy. Readers consume it before yielding to the event loop (the Storage
contract), but a walk left open across writes stays valid: after keys were inserted or
removed, it resumes at the first key past the last one it yielded.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

Bound = tuple[Any, bool]  # (probe, inclusive)


def successor(value: bytes) -> bytes:
    """The smallest byte string greater than `value`."""
    return value + b"\x00"


class SortedRows(Generic[K, V]):
    def __init__(self) -> None:
        self.rows: dict[K, V] = {}
        self.keys: list[Any] = []  # the rows' keys, sorted (K compares)
        self.moves = 0  # inserts and removals so far: a walk re-finds its place after one

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, key: K) -> V | None:
        return self.rows.get(key)

    def set(self, key: K, value: V) -> V | None:
        """Store a row; returns the one it replaced (None if the key was new)."""
        old = self.rows.get(key)
        self.rows[key] = value
        if old is None:
            bisect.insort(self.keys, key)
            self.moves += 1
        return old

    def pop(self, key: K) -> V | None:
        """Remove a row; returns it (None if there was none)."""
        old = self.rows.pop(key, None)
        if old is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]
            self.moves += 1
        return old

    def restore(self, key: K, old: V | None) -> None:
        """Put back what `set` or `pop` returned for the key (undo)."""
        if old is None:
            self.pop(key)
        else:
            self.set(key, old)

    def start(self, low: Bound | None) -> int:
        """The index of the first key at or above `low`."""
        if low is None:
            return 0
        probe, inclusive = low
        return bisect.bisect_left(self.keys, probe) if inclusive \
            else bisect.bisect_right(self.keys, probe)

    def end(self, high: Bound | None) -> int:
        """The index after the last key at or below `high`."""
        if high is None:
            return len(self.keys)
        probe, inclusive = high
        return bisect.bisect_right(self.keys, probe) if inclusive \
            else bisect.bisect_left(self.keys, probe)

    def walk(self, low: Bound | None, high: Bound | None, reverse: bool = False
             ) -> Iterator[tuple[K, V]]:
        """(key, row) of the keys within the bounds, in key order (reversed if asked)."""
        keys = self.keys
        moves = self.moves
        last: Any = None  # the key yielded last
        if reverse:
            i = self.end(high) - 1
            stop = self.start(low)
        else:
            i = self.start(low)
            stop = self.end(high)
        while True:
            if self.moves != moves:  # keys moved since the last step: find our place again
                moves = self.moves
                if reverse:
                    i, stop = bisect.bisect_left(keys, last) - 1, self.start(low)
                else:
                    i, stop = bisect.bisect_right(keys, last), self.end(high)
            if (i < stop) if reverse else (i >= stop):
                return
            last = keys[i]
            yield last, self.rows[last]
            i += -1 if reverse else 1

    def first(self, count: int, low: Bound | None = None, high: Bound | None = None
              ) -> list[tuple[K, V]]:
        """Up to `count` rows of `walk(low, high)`."""
        begin = self.start(low)
        keys = self.keys[begin:min(begin + count, self.end(high))] if count > 0 else []
        return [(key, self.rows[key]) for key in keys]
