"""`TreeStore`: what a storage must provide for its region to be verified and repaired.

Theory of operation: a store keeps, per table, one hash per bucket (hashing.py): the
XOR of the leaf hashes of the rows — live items and tombstones — in that bucket, kept
up to date by the store's own write path. Verify reads those hashes, lists a bucket's
rows, rebuilds buckets from rows (the scrub), corrects a bucket whose rows were changed
behind Atoll's back, fetches rows whole and applies repairs. `serve` (serve.py) is the
only caller; `MemoryTreeStore` (memory.py) is the implementation for tests and the
simulator.

THE WRITE-TRANSACTION CONTRACT (SQLite, PostgreSQL and the memory store alike). In the
same transaction as every change to a row of a table — a local put/update/delete, an
applied change, a tombstone purge, a repair, the rows dropped with a table:

  1. old_leaf = item_leaf(table, pk, sk, old_version_bytes, old_item_bytes) of the row
     as it is stored before the change (whatever its checksum says), or 0 if there was
     no row (neither a live item nor a tombstone);
  2. new_leaf = item_leaf(...) of the row as it will be stored, or 0 if none remains;
  3. tree[table][bucket_of(pk)] ^= old_leaf ^ new_leaf.

The leaves are computed from the stored bytes and the canonical version bytes
(`versions.encode_hlc_version` today), never from a copy kept elsewhere, so the tree is
always the XOR of the rows exactly as Atoll wrote them: a row changed or deleted behind
Atoll's back makes its bucket disagree with its rows, which the scrub finds. The cost is
O(1) per write: two BLAKE2b calls per leaf and one small row update per touched bucket
(a group-commit batch may XOR its deltas per bucket first: `TreeDelta`). A store that
keeps the bucket array in memory must restore it when the transaction rolls back.
Tables dropped: their tree goes with their rows. A store that has rows but no tree yet
(existing data, or a tree lost) rebuilds it with `rebuild_buckets` before serving
verify; until then `bucket_hashes` must not claim an empty tree.

Reads: `cursors` must be read before any row a session reads afterwards (serve reads
them in the opening request): the verdict's argument depends on it (verdict.py).
`bucket_snapshot` returns the stored hash and the bucket's rows from ONE consistent
snapshot (`bucket_snapshots` the same for a run of buckets). `correct_bucket` and `apply_repair` are write transactions of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from atoll.antientropy.hashing import TreeShape, bucket_of, item_leaf
from atoll.replication.cursors import Cursor

KeyPos = tuple[bytes, bytes]  # (encoded partition key, encoded sort key or b"")


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored row: `item` is its stored bytes (None for a tombstone); `intact` says
    whether they pass the row's stored checksum. `causal` is the row's causal metadata
    as its store keeps it beside the version (the item's merge state), opaque to verify:
    a fetch carries it to the repair, which stores it with the item, so a repaired row
    merges later writes exactly as the source's does. Only fetched rows carry it
    (listings compare versions and contents); b"" says the version alone is the row's."""

    pk: bytes
    sk: bytes
    version: bytes
    item: bytes | None
    intact: bool = True
    causal: bytes = b""

    def leaf(self, table: str) -> int:
        return item_leaf(table, self.pk, self.sk, self.version, self.item)


@dataclass(frozen=True, slots=True)
class RepairRecord:
    """Write `version`/`item` (None: a tombstone) for one key in the target region,
    taken whole from region `source`. `replaces` is the leaf of the row verify saw at
    the target (0: no row there)."""

    table: str
    pk: bytes
    sk: bytes
    version: bytes
    item: bytes | None
    source: str
    replaces: int
    reason: str
    concurrent: bool = False  # the replaced version was a concurrent write (a conflict)
    causal: bytes = b""  # the source row's causal metadata (Entry.causal)


@dataclass(frozen=True, slots=True)
class RepairLogEntry:
    """One repair, as the target region records it (readable like a conflict)."""

    repaired_ms: int
    region: str
    table: str
    pk: bytes
    sk: bytes
    winner: str
    source: str
    replaced: str | None
    reason: str
    conflict: bool
    outcome: str


APPLIED = "applied"
ALREADY = "already"  # the target already holds the winner: nothing written
SKIPPED = "skipped"  # the row changed since verify saw it, to a version as new: not touched


class TreeStore(Protocol):
    @property
    def region(self) -> str: ...

    @property
    def bucket_bits(self) -> int: ...

    def cursors(self) -> Mapping[str, Cursor]:
        """Per origin, the highest contiguous (seq, hlc) applied (replication's cursors)."""
        ...

    def purged(self) -> Mapping[str, Cursor]:
        """Per origin, the newest changelog record purged here as (seq, hlc); absent if
        none. A peer whose cursor is below it can no longer catch up from this log."""
        ...

    def table_versions(self, table: str) -> tuple[bytes, bytes | None] | None:
        """(creation version, deletion version or None while live) of the table's
        replicated state, as version bytes; None if this region never saw the table."""
        ...

    def key_count(self, table: str) -> int:
        """Rows (live items and tombstones) of the table; an estimate is fine."""
        ...

    def bucket_hashes(self, table: str, first: int, count: int) -> Sequence[int]:
        """The stored hashes of buckets first..first+count-1 (0 for an empty bucket)."""
        ...

    def bucket_entries(self, table: str, bucket: int, after: KeyPos | None,
                       limit: int) -> Sequence[Entry]:
        """At most `limit` rows of `bucket`, in the store's own stable order, starting
        after the row `after` (a key returned earlier; None: from the start)."""
        ...

    def bucket_snapshot(self, table: str, bucket: int) -> tuple[int, Iterable[Entry]]:
        """The stored hash of `bucket` and all its rows, from one snapshot (the caller
        consumes the rows at once)."""
        ...

    def bucket_snapshots(self, table: str, first: int, count: int
                         ) -> Mapping[int, tuple[int, Sequence[Entry]]]:
        """For buckets first..first+count-1 (count <= 4096), bucket -> its stored hash
        and all its rows, each bucket from one snapshot; buckets with neither a hash nor
        a row may be left out (the scrub's read: one call instead of one per bucket,
        most of which are empty in a small table)."""
        ...

    def correct_bucket(self, table: str, bucket: int, delta: int) -> None:
        """XOR `delta` into the stored hash (the scrub found its rows changed behind
        Atoll's back): one write transaction. The bucket is remembered as damaged."""
        ...

    def damaged(self, table: str) -> Iterable[int]:
        """Buckets of the table that scrubs here corrected recently (kept for a while,
        bounded; soft state): evidence, sent with every Open, that lets a later session
        — run by any region — tell the damaged copy of a version from the good one
        after the scrub that found it made the tree agree with the changed rows."""
        ...

    def fetch(self, table: str, keys: Sequence[KeyPos]) -> Sequence[Entry | None]:
        """The rows of `keys`, whole, with their causal metadata (None where there is no
        row)."""
        ...

    def apply_repair(self, record: RepairRecord, now_ms: int) -> RepairLogEntry:
        """In ONE write transaction: read the key's row, decide with
        `repair.repair_applies(record, row, scheme)`, and if it applies write the
        record's row with its causal metadata as the store's merge rule does for any
        write (a tombstone removes the live item and its index entries) with the tree
        updated as for any write; append the returned entry to the repair log.
        Repairs write no changelog record and move no cursor."""
        ...


class DamageRecord:
    """Buckets found changed behind Atoll's back, per table, with when (ms of the
    caller's clock): at most `max_buckets` per table, each for `kept_ms`."""

    def __init__(self, kept_ms: int = 6 * 3600 * 1000, max_buckets: int = 4096) -> None:
        self.kept_ms = kept_ms
        self.max_buckets = max_buckets
        self._found: dict[str, dict[int, int]] = {}

    def note(self, table: str, bucket: int, now_ms: int) -> None:
        found = self._found.setdefault(table, {})
        found[bucket] = now_ms
        while len(found) > self.max_buckets:
            del found[min(found, key=found.__getitem__)]

    def buckets(self, table: str, now_ms: int) -> list[int]:
        found = self._found.get(table, {})
        for bucket in [b for b, at in found.items() if now_ms - at > self.kept_ms]:
            del found[bucket]
        return sorted(found)


class TreeDelta:
    """Bucket deltas of one write transaction, XORed per (table, bucket): a
    group-commit batch writes each touched bucket once."""

    __slots__ = ("deltas", "bucket_bits")

    def __init__(self, bucket_bits: int) -> None:
        self.bucket_bits = bucket_bits
        self.deltas: dict[tuple[str, int], int] = {}

    def add(self, table: str, pk: bytes, old_leaf: int, new_leaf: int) -> None:
        delta = old_leaf ^ new_leaf
        if delta:
            key = (table, bucket_of(pk, self.bucket_bits))
            self.deltas[key] = self.deltas.get(key, 0) ^ delta

    def nonzero(self) -> list[tuple[str, int, int]]:
        return [(table, bucket, delta) for (table, bucket), delta in
                sorted(self.deltas.items()) if delta]


def rebuild_buckets(table: str, entries: Iterable[Entry], shape: TreeShape) -> list[int]:
    """Every bucket hash of a table, computed from its rows (a table's first tree, or
    one rebuilt after corruption)."""
    buckets = [0] * shape.buckets
    for entry in entries:
        buckets[shape.bucket_of(entry.pk)] ^= entry.leaf(table)
    return buckets


@dataclass(frozen=True, slots=True)
class BucketScrub:
    bucket: int
    stored: int
    rebuilt: int
    rows: int
    corrupt: tuple[KeyPos, ...]

    @property
    def damaged(self) -> bool:
        return self.stored != self.rebuilt


def scrub_bucket(table: str, bucket: int, stored: int, entries: Iterable[Entry]) -> BucketScrub:
    rebuilt, rows, corrupt = 0, 0, []
    for entry in entries:
        rebuilt ^= entry.leaf(table)
        rows += 1
        if not entry.intact:
            corrupt.append((entry.pk, entry.sk))
    return BucketScrub(bucket, stored, rebuilt, rows, tuple(corrupt))
