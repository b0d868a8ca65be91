"""Hash-tree upkeep that every backend does the same way (treeprotocol.py).

Theory of operation: a backend's write path asks `newest` which row of a key is its tree
row, `row_leaf` for that row's leaf, and adds `old ^ new` to a `TreeDeltas` — one per
transaction, XORed per (tid, bucket) — which it writes once per touched bucket when the
batch ends (a group commit of 30 puts to 30 buckets writes 30 bucket rows, one
statement). A bucket's 128-bit hash is stored as two signed 64-bit halves (`split`,
`join`), so a database can XOR it in place with bit operations alone:
`(a | b) & ~(a & b)` in SQLite, `a # b` in PostgreSQL.

The leaves come from atoll.antientropy.hashing, so the trees a storage keeps are the
trees verify compares (a region's tree and `antientropy.rebuild_buckets` of its rows
agree by construction: tests/conformance/test_storage_trees.py checks it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from atoll.antientropy.hashing import item_leaf
from atoll.invariant import invariant
from atoll.storage.protocol import StoredState
from atoll.storage.treeprotocol import TREE_BUCKET_BITS, TreeRow, tree_version

BUCKET_SHIFT = 32 - TREE_BUCKET_BITS
_HALF = 1 << 64
_SIGN = 1 << 63
_LOW = _HALF - 1

Live = tuple[int, str, bytes, bool, int]  # (hlc, origin, item bytes, intact, size)
Dead = tuple[int, str]  # (hlc, origin) of a tombstone


def bucket_of_h(h: int) -> int:
    return h >> BUCKET_SHIFT


def bucket_h_range(bucket: int) -> tuple[int, int]:
    """The inclusive range of h that makes up `bucket`."""
    return bucket << BUCKET_SHIFT, ((bucket + 1) << BUCKET_SHIFT) - 1


def newest(h: int, pk: bytes, sk: bytes, live: Live | None, dead: Dead | None
           ) -> TreeRow | None:
    """The key's tree row: the live item unless a tombstone has a greater version (a
    live item joined its key's delete: its version may equal the tombstone's)."""
    if live is not None and (dead is None or (live[0], live[1]) >= (dead[0], dead[1])):
        return TreeRow(h, pk, sk, live[0], live[1], live[2], live[3], live[4])
    if dead is not None:
        return TreeRow(h, pk, sk, dead[0], dead[1], None, True)
    return None


def state_leaf(table: str, pk: bytes, sk: bytes, live: Live | None, dead: Dead | None) -> int:
    """The leaf of a key's tree row given its live item and tombstone as stored (0 for
    none): `row_leaf(table, newest(...))` without building the row (the write path), so
    by the same rule: a live item at its tombstone's version is the row."""
    if live is not None and (dead is None or (live[0], live[1]) >= (dead[0], dead[1])):
        return item_leaf(table, pk, sk, tree_version(live[0], live[1]), live[2])
    if dead is not None:
        return item_leaf(table, pk, sk, tree_version(dead[0], dead[1]), None)
    return 0


def stored_state(state: Any, hlc: Any, origin: Any, prev_hlc: Any, prev_origin: Any
                 ) -> StoredState:
    """A (state, version, prev) read from a row's columns (a NULL state is the row form,
    b"")."""
    return (bytes(state) if state is not None else b"", (int(hlc), str(origin)),
            (int(prev_hlc), str(prev_origin)) if prev_hlc is not None else None)


def row_leaf(table: str, row: TreeRow | None) -> int:
    """The leaf of a tree row (0 for none)."""
    if row is None:
        return 0
    return item_leaf(table, row.pk, row.sk, tree_version(row.hlc, row.origin), row.item)


def split(value: int) -> tuple[int, int]:
    """A 128-bit hash as (high, low) signed 64-bit integers."""
    high, low = value >> 64, value & _LOW
    return (high - _HALF if high & _SIGN else high), (low - _HALF if low & _SIGN else low)


def join(high: int, low: int) -> int:
    return ((high & _LOW) << 64) | (low & _LOW)


class TreeDeltas:
    """The bucket deltas of one transaction, XORed per (tid, bucket)."""

    __slots__ = ("deltas",)

    def __init__(self) -> None:
        self.deltas: dict[tuple[int, int], int] = {}

    def add(self, tid: int, h: int, delta: int) -> None:
        if delta:
            key = (tid, h >> BUCKET_SHIFT)
            self.deltas[key] = self.deltas.get(key, 0) ^ delta

    def add_bucket(self, tid: int, bucket: int, delta: int) -> None:
        if delta:
            key = (tid, bucket)
            self.deltas[key] = self.deltas.get(key, 0) ^ delta

    def drop_table(self, tid: int) -> None:
        for key in [key for key in self.deltas if key[0] == tid]:
            del self.deltas[key]

    def take(self) -> list[tuple[int, int, int]]:
        """(tid, bucket, delta) of every nonzero delta, in order; the deltas are cleared."""
        taken = [(tid, bucket, delta) for (tid, bucket), delta in sorted(self.deltas.items())
                 if delta]
        self.deltas.clear()
        return taken

    def clear(self) -> None:
        self.deltas.clear()

    def __bool__(self) -> bool:
        return bool(self.deltas)


def group_snapshots(first: int, hashes: list[int], rows: list[TreeRow]
                    ) -> dict[int, tuple[int, list[TreeRow]]]:
    """`TreeAccess.bucket_snapshots`' answer from the hashes of buckets first.. and the
    rows of those buckets in (h, pk, sk) order: only buckets with a hash or a row."""
    found: dict[int, tuple[int, list[TreeRow]]] = {}
    for row in rows:
        bucket = row.h >> BUCKET_SHIFT
        held = found.get(bucket)
        if held is None:
            found[bucket] = (hashes[bucket - first], [row])
        else:
            held[1].append(row)
    for index in [i for i, value in enumerate(hashes) if value]:
        found.setdefault(first + index, (hashes[index], []))
    return found


def write_from_thread(loop: asyncio.AbstractEventLoop, job: Coroutine[Any, Any, Any],
                      timeout_s: float) -> Any:
    """A tree access's `write_now`: run `job` (a submitted write) on the storage's event
    loop from a verify worker thread and wait for its result; from the loop's own thread
    it would wait for itself."""
    invariant(_not_on(loop), "write_now on the event-loop thread would wait for itself")
    return asyncio.run_coroutine_threadsafe(job, loop).result(timeout_s)


def _not_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is not loop
    except RuntimeError:
        return True
