"""MemoryReads: every read of the memory storage, as ranges of SortedRows (rows.py).

A Query's sort-key bounds become bounds on full keys: within one partition (h, pk), the
keys run from (h, pk) (below all of them) to (h, successor(pk)) (above all of them), and a
bound on sk becomes (h, pk, sk) — or (h, pk, successor(sk)) where an index row's longer
key must fall on the other side of it.
"""

from __future__ import annotations

from collections.abc import Iterator

from atoll.storage.memory.data import MemoryData
from atoll.storage.memory.rows import Bound, successor
from atoll.storage.memory.snapshots import MemoryChangesSnapshot, MemoryTableSnapshot
from atoll.storage.pages import PageColumns, page_columns
from atoll.storage.protocol import (
    IndexScanKey,
    ItemRow,
    ReplicaRow,
    ScanKey,
    ShardRow,
    SortKeyBound,
    StreamRecordRow,
    StreamRow,
    TableStateRow,
)


class MemoryReads:
    """The reads of MemoryStorage (which adds the writes)."""

    def __init__(self, data: MemoryData, region: str) -> None:
        self.data = data
        self.region = region

    # --- items ---------------------------------------------------------------------------
    def get_item(self, tid: int, h: int, pk: bytes, sk: bytes) -> ItemRow | None:
        rows = self.data.items.get(tid)
        row = rows.get((h, pk, sk)) if rows is not None else None
        return (row[0], row[1]) if row is not None else None

    def get_items_snapshot(self, keys: list[tuple[int, int, bytes, bytes]]
                           ) -> list[ItemRow | None]:
        """One turn of the event loop, so one state."""
        return [self.get_item(*key) for key in keys]

    def query_items(self, tid: int, h: int, pk: bytes, lower: SortKeyBound | None,
                    upper: SortKeyBound | None, forward: bool, limit: int | None = None
                    ) -> Iterator[tuple[bytes, bytes, int]]:
        rows = self.data.items.get(tid)
        if rows is None:
            return
        low: Bound = ((h, pk, lower[0]), lower[1]) if lower is not None else ((h, pk), True)
        high: Bound = ((h, pk, upper[0]), upper[1]) if upper is not None \
            else ((h, successor(pk)), False)
        for n, (key, row) in enumerate(rows.walk(low, high, not forward)):
            if n == limit:
                return
            yield key[2], row[0], row[1]

    def query_page(self, tid: int, h: int, pk: bytes, lower: SortKeyBound | None,
                   upper: SortKeyBound | None, forward: bool, limit: int) -> list[ItemRow]:
        return [(row[1], row[2])
                for row in self.query_items(tid, h, pk, lower, upper, forward, limit)]

    def scan_items(self, tid: int, after: ScanKey | None, h_end: int | None,
                   h_start: int = 0, limit: int | None = None
                   ) -> Iterator[tuple[int, bytes, bytes, bytes, int]]:
        rows = self.data.items.get(tid)
        if rows is None:
            return
        for n, (key, row) in enumerate(rows.walk(_scan_low(after, h_start), _scan_high(h_end))):
            if n == limit:
                return
            yield key[0], key[1], key[2], row[0], row[1]

    def scan_page(self, tid: int, after: ScanKey | None, h_end: int | None, h_start: int,
                  limit: int, sized: bool = True) -> PageColumns:
        return page_columns((row[3], row[4])
                            for row in self.scan_items(tid, after, h_end, h_start, limit))

    def collection_size(self, tid: int, h: int, pk: bytes) -> int:
        low: Bound = ((h, pk), True)
        high: Bound = ((h, successor(pk)), False)
        total = 0
        rows = self.data.items.get(tid)
        if rows is not None:
            total += sum(row[1] for _key, row in rows.walk(low, high))
        for _tid_iid, index in self.data.indexes.walk(((tid,), True), ((tid + 1,), False)):
            total += sum(entry[1] for key, entry in index.walk(low, high) if key[3] == pk)
        return total

    # --- secondary indexes ---------------------------------------------------------------
    def query_index(self, tid: int, iid: int, h: int, pk: bytes, lower: SortKeyBound | None,
                    upper: SortKeyBound | None, forward: bool,
                    start: tuple[bytes, bytes, bytes] | None, limit: int | None = None
                    ) -> Iterator[tuple[bytes, bytes, bytes, bytes, int]]:
        rows = self.data.indexes.get((tid, iid))
        if rows is None:
            return
        # an index key (h, pk, sk, base_pk, base_sk) is above (h, pk, sk), so an inclusive
        # upper bound and an exclusive lower one move to sk's successor
        low: Bound = ((h, pk), True) if lower is None else (
            ((h, pk, lower[0]), True) if lower[1] else ((h, pk, successor(lower[0])), True))
        high: Bound = ((h, successor(pk)), False) if upper is None else (
            ((h, pk, successor(upper[0])), False) if upper[1] else ((h, pk, upper[0]), False))
        if start is not None:
            bound: Bound = ((h, pk, *start), False)
            if forward:
                low = _tighter_low(low, bound)
            else:
                high = _tighter_high(high, bound)
        for n, (key, (item, size)) in enumerate(rows.walk(low, high, not forward)):
            if n == limit:
                return
            yield key[2], key[3], key[4], item, size

    def scan_index(self, tid: int, iid: int, after: IndexScanKey | None, h_end: int | None,
                   h_start: int = 0, limit: int | None = None
                   ) -> Iterator[tuple[int, bytes, bytes, bytes, bytes, bytes, int]]:
        rows = self.data.indexes.get((tid, iid))
        if rows is None:
            return
        walk = rows.walk(_scan_low(after, h_start), _scan_high(h_end))
        for n, (key, (item, size)) in enumerate(walk):
            if n == limit:
                return
            yield key[0], key[1], key[2], key[3], key[4], item, size

    def query_index_page(self, tid: int, iid: int, h: int, pk: bytes,
                         lower: tuple[bytes, bool] | None, upper: tuple[bytes, bool] | None,
                         forward: bool, start: tuple[bytes, bytes, bytes] | None, limit: int,
                         sized: bool = True) -> PageColumns:
        return page_columns((row[3], row[4]) for row in self.query_index(
            tid, iid, h, pk, lower, upper, forward, start, limit))

    def scan_index_page(self, tid: int, iid: int,
                        after: tuple[int, bytes, bytes, bytes, bytes] | None,
                        h_end: int | None, h_start: int, limit: int, sized: bool = True
                        ) -> PageColumns:
        return page_columns((row[5], row[6]) for row in self.scan_index(
            tid, iid, after, h_end, h_start, limit))

    def index_stats(self, tid: int, iid: int) -> tuple[int, int]:
        rows = self.data.indexes.get((tid, iid))
        if rows is None:
            return 0, 0
        return len(rows), sum(size for _item, size in rows.rows.values())

    # --- catalog -------------------------------------------------------------------------
    def load_tables(self) -> list[tuple[str, int, bytes]]:
        return [(name, tid, definition)
                for name, (tid, definition, _count, _size) in self.data.tables.walk(None, None)]

    def table_stats(self, tid: int) -> tuple[int, int]:
        name = self.data.names.get(tid)
        record = self.data.tables.get(name) if name is not None else None
        return (record[2], record[3]) if record is not None else (0, 0)

    def table_state_row(self, name: str) -> TableStateRow | None:
        return self.data.table_states.get(name)

    def snapshot_table(self, name: str) -> MemoryTableSnapshot | None:
        """Copies of the table's rows as they are now (snapshots.py)."""
        record = self.data.tables.get(name)
        if record is None:
            return None
        tid, definition, count, size = record
        items = self.data.items.get(tid)
        dead = self.data.tombstones.get(tid)
        return MemoryTableSnapshot(
            tid, definition, self.data.table_states.get(name), self.cursor_vector(), count, size,
            items.first(len(items)) if items is not None else [],
            dead.first(len(dead)) if dead is not None else [])

    def load_table_states(self) -> list[tuple[str, int, str, int, str, bytes | None]]:
        return [(name, *state) for name, state in self.data.table_states.walk(None, None)]

    def snapshot_changes(self) -> MemoryChangesSnapshot:
        """Copies of the changelog and the kept logs as they are now (snapshots.py)."""
        changelog = {origin: [(seq, (hlc, body)) for seq, (hlc, body, _applied)
                              in log.walk(None, None)]
                     for origin, log in self.data.changelog.walk(None, None)}
        kept: dict[tuple[str, str], list[tuple[int, tuple[int, bytes]]]] = {}
        for table, rows in self.data.kept.walk(None, None):
            for (origin, seq), record in rows.walk(None, None):
                kept.setdefault((table, origin), []).append((seq, record))
        return MemoryChangesSnapshot(self.cursor_vector(),
                                     dict(self.data.kept_tables.walk(None, None)), changelog, kept)

    # --- changelog and cursors -----------------------------------------------------------
    def last_local_hlc(self) -> int:
        log = self.data.changelog.get(self.region)
        return max((hlc for hlc, _body, _applied in log.rows.values()), default=0) \
            if log is not None else 0

    def cursor_vector(self) -> dict[str, tuple[int, int]]:
        result = dict(self.data.cursors.walk(None, None))
        log = self.data.changelog.get(self.region)
        if log is not None and len(log):
            seq = log.keys[-1]
            latest = (seq, log.rows[seq][0])
            if latest > result.get(self.region, (0, 0)):
                result[self.region] = latest
        return result

    def cursors(self) -> dict[str, int]:
        return {origin: seq for origin, (seq, _hlc) in self.cursor_vector().items()}

    def log_start(self) -> dict[str, int]:
        result = {}
        for origin in self.cursor_vector():
            log = self.data.changelog.get(origin)
            if log is not None and len(log):
                result[origin] = log.keys[0] - 1
        return result

    def changes_since(self, origin: str, after_seq: int, limit: int
                      ) -> list[tuple[int, int, bytes]]:
        log = self.data.changelog.get(origin)
        if log is None:
            return []
        return [(seq, hlc, body) for seq, (hlc, body, _applied)
                in log.first(limit, (after_seq, False))]

    def snapshot_rows(self, tid: int, after: ScanKey | None, limit: int, tombstones: bool
                      ) -> list[ReplicaRow]:
        low: Bound | None = (after, False) if after is not None else None
        if tombstones:
            dead = self.data.tombstones.get(tid)
            return [] if dead is None else [
                (key[0], key[1], key[2], tomb[0], tomb[1], None, tomb[2], tomb[3])
                for key, tomb in dead.first(limit, low)]
        live = self.data.items.get(tid)
        return [] if live is None else [
            (key[0], key[1], key[2], row[2], row[3], row[0], row[4], row[5])
            for key, row in live.first(limit, low)]

    # --- streams -------------------------------------------------------------------------
    def streams(self) -> list[StreamRow]:
        return [(sid, *entry) for sid, entry in self.data.streams.walk(None, None)]

    def stream_shards(self, sid: int) -> list[ShardRow]:
        return [(key[1], *shard) for key, shard
                in self.data.stream_shards.walk(((sid,), True), ((sid + 1,), False))]

    def stream_records(self, sid: int, from_pos: int, limit: int) -> list[StreamRecordRow]:
        return [(key[1], *record) for key, record in self.data.stream_records.first(
            limit, ((sid, from_pos), True), ((sid + 1,), False))]

    def stream_last_pos(self, sid: int) -> int:
        for key, _record in self.data.stream_records.walk(((sid,), True), ((sid + 1,), False),
                                                          True):
            return key[1]
        entry = self.data.streams.get(sid)
        return entry[6] if entry is not None else 0

    def conflicts(self, after_id: int = 0, limit: int = 100
                  ) -> list[tuple[int, int, str, bytes]]:
        records = self.data.conflicts  # numbered 1, 2, 3... in order
        begin = max(after_id, 0)
        return records[begin:begin + max(limit, 0)]

    def repairs(self, after_id: int = 0, limit: int = 100) -> list[tuple[int, int, str, bytes]]:
        records = self.data.repairs  # numbered 1, 2, 3... in order
        begin = max(after_id, 0)
        return records[begin:begin + max(limit, 0)]

    def purge_points(self) -> dict[str, tuple[int, int]]:
        return dict(self.data.purge_points.walk(None, None))


def _scan_low(after: tuple[int, bytes, bytes] | IndexScanKey | None, h_start: int) -> Bound:
    """A Scan starts strictly after its last key, else at its segment's first hash."""
    return (after, False) if after is not None else ((h_start,), True)


def _scan_high(h_end: int | None) -> Bound | None:
    return ((h_end,), False) if h_end is not None else None


def _tighter_low(a: Bound, b: Bound) -> Bound:
    """Of two lower bounds, the one fewer keys pass (every key above it is above both)."""
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    return a if not a[1] else b


def _tighter_high(a: Bound, b: Bound) -> Bound:
    if a[0] != b[0]:
        return a if a[0] < b[0] else b
    return a if not a[1] else b
