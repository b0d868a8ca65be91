"""Hash trees in a storage: what a backend that keeps them promises (DESIGN.md decision 7;
atoll.antientropy.store states the rule), and verify's access to them.

Theory of operation
- Per table, a backend keeps TREE_BUCKETS 128-bit bucket hashes. A key's *tree row* is
  its newest state: the live item if there is one and no tombstone of a greater (hlc,
  origin), else the tombstone, else nothing. Its leaf is `antientropy.item_leaf(table
  name, pk, sk, version, item)` with version `tree_version(hlc, origin)` and the item's
  stored bytes (None for a tombstone); a key without a tree row has no leaf. A key's
  bucket is `h >> (32 - TREE_BUCKET_BITS)` (h is the partition key's hash, so this is
  `antientropy.bucket_of(pk)`). A bucket's hash is the XOR of its keys' leaves.
- Every write that changes a key's tree row — put, delete, delete_absent,
  purge_tombstones, a repair — XORs `old leaf ^ new leaf` into the key's bucket in the
  same transaction, the old leaf computed from the row's stored bytes as they are
  (whatever their checksum says), so the tree stays the XOR of the rows exactly as
  Atoll wrote them: a row changed behind Atoll's back makes its bucket disagree with its
  rows, which a scrub (`TreeAccess.bucket_snapshots`, `TreeWriteTxn.tree_correct`) finds.
  `drop_table` removes the table's tree with its rows; `create_table` starts an empty,
  complete tree. The version carries no `prev`: a region rebuilt from a snapshot holds
  none, and the content of a version does not depend on it.
- A tree is *built* through bucket `tree_built(tid)`: buckets below it hold the XOR of
  their rows. A backend keeping no tree for a table (data written before trees
  existed, or with trees switched off) reports 0 and `tree_build` builds it a chunk at
  a time while writes go on (each chunk replaces its buckets' hashes with the XOR of
  their rows in the chunk's transaction; deltas written to buckets not built yet are
  overwritten then). Verify uses a table's tree only once it is complete.
- A storage constructed with `trees=False` keeps no trees at all (no upkeep, every
  table reported unbuilt): for measuring what the upkeep costs.
- `TreeWriteTxn` and `TreeStorage` are `WriteTxn` and `Storage` with the tree methods:
  SQLite, PostgreSQL and memory keep trees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, cast

import orjson

from atoll.storage.protocol import (
    ScanKey,
    Storage,
    StoredState,
    TableStateRow,
    WriteJob,
    WriteTxn,
)

TREE_BUCKET_BITS = 16
TREE_BUCKETS = 1 << TREE_BUCKET_BITS


class TreeRow(NamedTuple):
    """A key's tree row (see the module doc): `item` is the live item's stored bytes,
    None for a tombstone; `intact` says whether those bytes pass the row's checksum;
    `size` is the live item's stored size (0 for a tombstone)."""

    h: int
    pk: bytes
    sk: bytes
    hlc: int
    origin: str
    item: bytes | None
    intact: bool = True
    size: int = 0


def tree_version(hlc: int, origin: str) -> bytes:
    """A tree row's canonical version bytes: orjson [hlc, origin, null], as
    `atoll.antientropy.encode_hlc_version(Version(hlc, origin), None)` writes them."""
    return orjson.dumps([hlc, origin, None])


class TreeWriteTxn(WriteTxn, Protocol):
    """The write transaction of a storage that keeps hash trees (see the module doc;
    `TreeStorage`): what verify's jobs add to `WriteTxn`."""

    def tree_row(self, tid: int, h: int, pk: bytes, sk: bytes) -> TreeRow | None:
        """The key's tree row as of this transaction, checksum failures included (never
        raises CorruptionDetected: a repair must read what it replaces)."""
        ...

    def tree_build(self, tid: int, buckets: int) -> int:
        """Build the next `buckets` buckets of a table's tree from its rows (after those
        already built); returns how far it is built now (TREE_BUCKETS: complete). A
        table without a tree or a storage keeping none answers 0 and builds nothing."""
        ...

    def tree_correct(self, tid: int, bucket: int, delta: int) -> None:
        """XOR `delta` into a bucket's hash: a scrub found its rows changed behind
        Atoll's back (a bucket of a table without a built tree is left alone)."""
        ...

    def record_repair(self, repaired_ms: int, table_name: str, record: bytes) -> None:
        """Append a record to the repair log (numbered from 1 like the conflict log)."""
        ...


TreeWriteJob = Callable[[TreeWriteTxn], Any]


def tree_job(fn: TreeWriteJob) -> WriteJob:
    """A job that uses the tree methods, for `Storage.write` of a `TreeStorage` (whose
    jobs are always handed a TreeWriteTxn)."""
    return cast(WriteJob, fn)


class TreeStorage(Storage, Protocol):
    """A storage that keeps hash trees (see the module doc): SQLite, PostgreSQL and
    memory. A node started with trees off runs no verify: its region answers a peer's
    verify session with an error, which the session reports INCOMPLETE."""

    def repairs(self, after_id: int = 0, limit: int = 100
                ) -> list[tuple[int, int, str, bytes]]:
        """Up to `limit` repair records (id, repaired ms, table name, record) with id
        above `after_id`, by id."""
        ...

    def purge_points(self) -> dict[str, tuple[int, int]]:
        """Per origin, (origin_seq, hlc) of the newest changelog record purged here (kept
        across restarts); origins never purged are absent."""
        ...

    def tree_access(self) -> TreeAccess:
        """A `TreeAccess` for verify, with its own connection where the backend has
        connections; `close` it when done."""
        ...


class TreeAccess(Protocol):
    """What verify reads of one storage, and how it writes: the answering side of a
    verify session (atoll.engine.treestore) runs on it.

    `threaded`: True if the access may be used from a thread other than the event
    loop's (one thread at a time; SQLite, PostgreSQL: a connection of its own), False if
    only on the loop thread (memory). Reads see committed state; `bucket_snapshots` reads
    hashes and rows in one snapshot. `write_now` runs a write job to its durable end
    and returns its result (or raises its error): from a thread other than the loop's
    when `threaded`, else on the loop thread between batches."""

    threaded: bool

    def cursor_vector(self) -> dict[str, tuple[int, int]]:
        """`Storage.cursor_vector`, read here."""
        ...

    def purge_points(self) -> dict[str, tuple[int, int]]:
        """`Storage.purge_points`, read here."""
        ...

    def table_state_row(self, name: str) -> TableStateRow | None:
        """`Storage.table_state_row`, read here."""
        ...

    def table_tid(self, name: str) -> int | None:
        """The tid of the live table `name`, or None."""
        ...

    def tree_built(self, tid: int) -> int:
        """How far the table's tree is built (TREE_BUCKETS: complete; 0: none)."""
        ...

    def key_count(self, tid: int) -> int:
        """Live items and tombstones of a table (an estimate is fine)."""
        ...

    def bucket_hashes(self, tid: int, first: int, count: int) -> list[int]:
        """The stored hashes of buckets first..first+count-1 (0 where none is stored)."""
        ...

    def bucket_rows(self, tid: int, bucket: int, after: ScanKey | None, limit: int
                    ) -> list[TreeRow]:
        """Up to `limit` tree rows of a bucket in (h, pk, sk) order, strictly after
        `after` (from the bucket's first if None)."""
        ...

    def bucket_snapshots(self, tid: int, first: int, count: int
                         ) -> dict[int, tuple[int, list[TreeRow]]]:
        """For buckets first..first+count-1, each one's stored hash and all its tree
        rows, every bucket read in one snapshot; buckets with neither a hash nor a row
        are left out (most of them, in a table of few keys)."""
        ...

    def tree_rows(self, tid: int, keys: list[ScanKey]) -> list[TreeRow | None]:
        """The tree row of each key (None where it has none)."""
        ...

    def item_states(self, tid: int, keys: list[ScanKey]) -> list[StoredState | None]:
        """`WriteTxn.item_state` of each key, read here: (causal state, version, prev) of
        its live item, else of its tombstone (None where it has neither). A fetch reads
        it after `tree_rows` and keeps it only where the versions agree."""
        ...

    def write_now(self, fn: TreeWriteJob) -> Any:
        """Run a write job and wait until it is durable (see the class doc)."""
        ...

    async def settled(self) -> None:
        """On the loop thread: wait until every commit the reads here may have seen is
        durable (an answer built from them leaves the node only then)."""
        ...

    def close(self) -> None:
        """Release the access (its connection)."""
        ...
