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
- Streams (DynamoDB Streams, atoll.streams): per stream (a table name and a label, with a
  storage id `sid` never reused), its shards (ranges of positions, one open at a time)
  and its records. A record takes the region's next *position*: positions are shared by
  every stream of the region, increase in commit order and are never reused, not even
  after the records holding them were trimmed or their stream dropped. Each stream has
  a trim point: its records at or below it are gone. Records carry a checksum like
  items do.
- A stored row failing its integrity check raises CorruptionDetected instead of being served.
- `snapshot_table(name)` pins one table as committed at that moment — its definition,
  replicated state, statistics, the cursor vector, its items and tombstones — and lets a
  reader page through it for as long as it needs (a backup of millions of items) while
  writes go on. It is opened on the event-loop thread and noted like a read (answers
  built from it wait for `settle()`); after that its `rows` and `close` may run on any
  one thread at a time. Every snapshot is closed: it may hold back the backend's cleanup
  (SQLite's WAL checkpoints cannot pass an open read transaction).
- Kept changes: a table's changelog records can be kept past the changelog's purge
  (point-in-time recovery needs them). `keep_changes(table, markers)` says how its
  records are recognised — byte strings the storage looks for in a record's body, without
  reading it — and from then on `purge_changelog` moves every record containing one of
  them into that table's kept log instead of deleting it, in the same transaction. The
  changelog itself stays gap-free below what it holds, as replication needs.
  `snapshot_changes()` pins the changelog, the kept logs and the cursor vector together,
  for reading from any one thread, like a table snapshot.
- `WriteTxn` is the open transaction a job gets: its reads see the transaction's own
  writes and everything committed before it. It is used only inside the job, on the
  thread running the batch.

Hash trees: atoll.storage.treeprotocol (the protocols of a storage that keeps them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from atoll.errors import InternalError
from atoll.storage.integrity import IntegrityFaults
from atoll.storage.pages import PageReads

ItemRow = tuple[bytes, int]  # (item JSON, size in bytes)
RowVersion = tuple[int, str]  # (hlc, origin)
StoredState = tuple[bytes, RowVersion, RowVersion | None]
"""(causal state, version, prev) of a key's newest row; state b"" is the row form."""
SortKeyBound = tuple[bytes, bool]  # (encoded sort key, inclusive)
ScanKey = tuple[int, bytes, bytes]  # (h, pk, sk) inside one table
ItemKey = tuple[int, int, bytes, bytes]  # (tid, h, pk, sk)
IndexScanKey = tuple[int, bytes, bytes, bytes, bytes]  # (h, pk, sk, base_pk, base_sk)
# A page read (pages.py, and `query_page`) reads at most this many rows (of 400 KB at most each) at once.
SCAN_PAGE_ROWS = 100
TableStateRow = tuple[int, str, int, str, bytes | None]
"""(created hlc, created origin, version hlc, version origin, definition or None)."""
IndexRow = tuple[int, int, int, bytes, bytes, bytes, bytes, bytes, int]
"""(tid, iid, h, pk, sk, base_pk, base_sk, item, size) of one secondary index row."""
StreamRow = tuple[int, str, str, str, bytes, int, int | None, int]
"""(sid, table name, label, view type, key schema JSON, created ms, disabled ms or None
while enabled, trim point)."""
ShardRow = tuple[int, int, int | None, int, int | None]
"""(shard number, first position, end position or None while open, created ms, closed ms
or None while open)."""
StreamRecordRow = tuple[int, int, int, str, bytes]
"""(position, created ms, kind, origin region, record) of one stream record."""


ReplicaRow = tuple[int, bytes, bytes, int, str, bytes | None, RowVersion | None, bytes]
"""(h, pk, sk, hlc, origin, item, prev, causal state; b"": the row form) of a live item,
or of a tombstone (item None): what a region being rebuilt copies."""
SnapshotRow = tuple[int, bytes, bytes, int, str, bytes | None]
"""(h, pk, sk, hlc, origin, item) of a live item, or of a tombstone (item None)."""


class CorruptionDetected(InternalError):
    """A stored row does not match its checksum. `kind` says what it is ("item", "index
    item", "changelog record", "stream record"); `tid`, `pk` and `sk` where it is, when
    it is a row of a table (encoded keys, as stored)."""

    def __init__(self, message: str, kind: str = "item", tid: int | None = None,
                 pk: bytes | None = None, sk: bytes | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.tid = tid
        self.pk = pk
        self.sk = sk


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
            prev: RowVersion | None = None, state: bytes = b"") -> None:
        """Write the live item at version (hlc, origin), replacing any; `prev` is the
        version it overwrote, `state` the item's causal state in the stored form
        atoll.replication.itemstate defines (b"": the row form, which the version and
        `prev` rebuild). A tombstone of the key stays. The table's statistics move
        by one item and `size` if `old_size` is None (the key had no live item), else by
        `size - old_size`: the caller says what it replaced."""
        ...

    def delete(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
               old_size: int, prev: RowVersion | None = None, state: bytes = b"") -> None:
        """Remove the live item and record a tombstone at (hlc, origin) with `prev` and
        `state`, replacing any earlier tombstone; statistics move by -1 item and
        -old_size."""
        ...

    def delete_absent(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                      prev: RowVersion | None = None, state: bytes = b"") -> None:
        """Record the tombstone of a key with no live item here (it may live elsewhere)."""
        ...

    def item_state(self, tid: int, h: int, pk: bytes, sk: bytes) -> StoredState | None:
        """(state, version, prev) of the key's newest version — its live item's, else its
        tombstone's — or None if it has neither (a live item is always newer than the
        key's tombstone: every write of it has seen the delete)."""
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

    def logged_frame(self, origin: str, seq: int) -> bytes | None:
        """The changelog record of (origin, seq) as stored, or None if none is kept."""
        ...

    def set_cursor(self, origin: str, seq: int, hlc: int) -> None:
        """Set the origin's cursor to (seq, hlc), whatever it was."""
        ...

    def purge_changelog(self, origin: str, through_seq: int, limit: int) -> int:
        """Remove up to `limit` of the origin's records with origin_seq <= through_seq,
        lowest first, but never the origin's latest record (this region's next sequence
        continues after its own); returns how many went. The origin's purge point (see
        `Storage.purge_points`) moves to the newest record removed. A record whose body contains a
        marker of a table with kept changes moves to that table's kept log (to each such
        table's) rather than going."""
        ...

    def keep_changes(self, table: str, markers: tuple[bytes, ...]) -> None:
        """Keep `table`'s changelog records past the purge from now on: those whose body
        contains one of `markers` (non-empty byte strings). Replaces earlier markers."""
        ...

    def release_changes(self, table: str) -> None:
        """Stop keeping `table`'s records and delete its kept log."""
        ...

    def purge_kept_changes(self, table: str, origin: str, through_seq: int, limit: int) -> int:
        """Remove up to `limit` of the origin's records with origin_seq <= through_seq
        from `table`'s kept log, lowest first; returns how many went."""
        ...

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        """Remove up to `limit` tombstones (of any table) with hlc < below_hlc (which
        ones, when more qualify, is the backend's choice); returns how many went. A
        tombstone that was its key's tree row takes its leaf out of the tree.
        Only tombstones in the row form (no state stored) go: a tombstone whose causal
        state holds more (counter contributions and their floors, entries a concurrent
        delete hid) stays, because a region that forgot it would restart its own
        counter contribution from zero and the max-join elsewhere would swallow its next
        increments."""
        ...

    def record_conflict(self, detected_ms: int, table_name: str, record: bytes) -> None:
        """Append a record to the conflict log; it takes the next number."""
        ...

    # --- streams -------------------------------------------------------------------------
    def stream_open(self, table_name: str, label: str, view_type: str, key_schema: bytes,
                    now_ms: int) -> int:
        """Enable the stream (table_name, label) and return its sid: a new stream, with
        shard 1 open from the next position and created at `now_ms`; or the existing
        one enabled again (no longer disabled), with a new shard after its last opened
        at the next position unless one is open already."""
        ...

    def stream_close(self, sid: int, now_ms: int) -> None:
        """Disable a stream at `now_ms`; its open shard, if any, closes at `now_ms` and
        ends at the last position taken so far."""
        ...

    def stream_append(self, sid: int, created_ms: int, kind: int, origin: str,
                      record: bytes) -> int:
        """Store a record of a stream at the region's next position; returns it."""
        ...

    def stream_roll(self, sid: int, now_ms: int, opened_before_ms: int) -> bool:
        """If the stream's open shard was created before `opened_before_ms` and holds a
        record: close it (at `now_ms`, ending at the last position taken) and open the
        next shard from the next position, created at max(now_ms, its parent's creation
        + 1); True if it did."""
        ...

    def stream_trim(self, sid: int, created_before_ms: int, limit: int) -> int:
        """Remove the stream's oldest records created before `created_before_ms`, up to
        `limit` of them and stopping at the first one that is not; the trim point rises
        to the last position removed. Returns how many went."""
        ...

    def stream_forget_shards(self, sid: int, closed_before_ms: int) -> int:
        """Remove the stream's shards closed before `closed_before_ms` with any record
        left in them (the trim point rises to their end); returns how many went."""
        ...

    def stream_drop(self, sid: int, disabled_before_ms: int) -> bool:
        """Remove a stream disabled before `disabled_before_ms`, its shards and records;
        False, and nothing removed, if it is enabled or was disabled since."""
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


class TableSnapshot(Protocol):
    """One live table as committed when the snapshot was opened (see the module doc)."""

    tid: int
    definition: bytes
    state: TableStateRow | None  # the table name's replicated state
    cursors: dict[str, tuple[int, int]]  # `Storage.cursor_vector()` at that moment
    item_count: int  # `Storage.table_stats()` at that moment
    size_bytes: int

    def rows(self, after: ScanKey | None, limit: int, tombstones: bool) -> list[SnapshotRow]:
        """Up to `limit` of the table's live items, or of its tombstones, in key order,
        strictly after `after` (from the first if None)."""
        ...

    def close(self) -> None:
        """Release what the snapshot holds; idempotent, and no `rows` may follow."""
        ...


class ChangesSnapshot(Protocol):
    """The changelog and the kept logs as committed when the snapshot was opened."""

    cursors: dict[str, tuple[int, int]]  # `Storage.cursor_vector()` at that moment
    kept_tables: dict[str, tuple[bytes, ...]]  # table -> its markers, at that moment

    def changes(self, origin: str, after_seq: int, limit: int) -> list[tuple[int, int, bytes]]:
        """As `Storage.changes_since`: up to `limit` (origin_seq, hlc, body) by seq."""
        ...

    def kept(self, table: str, origin: str, after_seq: int, limit: int
             ) -> list[tuple[int, int, bytes]]:
        """The same from `table`'s kept log."""
        ...

    def close(self) -> None:
        """Release what the snapshot holds; idempotent."""
        ...


WriteJob = Callable[[WriteTxn], Any]
"""A write job: runs inside the batch's transaction; its result goes to its caller."""


class Storage(PageReads, Protocol):
    """One node's database: construct, `write_sync` if need be, `start`, then serve.
    Its page reads (`scan_page`, `query_index_page`, `scan_index_page`): pages.py."""

    integrity: IntegrityFaults
    """Where every checksum failure this storage finds is counted (and heard of by its
    listeners) before CorruptionDetected is raised."""

    commit_listeners: list[Callable[[], None]]
    """Called on the event-loop thread as each batch is answered (committed and durable,
    or failed), before its futures resolve."""

    visible_listeners: list[Callable[[], None]]
    """Called on the event-loop thread once a batch's writes are readable, which may be
    before they are durable (SQLite: at its COMMIT, before the syncer's fsync; where
    commits are durable at once, this is `commit_listeners` itself): e.g. to wake
    replication long polls, whose answers then wait for `settle()` like any other."""

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin accepting `write` on this loop (once)."""
        ...

    def close(self) -> None:
        """Refuse new writes, finish every write accepted before (their futures resolve as
        usual), release the backend. Idempotent; no read may follow."""
        ...

    # --- writes --------------------------------------------------------------------------
    def write(self, fn: WriteJob, *, inline: bool = False, keys: Sequence[ItemKey] = ()
              ) -> asyncio.Future[Any]:
        """Queue a job (after `start`, on the loop thread). The future gets the job's
        result or exception once its batch is durable. Raises ServiceUnavailable at once
        if the storage refuses writes (closing, durability lost) or too many are queued.

        `inline`: the job is short (one request's items), so the backend may run it on
        the event-loop thread; long jobs (replication, backfill, purges, DDL) leave it
        False so they may run elsewhere while the loop keeps serving.
        `keys`: the items the job will look up (a hint, never a promise): a backend whose
        every lookup costs a round trip may fetch them for the whole batch at once. A
        job still sees the writes of the jobs before it, and may read keys not named."""
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
                    upper: SortKeyBound | None, forward: bool, limit: int | None = None
                    ) -> Iterator[tuple[bytes, bytes, int]]:
        """(sk, item, size) of one partition's live items with sk within the bounds, in
        sk order (descending if not `forward`). With `limit`, at most that many: the
        caller reads no more (a page's Limit), so none are fetched beyond it. The same
        holds for the other range reads below."""
        ...

    def query_page(self, tid: int, h: int, pk: bytes, lower: SortKeyBound | None,
                   upper: SortKeyBound | None, forward: bool, limit: int) -> list[ItemRow]:
        """`query_items`' first `limit` rows, as `scan_page`'s: (item, size), no keys."""
        ...

    def scan_items(self, tid: int, after: ScanKey | None, h_end: int | None,
                   h_start: int = 0, limit: int | None = None
                   ) -> Iterator[tuple[int, bytes, bytes, bytes, int]]:
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
                    start: tuple[bytes, bytes, bytes] | None, limit: int | None = None
                    ) -> Iterator[tuple[bytes, bytes, bytes, bytes, int]]:
        """(sk, base_pk, base_sk, item, size) of one index partition with sk within the
        bounds, in (sk, base_pk, base_sk) order (all descending if not `forward`),
        strictly after (before, if not `forward`) `start` = (sk, base_pk, base_sk)."""
        ...

    def scan_index(self, tid: int, iid: int, after: IndexScanKey | None, h_end: int | None,
                   h_start: int = 0, limit: int | None = None
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

    def snapshot_table(self, name: str) -> TableSnapshot | None:
        """A snapshot of the live table `name` as committed now, or None if there is none."""
        ...

    def snapshot_changes(self) -> ChangesSnapshot:
        """The changelog and the kept logs pinned as committed now (see the module doc)."""
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
        """Up to `limit` of the origin's (origin_seq, hlc, body) above `after_seq`, in order."""
        ...

    def snapshot_rows(self, tid: int, after: ScanKey | None, limit: int, tombstones: bool
                      ) -> list[ReplicaRow]:
        """One page for a region being rebuilt: up to `limit` (h, pk, sk, hlc, origin,
        item, prev, state) of a table's live items, or of its tombstones (item None), in
        key order, strictly after `after`."""
        ...

    def conflicts(self, after_id: int = 0, limit: int = 100
                  ) -> list[tuple[int, int, str, bytes]]:
        """Up to `limit` conflict records (id, detected ms, table, record) past `after_id`."""
        ...

    # --- streams -------------------------------------------------------------------------
    def streams(self) -> list[StreamRow]:
        """Every stream (enabled or disabled, of live or dropped tables), by sid."""
        ...

    def stream_shards(self, sid: int) -> list[ShardRow]:
        """A stream's shards, by number (none if the stream does not exist)."""
        ...

    def stream_records(self, sid: int, from_pos: int, limit: int) -> list[StreamRecordRow]:
        """Up to `limit` of a stream's records from position `from_pos`, in position order."""
        ...

    def stream_last_pos(self, sid: int) -> int:
        """The position of the stream's newest record, or its trim point if it has none
        (0 for an unknown stream)."""
        ...

    # --- figures -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Figures for /_atoll/status (JSON-ready): at least `writes_committed` and
        `write_batches_committed` (since the storage was opened) and `write_path` (the
        stage times of recent batches, atoll.storage.writepath); a backend may add its
        own."""
        ...
