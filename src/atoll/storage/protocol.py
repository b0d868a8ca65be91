"""`Storage` and `WriteTxn`: what the engine, the node and replication may ask of a backend.

Theory of operation
- What is stored. Tables, each with a small integer `tid`, a definition (opaque bytes)
  and approximate statistics. Per table, items keyed by (h, pk, sk): h is the partition
  key's 32-bit hash, pk and sk the order-preserving key bytes (atoll.model.keys). Keys
  order by h as an unsigned integer, then pk, then sk, bytewise (memcmp; a prefix sorts
  first): that order is Scan order, and a Query is a range of sk inside one (h, pk).
  Each key has at most one live item and at most one tombstone (the version of its last
  delete), each with a version (hlc, origin) and the version it overwrote (`prev`).
  Secondary index rows are keyed by (tid, iid, h, pk, sk, base_pk, base_sk), ordered the
  same way field by field. The changelog holds every change applied here, keyed by
  (origin, origin_seq); each origin's cursor is (seq, hlc) of the last change applied.
  Table states (each table name's replicated state), the conflict log (records numbered
  from 1 in the order they were recorded) and TransactWriteItems tokens complete it.
- Writes are jobs: `job(txn) -> result`, submitted with `write` (or `write_sync` before
  `start`). Jobs run one at a time in submission order; each sees the writes of every
  job before it. Jobs are grouped into batches made durable together (group commit).
  A job is atomic: if it raises, none of its writes remain and its caller gets the
  exception, while the other jobs of its batch keep their effects and results. A job
  may be run more than once before its result is delivered (a backend may replay a
  batch without a failed job), so it must be a deterministic function of the stored
  state and its own inputs; its effects outside the storage must be idempotent. A fault
  of the backend itself (a full disk, an I/O error) fails every job of the batch with
  ServiceUnavailable and leaves none of the batch's writes.
- `write` returns a future that resolves, in commit order, only once the job's batch is
  durable: an acknowledged write survives a crash. Once durability is lost (a flush that
  failed), every write not yet answered and every `settle` waiter fails with
  ServiceUnavailable, and later writes are refused.
- Reads (every `Storage` method but the write path) run on the event-loop thread and see
  the last committed batch: never a batch in progress, but possibly one not yet durable.
  An answer built from what was read (an API response, a replication batch served or
  sent) waits for `settle()` first, so nothing a crash could undo leaves the node. A read
  returning an iterator is consumed, or closed, before the caller yields to the event
  loop: an iterator left open across a yield may or may not see later commits.
- A stored row that fails its integrity check raises CorruptionDetected instead of being
  served.
- `WriteTxn` is the open transaction a job gets: its reads see the transaction's own
  writes and everything committed before it. It is used only inside the job, on the
  thread running the batch.

Hash trees (DESIGN.md decision 7; atoll.antientropy.store states the rule)
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
  rows, which a scrub (`TreeAccess.bucket_snapshots`, `WriteTxn.tree_correct`) finds.
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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

import orjson

from atoll.errors import InternalError

ItemRow = tuple[bytes, int]  # (item JSON, size in bytes)
RowVersion = tuple[int, str]  # (hlc, origin)
SortKeyBound = tuple[bytes, bool]  # (encoded sort key, inclusive)
ScanKey = tuple[int, bytes, bytes]  # (h, pk, sk) inside one table
IndexScanKey = tuple[int, bytes, bytes, bytes, bytes]  # (h, pk, sk, base_pk, base_sk)
TableStateRow = tuple[int, str, int, str, bytes | None]
"""(created hlc, created origin, version hlc, version origin, definition or None)."""
IndexRow = tuple[int, int, int, bytes, bytes, bytes, bytes, bytes, int]
"""(tid, iid, h, pk, sk, base_pk, base_sk, item, size) of one secondary index row."""


class CorruptionDetected(InternalError):
    """A stored row does not match its checksum."""


TREE_BUCKET_BITS = 16
TREE_BUCKETS = 1 << TREE_BUCKET_BITS


class TreeRow(NamedTuple):
    """A key's tree row (see "Hash trees" above): `item` is the live item's stored bytes,
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


class WriteTxn(Protocol):
    """The open write transaction of a batch, handed to each job in turn."""

    next_seq: int
    """The origin sequence the next `log_change` takes. A job may raise it (never lower
    it) after adopting a snapshot's cursors; a job that fails leaves it as it was."""

    # --- items ---------------------------------------------------------------------------
    def get(self, tid: int, h: int, pk: bytes, sk: bytes) -> tuple[bytes, int, int, str] | None:
        """(item, size, hlc, origin) of the live item at the key, or None."""
        ...

    def put(self, tid: int, h: int, pk: bytes, sk: bytes, item: bytes, size: int,
            hlc: int, origin: str, old_size: int | None,
            prev: RowVersion | None = None) -> None:
        """Write the live item at version (hlc, origin), replacing any; `prev` is the
        version it overwrote. A tombstone of the key stays. The table's statistics move
        by one item and `size` if `old_size` is None (the key had no live item), else by
        `size - old_size`: the caller says what it replaced."""
        ...

    def delete(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
               old_size: int, prev: RowVersion | None = None) -> None:
        """Remove the live item and record a tombstone at (hlc, origin) with `prev`,
        replacing any earlier tombstone; statistics move by -1 item and -old_size."""
        ...

    def delete_absent(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                      prev: RowVersion | None = None) -> None:
        """Record the tombstone of a key with no live item here (it may live elsewhere)."""
        ...

    def prev_of(self, tid: int, h: int, pk: bytes, sk: bytes) -> RowVersion | None:
        """The `prev` that the last put/delete/delete_absent of the key in this
        transaction recorded (for the job's changelog record); None if there was none."""
        ...

    def versions(self, tid: int, h: int, pk: bytes, sk: bytes
                 ) -> tuple[tuple[bytes, int, int, str, RowVersion | None] | None,
                            tuple[int, str, RowVersion | None] | None]:
        """The live item (item, size, hlc, origin, prev) and the tombstone (hlc, origin,
        prev) of a key, each or both None."""
        ...

    def tombstone_version(self, tid: int, h: int, pk: bytes, sk: bytes) -> RowVersion | None:
        """(hlc, origin) of the key's tombstone, or None."""
        ...

    def scan_chunk(self, tid: int, after: ScanKey | None, limit: int
                   ) -> list[tuple[int, bytes, bytes, bytes, int]]:
        """Up to `limit` live items (h, pk, sk, item, size) of a table in key order,
        strictly after `after` (from the first if None), as of this transaction."""
        ...

    # --- secondary indexes ---------------------------------------------------------------
    def index_put(self, tid: int, iid: int, h: int, pk: bytes, sk: bytes, base_pk: bytes,
                  base_sk: bytes, item: bytes, size: int) -> None:
        """Write an index row, replacing the row with the same full key."""
        ...

    def index_put_many(self, rows: list[IndexRow]) -> None:
        """`index_put` for each row, in order."""
        ...

    def index_delete(self, tid: int, iid: int, h: int, pk: bytes, sk: bytes, base_pk: bytes,
                     base_sk: bytes) -> None:
        """Remove the index row with this full key, if any."""
        ...

    def index_drop(self, tid: int, iid: int) -> None:
        """Remove every row of one index."""
        ...

    # --- TransactWriteItems tokens -------------------------------------------------------
    def token_get(self, token: str) -> tuple[bytes, int] | None:
        """(request hash, created ms) of a stored token, or None."""
        ...

    def token_put(self, token: str, request_hash: bytes, created_ms: int) -> None:
        """Store a token, replacing one of the same name."""
        ...

    def tokens_purge(self, older_than_ms: int, limit: int) -> int:
        """Remove up to `limit` tokens created before `older_than_ms` (which ones, when
        more qualify, is the backend's choice); returns how many went."""
        ...

    # --- changelog, cursors, conflicts ---------------------------------------------------
    def log_change(self, hlc: int, body: bytes) -> int:
        """Append a local change as this region's record `next_seq`, advance `next_seq`;
        returns the sequence taken. Local sequences are dense: 1, 2, 3..."""
        ...

    def append_remote_changes(self, changes: list[tuple[str, int, int, bytes]]) -> None:
        """Store peers' changes (origin, origin_seq, hlc, body) in the changelog, so they
        can be passed on; a record whose (origin, origin_seq) is there already is skipped."""
        ...

    def cursor(self, origin: str) -> int:
        """The origin's cursor sequence (0 if none)."""
        ...

    def set_cursor(self, origin: str, seq: int, hlc: int) -> None:
        """Set the origin's cursor to (seq, hlc), whatever it was."""
        ...

    def purge_changelog(self, origin: str, through_seq: int, limit: int) -> int:
        """Remove up to `limit` of the origin's records with origin_seq <= through_seq,
        lowest first, but never the origin's latest record (this region's next sequence
        continues after its own); returns how many went. The origin's purge point (see
        `Storage.purge_points`) moves to the newest record removed."""
        ...

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        """Remove up to `limit` tombstones (of any table) with hlc < below_hlc (which
        ones, when more qualify, is the backend's choice); returns how many went. A
        tombstone that was its key's tree row takes its leaf out of the tree."""
        ...

    def record_conflict(self, detected_ms: int, table_name: str, record: bytes) -> None:
        """Append a record to the conflict log; it takes the next number."""
        ...

    # --- hash trees (see "Hash trees" above) ---------------------------------------------
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

    # --- catalog -------------------------------------------------------------------------
    def table_row(self, name: str) -> tuple[int, bytes] | None:
        """(tid, definition) of the live table `name`, or None."""
        ...

    def table_state_row(self, name: str) -> TableStateRow | None:
        """The replicated state of a table name, or None."""
        ...

    def set_table_state(self, name: str, created: RowVersion, version: RowVersion,
                        definition: bytes | None) -> None:
        """Set a table name's replicated state, whatever it was."""
        ...

    def create_table(self, name: str, definition: bytes) -> int:
        """Add a live table (the name must not be live: callers check) with empty
        statistics; returns its tid, one more than the highest live tid (1 if none)."""
        ...

    def update_table(self, name: str, definition: bytes) -> None:
        """Replace a live table's definition."""
        ...

    def drop_table(self, name: str, tid: int) -> None:
        """Remove a live table with its items, tombstones and index rows (its table
        state, changelog records and conflicts stay)."""
        ...


WriteJob = Callable[[WriteTxn], Any]
"""A write job: runs inside the batch's transaction; its result goes to its caller."""


class Storage(Protocol):
    """One node's database: construct, `write_sync` if need be, `start`, then serve."""

    commit_listeners: list[Callable[[], None]]
    """Called on the event-loop thread as each batch is answered (committed and durable,
    or failed), before its futures resolve: e.g. to wake replication long polls."""

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin accepting `write` on this loop (once)."""
        ...

    def close(self) -> None:
        """Refuse new writes, finish every write accepted before (their futures resolve as
        usual), release the backend. Idempotent; no read may follow."""
        ...

    # --- writes --------------------------------------------------------------------------
    def write(self, fn: WriteJob, *, inline: bool = False) -> asyncio.Future[Any]:
        """Queue a job (after `start`, on the loop thread). The future gets the job's
        result or exception once its batch is durable. Raises ServiceUnavailable at once
        if the storage refuses writes (closing, durability lost) or too many are queued.

        `inline`: the job is short (one request's items), so the backend may run it on
        the event-loop thread; long jobs (replication, backfill, purges, DDL) leave it
        False so they may run elsewhere while the loop keeps serving."""
        ...

    def write_sync(self, fn: WriteJob) -> Any:
        """Run one job now on the calling thread, durably; only before `start` (recovery
        and set-up). Returns its result or raises its exception (its writes undone)."""
        ...

    def settle(self) -> asyncio.Future[None] | None:
        """None if every commit a read so far may have seen is durable; else a future
        resolved once it is (failed with ServiceUnavailable if it never will be)."""
        ...

    async def settled(self) -> None:
        """Wait until `settle()` has nothing to wait for."""
        ...

    # --- items ---------------------------------------------------------------------------
    def get_item(self, tid: int, h: int, pk: bytes, sk: bytes) -> ItemRow | None:
        """The live item at a key, or None."""
        ...

    def get_items_snapshot(self, keys: list[tuple[int, int, bytes, bytes]]
                           ) -> list[ItemRow | None]:
        """`get_item` of each (tid, h, pk, sk), all from one committed state."""
        ...

    def query_items(self, tid: int, h: int, pk: bytes, lower: SortKeyBound | None,
                    upper: SortKeyBound | None, forward: bool
                    ) -> Iterator[tuple[bytes, bytes, int]]:
        """(sk, item, size) of one partition's live items with sk within the bounds, in
        sk order (descending if not `forward`)."""
        ...

    def scan_items(self, tid: int, after: ScanKey | None, h_end: int | None,
                   h_start: int = 0) -> Iterator[tuple[int, bytes, bytes, bytes, int]]:
        """(h, pk, sk, item, size) of a table's live items in key order: strictly after
        `after` if given, else from h >= h_start; only h < h_end if given."""
        ...

    def collection_size(self, tid: int, h: int, pk: bytes) -> int:
        """Bytes of one item collection: the partition's live items plus its rows in
        local secondary indexes (index rows at the same (h, pk) whose base_pk is pk)."""
        ...

    # --- secondary indexes ---------------------------------------------------------------
    def query_index(self, tid: int, iid: int, h: int, pk: bytes, lower: SortKeyBound | None,
                    upper: SortKeyBound | None, forward: bool,
                    start: tuple[bytes, bytes, bytes] | None
                    ) -> Iterator[tuple[bytes, bytes, bytes, bytes, int]]:
        """(sk, base_pk, base_sk, item, size) of one index partition with sk within the
        bounds, in (sk, base_pk, base_sk) order (all descending if not `forward`),
        strictly after (before, if not `forward`) `start` = (sk, base_pk, base_sk)."""
        ...

    def scan_index(self, tid: int, iid: int, after: IndexScanKey | None, h_end: int | None,
                   h_start: int = 0
                   ) -> Iterator[tuple[int, bytes, bytes, bytes, bytes, bytes, int]]:
        """(h, pk, sk, base_pk, base_sk, item, size) of an index in key order: strictly
        after `after` if given, else from h >= h_start; only h < h_end if given."""
        ...

    def index_stats(self, tid: int, iid: int) -> tuple[int, int]:
        """(row count, total size in bytes) of one index, counted now."""
        ...

    # --- catalog -------------------------------------------------------------------------
    def load_tables(self) -> list[tuple[str, int, bytes]]:
        """(name, tid, definition) of every live table, by name."""
        ...

    def table_stats(self, tid: int) -> tuple[int, int]:
        """(item count, size in bytes) of a live table as its writes declared them;
        (0, 0) for an unknown tid."""
        ...

    def table_state_row(self, name: str) -> TableStateRow | None:
        """The replicated state of a table name, or None."""
        ...

    def load_table_states(self) -> list[tuple[str, int, str, int, str, bytes | None]]:
        """(name, *state) of every table name ever seen (live or deleted), in no
        particular order."""
        ...

    # --- changelog and cursors -----------------------------------------------------------
    def last_local_hlc(self) -> int:
        """The highest hlc of this region's records in the changelog (0 if none)."""
        ...

    def cursor_vector(self) -> dict[str, tuple[int, int]]:
        """Per origin, (seq, hlc) of its cursor; this region's own entry is its latest
        changelog record when that is ahead of its cursor (or it has none)."""
        ...

    def cursors(self) -> dict[str, int]:
        """`cursor_vector` without the hlcs."""
        ...

    def log_start(self) -> dict[str, int]:
        """For each origin of `cursor_vector` with records in the changelog, the lowest
        of them minus one: the sequences at or below it were purged (or never held)."""
        ...

    def changes_since(self, origin: str, after_seq: int, limit: int
                      ) -> list[tuple[int, int, bytes]]:
        """Up to `limit` of the origin's records (origin_seq, hlc, body) above
        `after_seq`, by origin_seq."""
        ...

    def snapshot_rows(self, tid: int, after: ScanKey | None, limit: int, tombstones: bool
                      ) -> list[tuple[int, bytes, bytes, int, str, bytes | None]]:
        """One page for a region being rebuilt: up to `limit` (h, pk, sk, hlc, origin,
        item) of a table's live items, or of its tombstones (item None), in key order,
        strictly after `after`."""
        ...

    def conflicts(self, after_id: int = 0, limit: int = 100
                  ) -> list[tuple[int, int, str, bytes]]:
        """Up to `limit` conflict records (id, detected ms, table name, record) with id
        above `after_id`, by id."""
        ...

    def repairs(self, after_id: int = 0, limit: int = 100
                ) -> list[tuple[int, int, str, bytes]]:
        """Up to `limit` repair records (id, repaired ms, table name, record) with id
        above `after_id`, by id."""
        ...

    def purge_points(self) -> dict[str, tuple[int, int]]:
        """Per origin, (origin_seq, hlc) of the newest changelog record purged here (kept
        across restarts); origins never purged are absent."""
        ...

    # --- hash trees ------------------------------------------------------------------------
    def tree_access(self) -> TreeAccess:
        """A `TreeAccess` for verify, with its own connection where the backend has
        connections; `close` it when done."""
        ...

    # --- figures -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Figures for /_atoll/status (JSON-ready): at least `writes_committed` and
        `write_batches_committed` (since the storage was opened) and `write_path` (the
        stage times of recent batches, atoll.storage.writepath); a backend may add its
        own."""
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
                         ) -> list[tuple[int, list[TreeRow]]]:
        """For buckets first..first+count-1, each one's stored hash and all its tree
        rows, every bucket read in one snapshot."""
        ...

    def tree_rows(self, tid: int, keys: list[ScanKey]) -> list[TreeRow | None]:
        """The tree row of each key (None where it has none)."""
        ...

    def write_now(self, fn: WriteJob) -> Any:
        """Run a write job and wait until it is durable (see the class doc)."""
        ...

    async def settled(self) -> None:
        """On the loop thread: wait until every commit the reads here may have seen is
        durable (an answer built from them leaves the node only then)."""
        ...

    def close(self) -> None:
        """Release the access (its connection)."""
        ...
