"""`MemoryTreeStore`: a region's rows, bucket hashes and cursors in memory.

Theory of operation: the `TreeStore` for tests, the simulator and the benchmark. Rows
are kept per table and bucket (`_Row`: version bytes, stored item bytes or None for a
tombstone, the row's CRC-32 as a store keeps it, and its causal metadata, kept as
written: a fetch and a repair carry it, nothing here reads it). Every method that changes rows the
way Atoll does — `write`, `merge_write`, `purge_tombstone`, `drop_table`, a repair —
follows the write-transaction contract of store.py (bucket ^= old_leaf ^ new_leaf), so
the bucket hashes always equal `rebuild_buckets` of the rows. The fault methods
(`flip_byte`, `edit_row`, `drop_row`) change rows *behind Atoll's back*: the tree is not
touched, as a disk error or an operator's SQL would leave it. `copy()` takes a snapshot
(a region "restored from an old backup" is a store replaced by an earlier copy).
Everything is synchronous; each method is atomic because nothing runs concurrently.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from atoll.antientropy.hashing import DEFAULT_BUCKET_BITS, bucket_of, item_leaf
from atoll.antientropy.repair import repair_applies
from atoll.antientropy.store import (
    APPLIED,
    DamageRecord,
    Entry,
    KeyPos,
    RepairLogEntry,
    RepairRecord,
)
from atoll.antientropy.verdict import describe_version
from atoll.antientropy.versions import HLC_SCHEME, VersionScheme
from atoll.checksum import crc32
from atoll.invariant import invariant
from atoll.replication.cursors import ZERO, Cursor


@dataclass(slots=True)
class _Row:
    version: bytes
    item: bytes | None
    crc: int
    causal: bytes = b""  # kept as written, carried by fetch and repair (Entry.causal)


@dataclass(slots=True)
class _Table:
    created: bytes
    dropped: bytes | None
    buckets: list[int]
    rows: dict[int, dict[KeyPos, _Row]]
    count: int = 0


class MemoryTreeStore:
    def __init__(self, region: str, scheme: VersionScheme = HLC_SCHEME,
                 bucket_bits: int = DEFAULT_BUCKET_BITS) -> None:
        self._region = region
        self.scheme = scheme
        self._bucket_bits = bucket_bits
        self.tables: dict[str, _Table] = {}
        self._cursors: dict[str, Cursor] = {}
        self._purged: dict[str, Cursor] = {}
        self.repair_log: list[RepairLogEntry] = []
        self.damage = DamageRecord()

    @property
    def region(self) -> str:
        return self._region

    @property
    def bucket_bits(self) -> int:
        return self._bucket_bits

    # --- tables and cursors ------------------------------------------------------------
    def create_table(self, table: str, created: bytes) -> None:
        invariant(table not in self.tables or self.tables[table].dropped is not None,
                  "table exists")
        self.tables[table] = _Table(created, None, [0] * (1 << self._bucket_bits), {})

    def drop_table(self, table: str, dropped: bytes) -> None:
        state = self.tables[table]
        state.dropped = dropped
        state.buckets = [0] * (1 << self._bucket_bits)  # the tree goes with the rows
        state.rows = {}
        state.count = 0

    def set_cursor(self, origin: str, seq: int, hlc: int) -> None:
        invariant(Cursor(seq, hlc) >= self._cursors.get(origin, ZERO), "cursors move forward")
        self._cursors[origin] = Cursor(seq, hlc)

    def set_purged(self, origin: str, seq: int, hlc: int) -> None:
        invariant(seq <= self._cursors.get(origin, ZERO).seq, "purge past the cursor")
        self._purged[origin] = Cursor(seq, hlc)

    # --- Atoll's write path --------------------------------------------------------------
    def write(self, table: str, pk: bytes, sk: bytes, version: bytes, item: bytes | None,
              causal: bytes = b"") -> None:
        """Store this row (None: a tombstone) in place of the key's row, tree updated."""
        self._put(table, pk, sk, _Row(version, item, 0 if item is None else crc32(item),
                                      causal))

    def merge_write(self, table: str, pk: bytes, sk: bytes, version: bytes,
                    item: bytes | None) -> bool:
        """Apply a replicated write through the merge rule: stored iff it supersedes the
        key's version (or the key has none). Returns whether it was stored."""
        row = self._row(table, pk, sk)
        if row is not None and (row.version == version
                                or not self.scheme.supersedes(version, row.version)):
            return False
        self.write(table, pk, sk, version, item)
        return True

    def purge_tombstone(self, table: str, pk: bytes, sk: bytes) -> None:
        row = self._row(table, pk, sk)
        invariant(row is not None and row.item is None, "only tombstones are purged")
        self._put(table, pk, sk, None)

    def _put(self, table: str, pk: bytes, sk: bytes, row: _Row | None) -> None:
        state = self.tables[table]
        bucket = bucket_of(pk, self._bucket_bits)
        rows = state.rows.setdefault(bucket, {})
        old = rows.get((pk, sk))
        old_leaf = 0 if old is None else item_leaf(table, pk, sk, old.version, old.item)
        new_leaf = 0 if row is None else item_leaf(table, pk, sk, row.version, row.item)
        if row is None:
            rows.pop((pk, sk), None)
        else:
            rows[(pk, sk)] = row
        state.count += (row is not None) - (old is not None)
        state.buckets[bucket] ^= old_leaf ^ new_leaf

    # --- faults: rows changed behind Atoll's back (the tree is not touched) ---------------
    def flip_byte(self, table: str, pk: bytes, sk: bytes, at: int = 0) -> None:
        row = self._row(table, pk, sk)
        invariant(row is not None and row.item, "no stored bytes to flip")
        assert row is not None and row.item is not None
        raw = bytearray(row.item)
        raw[at % len(raw)] ^= 0x01
        row.item = bytes(raw)  # the stored CRC still describes the old bytes

    def edit_row(self, table: str, pk: bytes, sk: bytes, item: bytes) -> None:
        row = self._row(table, pk, sk)
        invariant(row is not None, "no row to edit")
        assert row is not None
        row.item, row.crc = item, crc32(item)  # checksum recomputed: passes

    def drop_row(self, table: str, pk: bytes, sk: bytes) -> None:
        state = self.tables[table]
        rows = state.rows.get(bucket_of(pk, self._bucket_bits), {})
        invariant((pk, sk) in rows, "no row to drop")
        del rows[(pk, sk)]
        state.count -= 1

    def copy(self) -> MemoryTreeStore:
        twin = MemoryTreeStore(self._region, self.scheme, self._bucket_bits)
        for name, state in self.tables.items():
            rows = {b: {k: _Row(r.version, r.item, r.crc, r.causal) for k, r in bucket.items()}
                    for b, bucket in state.rows.items()}
            twin.tables[name] = _Table(state.created, state.dropped, list(state.buckets), rows,
                                       state.count)
        twin._cursors = dict(self._cursors)
        twin._purged = dict(self._purged)
        twin.repair_log = list(self.repair_log)
        return twin

    # --- reads for tests -----------------------------------------------------------------
    def row(self, table: str, pk: bytes, sk: bytes = b"") -> Entry | None:
        row = self._row(table, pk, sk)
        return None if row is None else self._entry(pk, sk, row)

    def rows(self, table: str) -> dict[KeyPos, Entry]:
        state = self.tables.get(table)
        if state is None:
            return {}
        return {key: self._entry(key[0], key[1], row) for bucket in state.rows.values()
                for key, row in bucket.items()}

    def _row(self, table: str, pk: bytes, sk: bytes) -> _Row | None:
        state = self.tables[table]
        return state.rows.get(bucket_of(pk, self._bucket_bits), {}).get((pk, sk))

    @staticmethod
    def _entry(pk: bytes, sk: bytes, row: _Row) -> Entry:
        intact = row.item is None or crc32(row.item) == row.crc
        return Entry(pk, sk, row.version, row.item, intact, row.causal)

    # --- TreeStore ---------------------------------------------------------------------
    def cursors(self) -> Mapping[str, Cursor]:
        return dict(self._cursors)

    def purged(self) -> Mapping[str, Cursor]:
        return dict(self._purged)

    def table_versions(self, table: str) -> tuple[bytes, bytes | None] | None:
        state = self.tables.get(table)
        return None if state is None else (state.created, state.dropped)

    def key_count(self, table: str) -> int:
        state = self.tables.get(table)
        return 0 if state is None else state.count

    def bucket_hashes(self, table: str, first: int, count: int) -> Sequence[int]:
        state = self.tables.get(table)
        if state is None:
            return [0] * count
        return state.buckets[first:first + count]

    def bucket_entries(self, table: str, bucket: int, after: KeyPos | None,
                       limit: int) -> Sequence[Entry]:
        rows = self._bucket_rows(table, bucket)
        keys = sorted(rows)
        start = 0
        if after is not None:
            start = bisect_right(keys, after)
        return [self._entry(k[0], k[1], rows[k]) for k in keys[start:start + limit]]

    def bucket_snapshot(self, table: str, bucket: int) -> tuple[int, Iterable[Entry]]:
        state = self.tables.get(table)
        stored = 0 if state is None else state.buckets[bucket]
        rows = self._bucket_rows(table, bucket)
        return stored, [self._entry(k[0], k[1], r) for k, r in sorted(rows.items())]

    def bucket_snapshots(self, table: str, first: int, count: int
                         ) -> Mapping[int, tuple[int, Sequence[Entry]]]:
        state = self.tables.get(table)
        if state is None:
            return {}
        found: dict[int, tuple[int, Sequence[Entry]]] = {}
        for bucket in range(first, first + count):
            stored, rows = self.bucket_snapshot(table, bucket)
            listed = list(rows)
            if stored or listed:
                found[bucket] = (stored, listed)
        return found

    def _bucket_rows(self, table: str, bucket: int) -> dict[KeyPos, _Row]:
        state = self.tables.get(table)
        return {} if state is None else state.rows.get(bucket, {})

    def correct_bucket(self, table: str, bucket: int, delta: int) -> None:
        self.tables[table].buckets[bucket] ^= delta
        self.damage.note(table, bucket, 0)

    def damaged(self, table: str) -> Iterable[int]:
        return self.damage.buckets(table, 0)

    def fetch(self, table: str, keys: Sequence[KeyPos]) -> Sequence[Entry | None]:
        if table not in self.tables:
            return [None] * len(keys)
        return [self.row(table, pk, sk) for pk, sk in keys]

    def apply_repair(self, record: RepairRecord, now_ms: int) -> RepairLogEntry:
        state = self.tables.get(record.table)
        current = None if state is None else self.row(record.table, record.pk, record.sk)
        outcome = "refused: no such table" if state is None or state.dropped is not None \
            else repair_applies(record, current, self.scheme)
        if outcome == APPLIED:
            self.write(record.table, record.pk, record.sk, record.version, record.item,
                       record.causal)
        replaced = None if current is None else describe_version(current.version, self.scheme)
        entry = RepairLogEntry(now_ms, self._region, record.table, record.pk, record.sk,
                               describe_version(record.version, self.scheme), record.source,
                               replaced,
                               record.reason, record.concurrent, outcome)
        self.repair_log.append(entry)
        return entry
