"""MemoryTreeAccess: verify's access to a memory storage, on the event-loop thread.

Reads walk MemoryData directly; a read sees what the last batch left (batches never
stop half-way between two turns of the loop), so every read is a snapshot of its own.
`write_now` runs the job at once as a batch of its own (the storage's `run_now`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from atoll.storage.memory.data import MemoryData
from atoll.storage.memory.reads import MemoryReads
from atoll.storage.memory.rows import Bound
from atoll.storage.memory.txn import item_state_of, tree_row_of
from atoll.storage.protocol import ScanKey, StoredState, TableStateRow, WriteJob
from atoll.storage.treeprotocol import TreeAccess, TreeRow, TreeWriteJob, tree_job
from atoll.storage.trees import bucket_h_range


class MemoryTreeAccess:
    threaded = False

    def __init__(self, storage: MemoryReads, run_now: Callable[[WriteJob], Any]) -> None:
        self._storage = storage
        self._data: MemoryData = storage.data
        self._run_now = run_now

    async def settled(self) -> None:
        return None  # a memory batch is durable when it is readable

    def cursor_vector(self) -> dict[str, tuple[int, int]]:
        return self._storage.cursor_vector()

    def purge_points(self) -> dict[str, tuple[int, int]]:
        return self._storage.purge_points()

    def table_state_row(self, name: str) -> TableStateRow | None:
        return self._data.table_states.get(name)

    def table_tid(self, name: str) -> int | None:
        record = self._data.tables.get(name)
        return None if record is None else record[0]

    def tree_built(self, tid: int) -> int:
        return self._data.tree_built.get(tid) or 0

    def key_count(self, tid: int) -> int:
        rows, dead = self._data.items.get(tid), self._data.tombstones.get(tid)
        return (0 if rows is None else len(rows)) + (0 if dead is None else len(dead))

    def bucket_hashes(self, tid: int, first: int, count: int) -> list[int]:
        hashes = [0] * count
        for (_tid, bucket), value in self._data.trees.walk(((tid, first), True),
                                                           ((tid, first + count), False)):
            hashes[bucket - first] = value
        return hashes

    def bucket_rows(self, tid: int, bucket: int, after: ScanKey | None, limit: int
                    ) -> list[TreeRow]:
        low_h, high_h = bucket_h_range(bucket)
        low: Bound = (after, False) if after is not None else ((low_h,), True)
        high: Bound = ((high_h + 1,), False)
        keys: set[ScanKey] = set()
        for rows in (self._data.items.get(tid), self._data.tombstones.get(tid)):
            if rows is not None:
                keys.update(key for key, _row in rows.first(limit, low, high))
        found = []
        for key in sorted(keys)[:limit]:
            row = tree_row_of(self._data, tid, key)
            if row is not None:
                found.append(row)
        return found

    def bucket_snapshots(self, tid: int, first: int, count: int
                         ) -> dict[int, tuple[int, list[TreeRow]]]:
        total = self.key_count(tid)
        found = {}
        for bucket in range(first, first + count):
            stored = self.bucket_hashes(tid, bucket, 1)[0]
            rows = self.bucket_rows(tid, bucket, None, total)
            if stored or rows:
                found[bucket] = (stored, rows)
        return found

    def tree_rows(self, tid: int, keys: list[ScanKey]) -> list[TreeRow | None]:
        return [tree_row_of(self._data, tid, key) for key in keys]

    def item_states(self, tid: int, keys: list[ScanKey]) -> list[StoredState | None]:
        return [item_state_of(self._data, tid, key) for key in keys]

    def write_now(self, fn: TreeWriteJob) -> Any:
        return self._run_now(tree_job(fn))

    def close(self) -> None:
        return None


if TYPE_CHECKING:
    def _implements(access: MemoryTreeAccess) -> TreeAccess:
        return access
