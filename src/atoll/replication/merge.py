"""The merge rule: each item's causal state is joined (atoll.replication.itemstate).

Theory of operation: every stored item — live or a tombstone — keeps its causal state
beside it (`Stored.state`; b"" is the row form: one whole-item write at `version` over
`prev`). An item write in a change carries the writer's whole state of the item after
the write (the row form: the change's version over the op's `prev`), and applying it
JOINS that state into the stored one (`itemstate.apply_stored`): a write that has seen
a version supersedes it whatever the clocks, concurrent writes to different attributes
both survive, concurrent increments all count, set members merge add-wins, and only
truly concurrent writes of one attribute (or a whole-item write and a concurrent older
attribute write) are decided by (hlc, region). The join is commutative, associative and
idempotent, so any order of any set of changes, with duplicates, ends in the same state
and the same visible item in every region (tests/properties/test_merge_laws.py and
test_itemstate_laws.py). Conflicts are only what the join really lost (itemstate's
conflicts.py): causally ordered writes never produce one. Tombstones keep their state,
so a late write the delete observed cannot resurrect the item.

`decide` is the whole-item rule by versions alone (last writer wins by version, with
`prev` to tell a clean overwrite from a concurrent one), for comparing row versions where
no state is at hand (antientropy's version checks):
a write that loses without having been seen by the winner is a *concurrent* write:
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

Snapshots (a region rebuilt from a peer's state, `atoll.replication.rebuild`): each row
carries its causal state and joins into the local one exactly as an applied write does
(`join_write`); a table state replaces the local one only if its version is newer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from atoll.model.keys import decode_key_value
from atoll.model.writes import ADD_ELEMENTS, INCREMENT, AttributeWrite
from atoll.replication import itemstate
from atoll.replication.change import Change, ItemKey, ItemWrite, TableOp, Version
from atoll.replication.errors import BadChange, UnknownTable
from atoll.replication.itemstate import Dot


@dataclass(frozen=True, slots=True)
class Stored:
    """The newest version of one key in a store; `item is None` is a tombstone.
    `state`: the item's causal state as stored (b"": the row form `version`/`prev`
    rebuild); `version` is then the greatest write the state has seen."""

    version: Version
    item: dict[str, Any] | None
    prev: Version | None = None
    state: bytes = b""


@dataclass(frozen=True, slots=True)
class Conflict:
    """A concurrent write that lost, with both sides (decision 5). `kind` and
    `attribute` as in itemstate's Conflict: "item" (a whole-item write lost; the items
    are whole items), else the attribute's values ("replaced", "attribute") or hidden
    increments ("counter"). A side with no single write has version (0, region)."""

    table: str
    pk: bytes
    sk: bytes
    winner: Version
    winner_item: Any
    loser: Version
    loser_item: Any
    kind: str = "item"
    attribute: str = ""


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
        local = stored_of(op.key)
        joined, conflicts = join_write(local, op, version, table.definition or {})
        effects.conflicts.extend(conflicts)
        if joined is None:
            effects.ignored_writes += 1  # nothing new here (a duplicate, or superseded)
        else:
            effects.items[op.key] = joined
    return effects


def join_write(local: Stored | None, op: ItemWrite, version: Version,
               definition: dict[str, Any]) -> tuple[Stored | None, list[Conflict]]:
    """The stored item after joining the state `op` carries (written at `version`) into
    `local` (None: no row), or None when that changes nothing; and the conflicts the
    join revealed. `definition`: the table's, for its key attributes."""
    key = key_item(definition, op.pk, op.sk)
    incoming = itemstate.Stored(op.state, Dot(version.hlc, version.origin),
                                None if op.prev is None else Dot(op.prev.hlc, op.prev.origin))
    mine = None if local is None else itemstate.Stored(
        local.state, Dot(local.version.hlc, local.version.origin),
        None if local.prev is None else Dot(local.prev.hlc, local.prev.origin))
    new, item, losses, changed = itemstate.apply_stored(
        mine, None if local is None else local.item, incoming, op.item, key)
    conflicts = [_conflict(op, loss) for loss in losses]
    if not changed:
        return None, conflicts
    prev = None if new.prev is None else Version(new.prev.hlc, new.prev.region)
    return Stored(Version(new.version.hlc, new.version.region), item, prev, new.data), conflicts


def local_item_write(stored: Stored | None, op: ItemWrite, version: Version,
                     definition: dict[str, Any]) -> ItemWrite:
    """A local whole-item write (a put of `op.item`, or a delete) at `version`, made
    through the item's causal state as the engine's writes are (engine/causal.py): it
    removes everything of the item the stored state holds and records its own dot, so
    it supersedes what it saw in every region whatever the clocks. Returns the op with
    the new state and, in the row form, the `prev` that rebuilds it."""
    key = key_item(definition, op.pk, op.sk)
    old = None if stored is None else itemstate.Stored(
        stored.state, Dot(stored.version.hlc, stored.version.origin),
        None if stored.prev is None else Dot(stored.prev.hlc, stored.prev.origin))
    dot = Dot(version.hlc, version.origin)
    item = op.item
    if item is None:
        new = itemstate.delete_stored(old, dot)
    else:
        new, item = itemstate.put_stored(old, item, key.keys(), dot)
    prev = None if new.prev is None else Version(new.prev.hlc, new.prev.region)
    return dataclasses.replace(op, item=item, prev=prev, state=new.data)


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """A local UpdateItem of one top-level attribute, as the simulator's clients make it
    (the node's go through engine/causal.py): a number increment (`kind` INCREMENT,
    `operand` {"N": delta}), or set members added or deleted (ADD_ELEMENTS or
    DELETE_ELEMENTS, `operand` a set). Not replicated itself: `local_item_update` turns
    it into the ItemWrite that carries the item's new state."""

    table: str
    pk: bytes
    sk: bytes
    kind: str
    name: str
    operand: dict[str, Any]

    @property
    def key(self) -> ItemKey:
        return (self.table, self.pk, self.sk)


def local_item_update(stored: Stored | None, update: ItemUpdate, version: Version,
                      definition: dict[str, Any]) -> ItemWrite:
    """`update` at `version` through the item's causal state (itemstate.update_stored):
    the ItemWrite with the new state and the item it shows."""
    key = key_item(definition, update.pk, update.sk)
    old = None if stored is None else itemstate.Stored(
        stored.state, Dot(stored.version.hlc, stored.version.origin),
        None if stored.prev is None else Dot(stored.prev.hlc, stored.prev.origin))
    old_item = None if stored is None else stored.item
    current = None if old_item is None else old_item.get(update.name)
    value = _updated_value(current, update)
    write = AttributeWrite(update.kind, update.name, value, update.operand)
    new, item = itemstate.update_stored(old, old_item, [write], Dot(version.hlc, version.origin),
                                        key)
    prev = None if new.prev is None else Version(new.prev.hlc, new.prev.region)
    return ItemWrite(update.table, update.pk, update.sk, item, prev, new.data)


def _updated_value(current: Any, update: ItemUpdate) -> Any:
    """The attribute's new whole value as DynamoDB's evaluator computes it."""
    if update.kind == INCREMENT:
        number = isinstance(current, dict) and "N" in current
        base = Decimal(current["N"]) if number else Decimal(0)
        return {"N": itemstate.dynamodb_number(base + Decimal(update.operand["N"]))}
    kind, members = next(iter(update.operand.items()))
    held = set(current[kind]) if isinstance(current, dict) and kind in current else set()
    after = held | set(members) if update.kind == ADD_ELEMENTS else held - set(members)
    return {kind: sorted(after)} if after else None


def key_item(definition: dict[str, Any], pk: bytes, sk: bytes) -> dict[str, Any]:
    """The key attributes of an item, decoded from its encoded key with the table's key
    schema: the engine's definition form (hash_key/range_key, their types in
    attribute_types or hash_type/range_type) or DynamoDB's (KeySchema/
    AttributeDefinitions). A definition with neither (a bare test table) gives no key
    attributes: its items' states then hold them as attributes, alike in every region.
    A key decoded under the wrong type would not match the writer's item, so the types
    are read wherever the definition keeps them."""
    names: list[tuple[str, str]] = []
    if "hash_key" in definition:
        types = definition.get("attribute_types") or {}
        for name_field, type_field in (("hash_key", "hash_type"), ("range_key", "range_type")):
            name = definition.get(name_field)
            if name:
                names.append((name, definition.get(type_field) or types.get(name) or "S"))
    elif "KeySchema" in definition:
        types = {a["AttributeName"]: a["AttributeType"]
                 for a in definition.get("AttributeDefinitions") or ()}
        names = [(k["AttributeName"], types.get(k["AttributeName"], "S"))
                 for k in sorted(definition["KeySchema"], key=lambda k: k["KeyType"] != "HASH")]
    key: dict[str, Any] = {}
    try:
        for (name, kind), part in zip(names, (pk, sk)):
            key[name] = decode_key_value(part, kind)
    except ValueError as error:
        raise BadChange(f"item key does not decode under its table's key schema: {error}"
                        ) from None
    return key


def _conflict(op: ItemWrite, loss: itemstate.Conflict) -> Conflict:
    winner = Version(0, "") if loss.winner is None else Version(loss.winner.hlc,
                                                                 loss.winner.region)
    loser = Version(0, loss.loser_region) if loss.loser is None else Version(
        loss.loser.hlc, loss.loser.region)
    return Conflict(op.table, op.pk, op.sk, winner, loss.winner_value, loser, loss.loser_value,
                    loss.kind, loss.attribute)
