"""Local writes through the per-item causal state (atoll.replication.itemstate).

Theory of operation: every local write of an item — PutItem, DeleteItem, UpdateItem, a
transaction's or a batch's action, a TTL deletion — reads the stored form of the item's
state (`WriteTxn.item_state`: the live row's, else the tombstone's), makes its new state
through the core with its own dot (the write's hlc, this region) and stores it beside the
item. The item the row keeps, and that everything reading items sees (conditions,
ReturnValues, Streams images, indexes, item size), is the state's visible item: for a
put the request's item with top-level sets in canonical order, for an update the
evaluator's new item (the core checks they agree), for a delete none.

A write observes exactly the state it read, so a later write supersedes it in every
region whatever the clocks; an UpdateItem is split into per-attribute writes
(atoll.expressions.attrwrites) so concurrent updates of different attributes, counter
increments and set additions all survive (DESIGN.md decision 5).

The whole-item rule: a table tagged `atoll:merge = item` (tags live in the definition,
so the rule replicates with it) writes every UpdateItem as a put of its new image, as
DynamoDB global tables do: still causal, but whole-item, and counters are plain numbers.
"""

from __future__ import annotations

from typing import Any, Final

from atoll.engine.tabledef import MERGE_TAG, EncodedKey, TableDef
from atoll.expressions.attrwrites import attribute_writes
from atoll.expressions.paths import Path
from atoll.expressions.update import Update
from atoll.invariant import invariant
from atoll.replication.itemstate import (
    Dot,
    Stored,
    as_stored,
    delete_stored,
    put_stored,
    update_stored,
)
from atoll.storage import WriteTxn

Item = dict[str, Any]

WHOLE_ITEM: Final = "item"  # the value of the tag MERGE_TAG that opts a table out


def whole_item(table: TableDef) -> bool:
    """Whether the table opted out of attribute-level merge (tag `atoll:merge = item`)."""
    return table.tags.get(MERGE_TAG) == WHOLE_ITEM


def prior(txn: WriteTxn, table: TableDef, key: EncodedKey) -> Stored | None:
    """The stored form of the item's state before this write (None: never written)."""
    found = txn.item_state(table.tid, key[0], key[1], key[2])
    return None if found is None else as_stored(found)


def _checked(stored: Stored, dot: Dot) -> Stored:
    """A change logs a row-form state as its own version and `prev` alone, so a row
    form must be the write's own whole-item write."""
    if not stored.data and stored.version != dot:  # invariant() called only when it fails
        invariant(False, "a local write's row-form state is its own whole-item write")
    return stored


def put(txn: WriteTxn, table: TableDef, key: EncodedKey, item: Item, dot: Dot
        ) -> tuple[Stored, Item]:
    """A PutItem's new stored state and visible item."""
    stored, shown = put_stored(prior(txn, table, key), item, table.key_names(), dot)
    return _checked(stored, dot), shown


def delete(txn: WriteTxn, table: TableDef, key: EncodedKey, dot: Dot) -> Stored:
    """A DeleteItem's new stored state (the item is gone; the state keeps its context
    and the floors of any counters, so a concurrent increment elsewhere still counts)."""
    return _checked(delete_stored(prior(txn, table, key), dot), dot)


def update(txn: WriteTxn, table: TableDef, key: EncodedKey, old_item: Item | None, new_item: Item, parsed: Update | None,
           names: dict[str, str], values: dict[str, Any], dot: Dot,
           resolved: list[Path] | None = None) -> tuple[Stored, Item]:
    """An UpdateItem's new stored state and visible item: `new_item` is the evaluator's
    result for `old_item` (None: the item did not exist), `parsed` the update."""
    key_names = table.key_names()
    if whole_item(table):
        stored, shown = put_stored(prior(txn, table, key), new_item, key_names, dot)
    else:
        writes = [] if parsed is None else attribute_writes(parsed, names, values, old_item,
                                                              new_item, resolved)
        key_values = {name: new_item[name] for name in key_names}  # as stored (normalised)
        # the storage's tuple as it is: the fast path needs no Stored (nor its Dots)
        before = txn.item_state(table.tid, key[0], key[1], key[2])
        stored, shown = update_stored(before, old_item, writes, dot, key_values)
    return _checked(stored, dot), shown
