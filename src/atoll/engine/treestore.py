"""`StorageTreeStore`: the verify core's `TreeStore` over this node's storage.

Theory of operation: `antientropy.serve` answers a session's requests from a
`TreeStore`; this one reads through a `storage.TreeAccess` (verify's own connection on
SQLite, so the shell can serve off the event loop) and writes — a scrub's correction, a
repair — through `TreeAccess.write_now`, as ordinary write jobs in the storage's batch
order. Tables are named (a table's tid differs between regions; its name and creation
version do not). Versions are `tree_version(hlc, origin)`, the bytes the storage hashes
into its leaves, so what is listed here is what the trees were built from. A fetch also
reads each row's causal state (`TreeAccess.item_states`, `repairs.fetched_entry`),
which the repair stores with the item.

A scrub reads its buckets with `bucket_snapshots`, one snapshot per request's run of
buckets (one read transaction instead of one per bucket: a deep pass over 65,536
buckets is dominated by it otherwise). A single bucket's snapshot (sub-bucket hashes)
is read SNAPSHOT_BUCKETS at a time, with those after it, and kept for at most
SNAPSHOT_TTL_S.
A bucket's hash and rows read together stay a valid basis for its correction even after
later writes: a write changes both by the same leaf delta.

A table whose tree is not complete yet (built at start for data written before trees
were kept: atoll.node.verifier) cannot be compared: `bucket_hashes` raises
`TreeNotReady` rather than claim an empty tree, and the shell answers an Error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from atoll.antientropy import Entry, RepairLogEntry, RepairRecord
from atoll.antientropy.store import DamageRecord, KeyPos
from atoll.engine.repairs import fetched_entry, row_entry
from atoll.model.keys import partition_hash
from atoll.replication.cursors import Cursor
from atoll.storage.treeprotocol import (
    TREE_BUCKET_BITS,
    TREE_BUCKETS,
    TreeAccess,
    TreeRow,
    TreeWriteJob,
    tree_version,
)

SNAPSHOT_BUCKETS = 256
SNAPSHOT_TTL_S = 1.0


class TreeNotReady(Exception):
    """A table's tree is still being built: it cannot be compared yet."""


class StorageTreeStore:
    def __init__(self, access: TreeAccess, region: str,
                 repair_job: Callable[[RepairRecord, int], TreeWriteJob]) -> None:
        self.access = access
        self._region = region
        self._repair_job = repair_job
        # prefetched bucket snapshots: (table, bucket) -> (hash, rows), and when read
        self._snapshots: dict[tuple[str, int], tuple[int, list[TreeRow]]] = {}
        self._snapshots_read_s = 0.0
        self.damage = DamageRecord()  # what scrubs served here corrected (soft evidence)

    @property
    def region(self) -> str:
        return self._region

    @property
    def bucket_bits(self) -> int:
        return TREE_BUCKET_BITS

    def cursors(self) -> Mapping[str, Cursor]:
        return {o: Cursor(seq, hlc) for o, (seq, hlc) in self.access.cursor_vector().items()}

    def purged(self) -> Mapping[str, Cursor]:
        return {o: Cursor(seq, hlc) for o, (seq, hlc) in self.access.purge_points().items()}

    def table_versions(self, table: str) -> tuple[bytes, bytes | None] | None:
        row = self.access.table_state_row(table)
        if row is None:
            return None
        created = tree_version(row[0], row[1])
        return created, (tree_version(row[2], row[3]) if row[4] is None else None)

    def _tid(self, table: str) -> int | None:
        return self.access.table_tid(table)

    def key_count(self, table: str) -> int:
        tid = self._tid(table)
        return 0 if tid is None else self.access.key_count(tid)

    def bucket_hashes(self, table: str, first: int, count: int) -> Sequence[int]:
        tid = self._tid(table)
        if tid is None:
            return [0] * count
        built = self.access.tree_built(tid)
        if built < TREE_BUCKETS:
            raise TreeNotReady(f"the tree of {table} in {self._region} is being built "
                               f"({100 * built // TREE_BUCKETS}%)")
        return self.access.bucket_hashes(tid, first, count)

    def bucket_entries(self, table: str, bucket: int, after: KeyPos | None,
                       limit: int) -> Sequence[Entry]:
        tid = self._tid(table)
        if tid is None:
            return []
        start = None if after is None else (partition_hash(after[0]), after[0], after[1])
        return [row_entry(row) for row in self.access.bucket_rows(tid, bucket, start, limit)]

    def bucket_snapshot(self, table: str, bucket: int) -> tuple[int, Iterable[Entry]]:
        now_s = time.monotonic()
        if now_s - self._snapshots_read_s > SNAPSHOT_TTL_S:
            self._snapshots.clear()
        found = self._snapshots.pop((table, bucket), None)
        if found is None:
            tid = self._tid(table)
            if tid is None:
                return 0, []
            count = min(SNAPSHOT_BUCKETS, TREE_BUCKETS - bucket)
            snapshots = self.access.bucket_snapshots(tid, bucket, count)
            self._snapshots = {(table, bucket + i): snapshots.get(bucket + i, (0, []))
                               for i in range(count)}
            self._snapshots_read_s = now_s
            found = self._snapshots.pop((table, bucket))
        stored, rows = found
        return stored, [row_entry(row) for row in rows]

    def bucket_snapshots(self, table: str, first: int, count: int
                         ) -> Mapping[int, tuple[int, Sequence[Entry]]]:
        tid = self._tid(table)
        if tid is None:
            return {}
        return {bucket: (stored, [row_entry(row) for row in rows]) for bucket, (stored, rows)
                in self.access.bucket_snapshots(tid, first, count).items()}

    def correct_bucket(self, table: str, bucket: int, delta: int) -> None:
        tid = self._tid(table)
        if tid is not None:
            self.access.write_now(lambda txn: txn.tree_correct(tid, bucket, delta))
            self.damage.note(table, bucket, int(time.monotonic() * 1000))

    def damaged(self, table: str) -> Iterable[int]:
        return self.damage.buckets(table, int(time.monotonic() * 1000))

    def fetch(self, table: str, keys: Sequence[KeyPos]) -> Sequence[Entry | None]:
        tid = self._tid(table)
        if tid is None:
            return [None] * len(keys)
        scan = [(partition_hash(pk), pk, sk) for pk, sk in keys]
        rows = self.access.tree_rows(tid, scan)
        states = self.access.item_states(tid, scan)
        return [fetched_entry(row, found) for row, found in zip(rows, states)]

    def apply_repair(self, record: RepairRecord, now_ms: int) -> RepairLogEntry:
        entry: RepairLogEntry = self.access.write_now(self._repair_job(record, now_ms))
        return entry
