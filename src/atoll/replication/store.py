"""`ReplicaStore`: the narrow storage interface the replication core needs.

Theory of operation: a region's store holds items (live and tombstones, each with its
version), table states, the changelog (every change applied here, its own and its
peers', indexed by (origin, seq)), the per-origin cursors and the conflict log. The
replication core never touches rows: it calls these methods, and each write method is
ONE atomic store transaction (all or nothing; durable before it returns — the node
acknowledges or sends nothing about a change before its transaction committed).

Implementations: `atoll.replication.memory_store.MemoryStore` (simulator, tests) and the
SQLite store in `atoll.storage` (the node). Both pass
tests/unit/test_replica_store_conformance.py.

The merge rule lives in `atoll.replication.merge`: stores call `merge_change` inside
their transaction rather than re-implementing last-writer-wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from atoll.replication.change import Change, ItemKey, Op
from atoll.replication.cursors import Cursor, Cursors
from atoll.replication.merge import Conflict, Stored, TableState


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: int  # changes that were new (appended to the changelog, cursor advanced)
    duplicates: int  # changes at or below the origin's cursor: skipped, nothing changed
    conflicts: tuple[Conflict, ...] = ()


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What `purge` may delete (computed by `atoll.replication.retention`)."""

    purge_through: Mapping[str, int]  # per origin: changelog records with seq <= this
    tombstone_horizon_hlc: int  # tombstones with version.hlc < this


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Live contents: live tables and live items (no tombstones), for comparisons."""

    tables: Mapping[str, TableState] = field(default_factory=dict)
    items: Mapping[ItemKey, Stored] = field(default_factory=dict)


class ReplicaStore(Protocol):
    """The contract. Every write method is atomic and durable before it returns."""

    @property
    def region(self) -> str:
        """This store's region: the origin of its local writes."""
        ...

    def cursors(self) -> dict[str, Cursor]:
        """Per origin (including this region), the highest contiguous (seq, hlc) applied.
        An origin never seen is absent (= Cursor(0, 0))."""
        ...

    def table_state(self, table: str) -> TableState | None:
        """The table's replicated state (live or deleted), or None if never seen."""
        ...

    def changes_since(self, cursors: Cursors, limit: int) -> list[Change]:
        """At most `limit` changes from the changelog whose seq is above
        `cursors[origin].seq` (absent origin = 0), in the order THIS store applied them
        (so every origin's changes come in seq order and a table's creation comes before
        writes into it). Changes already purged are simply not returned; `log_start`
        says where each origin's retained log begins."""
        ...

    def log_start(self) -> dict[str, int]:
        """Per origin, the highest seq purged from the changelog (absent = 0): a peer
        whose cursor is below it cannot catch up from this log (anti-entropy needed)."""
        ...

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        """Apply remote changes, in order, in ONE transaction. For each change:
          - seq <= cursor.seq of its origin: a duplicate, skipped;
          - seq >  cursor.seq + 1: raise OutOfOrder — NOTHING of the call is applied;
          - otherwise: effects = merge.merge_change(change, <stored item>, <table state>)
            seeing the earlier changes of this same call; raise UnknownTable (nothing
            applied) if it does; write the effects (table states; drop every item and
            tombstone of a dropped table; items; conflicts appended to the conflict log);
            append the change to the changelog; set the origin's cursor to (seq, hlc).
        The caller has verified the changes' checksums (`decode_change`)."""
        ...

    def local_write(self, hlc: int, ops: Sequence[Op]) -> Change:
        """Commit a local write as the next change of this region, in ONE transaction:
        seq = own cursor.seq + 1; every ItemWrite's `prev` is set to the version stored
        for its key (None if none); then exactly as `apply` for that change (a write
        older than the stored version — possible only when a remote clock ran ahead
        beyond the skew bound — loses and is logged as a conflict). Returns the change
        as logged. Raises UnknownTable (nothing written) if an ItemWrite names a table
        that is not live here, and OutOfOrder if `hlc` <= own cursor.hlc."""
        ...

    def conflicts(self) -> list[Conflict]:
        """The conflict log, oldest first (bounded by the store's retention)."""
        ...

    def snapshot(self) -> Snapshot:
        """Live tables and live items with their versions."""
        ...

    def purge(self, plan: RetentionPlan, limit: int) -> int:
        """Delete at most `limit` changelog records (seq <= plan.purge_through[origin])
        and tombstones (version.hlc < plan.tombstone_horizon_hlc), raising log_start
        accordingly; cursors never move. Returns the number deleted."""
        ...


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
