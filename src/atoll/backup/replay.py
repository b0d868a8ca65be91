"""Replay: a table as of a point in time, from a snapshot and the changes after it.

Theory of operation: the state of a table at time T is the merge, by Atoll's own merge
rule (atoll.replication.merge.merge_change), of every change to it stamped at or before
T — physical part of its HLC <= T — that this region holds. A snapshot taken with
cursor vector V holds exactly the merge of the changes at or below V (every one of them
stamped at or before its `covered_ms`, so it serves any T from there on). The changes
to add are those above V and stamped at or before T. Merging is a join (idempotent,
commutative, associative), so the order of the kept records, and records read twice,
do not change the answer.

Memory stays bounded by the keys the replayed changes touch, not by the table: the
changes are read twice (once for the keys they touch, once to merge them) and the
snapshot twice (once for those keys' versions, once to stream the answer), so only the
touched keys' versions are held at once.

Pure: the snapshot and the changes come from callables that open a fresh pass each time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from atoll.clock.hlc import hlc_physical_ms
from atoll.replication.change import (
    Change,
    ItemKey,
    ItemWrite,
    TableOp,
    Version,
    decode_change,
    item_json,
)
from atoll.replication.merge import Stored, TableState, decide_table, merge_change
from atoll.storage.protocol import SnapshotRow

ArchivedRecord = tuple[str, int, int, bytes]  # (origin, seq, hlc, frame)


@dataclass(frozen=True)
class ReplayedTable:
    """The table at T: its definition then (None if it did not exist), and its items."""

    definition: dict[str, Any] | None
    items: Iterable[bytes]  # item JSON, each once, in no particular order


def _relevant(records: Callable[[], Iterator[ArchivedRecord]], table: str,
              cursors: dict[str, int], until_ms: int) -> Iterator[Change]:
    """The changes above the snapshot's cursors and stamped at or before `until_ms`,
    cut down to their ops on `table`."""
    for origin, seq, hlc, frame in records():
        if seq <= cursors.get(origin, 0) or hlc_physical_ms(hlc) > until_ms:
            continue
        change = decode_change(frame)
        ops = tuple(op for op in change.ops if op.table == table)
        if ops:
            yield Change(change.origin, change.seq, change.hlc, ops, change.checksum)


def replay(table: str, state: TableState, cursors: dict[str, int], until_ms: int,
           snapshot: Callable[[], Iterator[SnapshotRow]],
           records: Callable[[], Iterator[ArchivedRecord]]) -> ReplayedTable:
    """`table` as of `until_ms`: `state` and `snapshot` (live items and tombstones) as
    the snapshot holds them, `records` the changes after it (see the module doc)."""
    touched: set[ItemKey] = set()
    final = state
    for change in _relevant(records, table, cursors, until_ms):
        for op in change.ops:
            if isinstance(op, TableOp):
                final = decide_table(final, op, change.version) or final
            else:
                touched.add(op.key)
    overlay: dict[ItemKey, Stored | None] = dict.fromkeys(touched)
    if touched:
        for _h, pk, sk, hlc, origin, item in snapshot():
            key = (table, pk, sk)
            if key in overlay:
                current = overlay[key]
                version = Version(hlc, origin)
                if current is None or version > current.version:
                    overlay[key] = Stored(version, orjson.loads(item) if item else None)
        live = TableState(state.created, state.version, state.definition or {})
        for change in _relevant(records, table, cursors, until_ms):
            items = tuple(op for op in change.ops if isinstance(op, ItemWrite))
            if not items:
                continue
            effects = merge_change(Change(change.origin, change.seq, change.hlc, items,
                                          change.checksum),
                                   overlay.get, lambda _name: live)
            overlay.update(effects.items)
    if final.definition is None:
        return ReplayedTable(None, ())
    return ReplayedTable(final.definition, _items(table, snapshot, overlay))


def _items(table: str, snapshot: Callable[[], Iterator[SnapshotRow]],
           overlay: dict[ItemKey, Stored | None]) -> Iterator[bytes]:
    for _h, pk, sk, _hlc, _origin, item in snapshot():
        if item is None:
            continue
        key = (table, pk, sk)
        if key in overlay:
            continue  # replaced below by its merged version
        yield item
    for stored in overlay.values():
        if stored is not None and stored.item is not None:
            yield item_json(stored.item)
