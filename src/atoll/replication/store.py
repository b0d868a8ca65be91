"""The store protocol: what replication reads from and writes through a region's storage.

Theory of operation: a region's store holds items (live, and tombstones that keep the
version of a delete), table states, the changelog (every change applied here, its own
and its peers', indexed by (origin, seq)), the per-origin cursors and the conflict log.
Replication never touches rows. It reads committed state through `ReplicaStore` (between
transactions, on the shell's thread) and changes it only by handing the store a *job*:
a function of one `StoreTxn` that the store runs in ONE atomic transaction (all or
nothing; durable before anyone hears of it). The algorithms that run as jobs — applying
peers' changes, a local write, merging a snapshot, adopting cursors, purging — live once,
in `atoll.replication.apply`; a store only implements the primitives below.

Implementations, both checked by tests/conformance/test_replica_store.py:
- `atoll.replication.memory_store.MemoryStore` (dicts and an undo log), and
- `atoll.engine.replica_store.EngineReplicaStore` (the node's: item rows, index rows,
  the engine's catalog, SQLite's changelog), whose jobs run as storage write jobs.
`write(job)` runs a job synchronously; the node's SQLite store also submits jobs to its
storage's group commit (`submit`), which is how the asyncio shell runs the same jobs.

Every merge decision (which version wins, what a table op does) is made by
`atoll.replication.merge`; `StoreTxn.write_item` only stores the `Stored` it is given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar

import orjson

from atoll.replication.change import Change, ItemJson, ItemKey, Version
from atoll.replication.cursors import Cursor
from atoll.replication.merge import Conflict, Stored, TableState

R = TypeVar("R")

RowKey = tuple[int, bytes, bytes]
"""Where a snapshot page starts after: (partition hash of pk, pk, sk) — the order in which
a table's rows are paged (the SQLite store's primary key order)."""


class SnapshotRow(NamedTuple):
    """One live item or tombstone in a snapshot page, with its causal state as stored
    (b"": the row form that the version and `prev` rebuild)."""

    h: int
    pk: bytes
    sk: bytes
    hlc: int
    origin: str
    item: ItemJson | None  # None: a tombstone
    prev: Version | None = None
    state: bytes = b""


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What a purge may delete (computed by `atoll.replication.retention`)."""

    purge_through: Mapping[str, int]  # per origin: changelog records with seq <= this
    tombstone_horizon_hlc: int  # tombstones with version.hlc < this


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Live contents: live tables and live items (no tombstones), for comparisons."""

    tables: Mapping[str, TableState] = field(default_factory=dict)
    items: Mapping[ItemKey, Stored] = field(default_factory=dict)


class StoreTxn(Protocol):
    """One open transaction. Reads see the transaction's own earlier writes."""

    def cursor_seq(self, origin: str) -> int:
        """The highest contiguous seq of `origin` applied here (0: none). For this
        region's own origin: its last local change."""
        ...

    def table_state(self, table: str) -> TableState | None:
        """The table name's replicated state (live or deleted), or None if never seen."""
        ...

    def stored(self, key: ItemKey) -> Stored | None:
        """The newest version of a key: its live item or its tombstone, or None. None
        also for a key of a table that is not live here."""
        ...

    def set_table_state(self, table: str, state: TableState) -> None:
        """Record a table's new state and make the store follow it: a table that is no
        longer live, or that is now another incarnation (a concurrent CreateTable won),
        loses every item and tombstone; a live one exists with the new definition."""
        ...

    def write_item(self, key: ItemKey, stored: Stored) -> None:
        """Store `stored` as the key's newest version (a tombstone if `item` is None),
        with whatever derived rows the store keeps (the SQLite store's index rows)."""
        ...

    def record_conflict(self, conflict: Conflict, detected_ms: int) -> None:
        """Append to the conflict log."""
        ...

    def log_changes(self, records: list[tuple[Change, bytes]]) -> None:
        """Append changes, with the frames they are relayed as, to the changelog."""
        ...

    def logged_frame(self, origin: str, seq: int) -> bytes | None:
        """The changelog's frame of (origin, seq), or None if it holds none (never
        applied, or purged). Read for replays only (atoll.replication.admission)."""
        ...

    def set_cursor(self, origin: str, cursor: Cursor) -> None:
        """Move `origin`'s cursor (only forward; the algorithms check)."""
        ...

    def purge_log(self, origin: str, through_seq: int, limit: int) -> int:
        """Delete up to `limit` of `origin`'s oldest records with seq <= through_seq,
        never its latest one; returns how many."""
        ...

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        """Delete up to `limit` tombstones whose version's hlc is below `below_hlc`."""
        ...


class ReplicaStore(Protocol):
    """Committed state, read between transactions, and `write` to run one."""

    @property
    def region(self) -> str:
        """This store's region: the origin of its local writes."""
        ...

    def cursors(self) -> dict[str, Cursor]:
        """Per origin (this region's own included), the highest contiguous (seq, hlc)
        applied. An origin never seen is absent."""
        ...

    def table_state(self, table: str) -> TableState | None:
        ...

    def table_states(self) -> dict[str, TableState]:
        """Every table name's state, deleted ones included."""
        ...

    def log_start(self) -> dict[str, int]:
        """Per origin whose oldest held record is not its first change: that record's
        seq - 1 (records were purged up to there)."""
        ...

    def records_since(self, origin: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """At most `limit` (seq, frame) of `origin`'s held records with seq > after_seq,
        in seq order (there may be holes: serving checks)."""
        ...

    def snapshot_rows(self, table: str, after: RowKey | None, limit: int,
                      tombstones: bool) -> list[SnapshotRow]:
        """A page of a live table's items (or tombstones) after `after`, in RowKey order."""
        ...

    def contents(self) -> dict[ItemKey, Stored]:
        """Every key's newest version, tombstones included (checkers and tests)."""
        ...

    def conflicts(self) -> list[Conflict]:
        """The conflict log, oldest first."""
        ...

    def write(self, job: Callable[[StoreTxn], R]) -> R:
        """Run `job` in ONE transaction, now: committed (and durable) when it returns; if
        it raises, nothing of it is kept."""
        ...


def snapshot(store: ReplicaStore) -> Snapshot:
    """The live tables and live items of a store."""
    tables = {name: state for name, state in store.table_states().items() if state.live}
    items = {key: s for key, s in store.contents().items()
             if s.item is not None and key[0] in tables}
    return Snapshot(tables, items)


def digest_snapshot(snapshot: Snapshot) -> bytes:
    """A content hash every store computes alike: equal iff the live contents are equal."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(snapshot.tables):
        state = snapshot.tables[name]
        h.update(orjson.dumps(["t", name, list(state.created), state.definition],
                              option=orjson.OPT_SORT_KEYS))
    for key in sorted(snapshot.items):
        stored = snapshot.items[key]
        h.update(orjson.dumps(["i", key[0], key[1].hex(), key[2].hex(), list(stored.version),
                               stored.item], option=orjson.OPT_SORT_KEYS))
    return h.digest()

