"""MemoryData: everything a memory storage holds, as SortedRows (rows.py).

It outlives its storage: a `MemoryStorage` built on the data of a closed one sees what
was committed there, as a node restarted on its database file does.
"""

from __future__ import annotations

from atoll.storage.memory.rows import SortedRows
from atoll.storage.protocol import IndexScanKey, RowVersion, ScanKey, TableStateRow

ItemRecord = tuple[bytes, int, int, str, RowVersion | None]  # item, size, hlc, origin, prev
Tombstone = tuple[int, str, RowVersion | None]  # hlc, origin, prev
IndexEntry = tuple[bytes, int]  # item, size
TableRecord = tuple[int, bytes, int, int]  # tid, definition, item count, size in bytes
ChangeRecord = tuple[int, bytes, int]  # hlc, body, the order in which it was applied here
Conflict = tuple[int, int, str, bytes]  # id, detected ms, table name, record
# sid -> table name, label, view type, key schema, created ms, disabled ms, trim point
StreamEntry = tuple[str, str, str, bytes, int, int | None, int]
ShardEntry = tuple[int, int | None, int, int | None]  # first pos, end pos, created, closed
StreamRecord = tuple[int, int, str, bytes]  # created ms, kind, origin, record


class MemoryData:
    def __init__(self) -> None:
        self.tables: SortedRows[str, TableRecord] = SortedRows()
        self.names: SortedRows[int, str] = SortedRows()  # tid -> name of the live tables
        self.items: SortedRows[int, SortedRows[ScanKey, ItemRecord]] = SortedRows()
        self.tombstones: SortedRows[int, SortedRows[ScanKey, Tombstone]] = SortedRows()
        self.indexes: SortedRows[tuple[int, int], SortedRows[IndexScanKey, IndexEntry]] = \
            SortedRows()
        self.changelog: SortedRows[str, SortedRows[int, ChangeRecord]] = SortedRows()
        self.applied = 0  # changelog records appended so far: the next one's apply order
        self.cursors: SortedRows[str, tuple[int, int]] = SortedRows()  # origin -> (seq, hlc)
        self.table_states: SortedRows[str, TableStateRow] = SortedRows()
        self.conflicts: list[Conflict] = []
        self.tokens: SortedRows[str, tuple[bytes, int]] = SortedRows()  # -> (hash, created ms)
        self.kept_tables: SortedRows[str, tuple[bytes, ...]] = SortedRows()  # -> markers
        # table -> (origin, origin_seq) -> (hlc, body): records the purge kept for it
        self.kept: SortedRows[str, SortedRows[tuple[str, int], tuple[int, bytes]]] = \
            SortedRows()
        # hash trees (storage/treeprotocol.py): (tid, bucket) -> hash, nonzero
        # buckets only; tid -> how far the table's tree is built
        self.trees: SortedRows[tuple[int, int], int] = SortedRows()
        self.tree_built: SortedRows[int, int] = SortedRows()
        self.purge_points: SortedRows[str, tuple[int, int]] = SortedRows()  # -> (seq, hlc)
        self.repairs: list[Conflict] = []  # id, repaired ms, table name, record
        self.streams: SortedRows[int, StreamEntry] = SortedRows()
        self.stream_ids: SortedRows[tuple[str, str], int] = SortedRows()  # (name, label) -> sid
        self.stream_shards: SortedRows[tuple[int, int], ShardEntry] = SortedRows()
        self.stream_records: SortedRows[tuple[int, int], StreamRecord] = SortedRows()
        self.stream_pos = 0  # the highest stream position taken so far
        self.stream_sid = 0  # the highest stream id taken so far

    def next_local_seq(self, region: str) -> int:
        """This region's next sequence: after its last change in the changelog, or (after
        a rebuild from a peer's snapshot) after the one recorded as its own cursor."""
        log = self.changelog.get(region)
        logged = log.keys[-1] if log is not None and len(log) else 0
        cursor = self.cursors.get(region)
        return max(logged, cursor[0] if cursor is not None else 0) + 1
