"""The merge rule: last writer wins per item, by version (hlc, origin).

Theory of operation: every stored item — live or a tombstone — keeps the version of the
write that produced it and the version that write overwrote (`prev`). An incoming write
is applied iff its version is greater than the stored one; this is a max over a total
order, so applying any set of writes in any order, with duplicates, ends in the same
state (idempotent, commutative, associative: tests/properties/test_merge_laws.py).
Tombstones keep their version, so a late, older put cannot resurrect a deleted item.

Conflicts: a write that loses without having been seen by the winner is a *concurrent*
write and is recorded (DESIGN.md decision 5):
  - the incoming write wins but its `prev` is not the stored version: the stored one lost;
  - the incoming write loses and the stored write's `prev` is not the incoming version:
    the incoming one lost.
Two concurrent deletes of one item are a conflict by this rule, but they agree (the
item is gone either way): nothing was lost, and the apply records nothing
(`atoll.replication.apply.write_effects`, `agree`).
A region that sees a causal chain out of order (A1, then B2 which overwrote A1, arrives
after A3 which overwrote B2) may log a loss that was not concurrent: the conflict log
can hold false positives, never false negatives — the loser's origin always sees it.

Tables: DDL merges per table name. Creates are last-writer-wins by version; an update
changes the definition of a live table if newer; a delete is final for that table (a
concurrent update never resurrects it) and drops its items. Writes into a deleted table
are dropped. Writes or DDL into a table this region has never seen raise UnknownTable:
the creation has not arrived yet, so the change is held (its origin's cursor waits).
A create that wins over a live table of another creation replaces it: the items of the
old incarnation go (`drops_items`).

Snapshots (a region rebuilt from a peer's state, `atoll.replication.rebuild`) merge by
the same order: a row or table state replaces the local one only if its version is newer,
and a local version a row replaces is logged as a conflict's loser (`decide_snapshot_row`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from atoll.replication.change import Change, ItemKey, ItemWrite, TableOp, Version
from atoll.replication.errors import UnknownTable


@dataclass(frozen=True, slots=True)
class Stored:
    """The newest version of one key in a store; `item is None` is a tombstone."""

    version: Version
    item: dict[str, Any] | None
    prev: Version | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    """A concurrent write that lost last-writer-wins, with both sides (decision 5)."""

    table: str
    pk: bytes
    sk: bytes
    winner: Version
    winner_item: dict[str, Any] | None
    loser: Version
    loser_item: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ItemDecision:
    apply: bool
    conflict: Conflict | None = None


@dataclass(frozen=True, slots=True)
class TableState:
    """One table name's replicated state; `definition is None` means deleted."""

    created: Version
    version: Version
    definition: dict[str, Any] | None

    @property
    def live(self) -> bool:
        return self.definition is not None


def decide(stored: Stored | None, write: ItemWrite, version: Version) -> ItemDecision:
    """Whether `write` (at `version`) replaces `stored`, and the conflict it reveals."""
    if stored is None:
        return ItemDecision(True)
    if version == stored.version:
        return ItemDecision(False)  # a duplicate delivery: already applied
    if version > stored.version:
        if write.prev == stored.version:
            return ItemDecision(True)
        return ItemDecision(True, Conflict(write.table, write.pk, write.sk, version, write.item,
                                           stored.version, stored.item))
    if stored.prev == version:
        return ItemDecision(False)  # the stored write knowingly overwrote this one
    return ItemDecision(False, Conflict(write.table, write.pk, write.sk, stored.version,
                                        stored.item, version, write.item))


def agree(conflict: Conflict) -> bool:
    """Both sides of the conflict deleted the item: nothing was lost."""
    return conflict.winner_item is None and conflict.loser_item is None


def drops_items(old: TableState | None, new: TableState) -> bool:
    """Whether a table going from `old` to `new` loses its items and tombstones: it was
    live and is now deleted, or another creation of the same name replaced it."""
    return old is not None and old.live and (not new.live or new.created != old.created)


def decide_snapshot_row(stored: Stored | None, key: ItemKey, incoming: Stored) -> ItemDecision:
    """Whether a snapshot's row replaces the stored version of its key (if newer), and
    the conflict that reveals: the stored version lost, and nothing says the row's write
    knew it (a snapshot keeps no `prev`, so this may be a false positive; never a false
    negative — this region never sees the changes the snapshot stands for)."""
    if stored is None:
        return ItemDecision(True)
    if incoming.version <= stored.version:
        return ItemDecision(False)
    if incoming.prev == stored.version or (incoming.item is None and stored.item is None):
        return ItemDecision(True)
    return ItemDecision(True, Conflict(key[0], key[1], key[2], incoming.version, incoming.item,
                                       stored.version, stored.item))


def snapshot_table_wins(local: TableState | None, incoming: TableState) -> bool:
    """Whether a snapshot's table state replaces the local one."""
    return local is None or incoming.version > local.version


def decide_table(state: TableState | None, op: TableOp, version: Version) -> TableState | None:
    """The table's new state after `op`, or None when `op` changes nothing.
    Raises UnknownTable for an update or delete of a table never seen here."""
    if op.kind == "create":
        if state is None or version > state.created:
            return TableState(version, version, op.definition)
        return None
    if state is None:
        raise UnknownTable(op.table)
    if not state.live:
        # A delete is final: later DDL of the dead table is dropped, except that of two
        # concurrent deletes the greater version is kept, so every region ends equal.
        if op.kind == "delete" and version > state.version:
            return TableState(state.created, version, None)
        return None
    if op.kind == "delete":
        return TableState(state.created, version, None)
    if version > state.version:
        return TableState(state.created, version, op.definition)
    return None


@dataclass(slots=True)
class ChangeEffects:
    """What one change does to a store: written as one unit, in this order — tables
    (a table op is a change of its own), items, conflicts."""

    tables: dict[str, TableState] = field(default_factory=dict)
    items: dict[ItemKey, Stored] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    ignored_writes: int = 0  # writes into deleted tables, or older than the stored version


def merge_change(change: Change, stored_of: Callable[[ItemKey], Stored | None],
                 table_of: Callable[[str], TableState | None]) -> ChangeEffects:
    """The effects of applying `change` to a store read through `stored_of`/`table_of`.
    Pure: the store calls it inside its transaction and writes the effects."""
    effects = ChangeEffects()
    version = change.version
    for op in change.ops:
        if isinstance(op, TableOp):
            state = decide_table(table_of(op.table), op, version)
            if state is not None:
                effects.tables[op.table] = state
            continue
        table = table_of(op.table)
        if table is None:
            raise UnknownTable(op.table)
        if not table.live:
            effects.ignored_writes += 1
            continue
        decision = decide(stored_of(op.key), op, version)
        if decision.conflict is not None:
            effects.conflicts.append(decision.conflict)
        if decision.apply:
            effects.items[op.key] = Stored(version, op.item, op.prev)
        else:
            effects.ignored_writes += 1
    return effects
