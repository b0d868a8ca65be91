"""The outbox: every local write job logs ONE change in its own transaction.

Theory of operation: a write job ends by logging one `Change` (atoll.replication.change)
in the same transaction as its item, index and table rows, so there is no acknowledged
write that replication can miss (DESIGN.md decision 2). Item writes carry `prev`, the
version they overwrote, so receivers can tell a clean overwrite from a concurrent one.
DDL is a `TableOp` whose definition is region-independent (no local storage ids), and
records the table name's replicated state in the same transaction.
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll.engine.context import EngineContext
from atoll.engine.tabledef import EncodedKey, TableDef
from atoll.replication.change import (
    ItemJson,
    LoggedWrite,
    Op,
    TableOp,
    Version,
    encode_item_change,
    encode_new_change,
)
from atoll.replication.merge import TableState
from atoll.storage import WriteTxn

ItemOp = tuple[EncodedKey, ItemJson | None, tuple[bytes, int, int, str] | None]
"""(encoded key, the new item or None for a delete, the live row it replaces or None)."""


def table_definition(table: TableDef) -> dict[str, Any]:
    """The replicated form of a definition: without this node's storage id."""
    definition = table.to_json()
    definition.pop("tid", None)
    definition.pop("stream_sid", None)
    return definition


def definition_table(definition: dict[str, Any]) -> TableDef:
    return TableDef.from_json(definition)


def logged_write(txn: WriteTxn, table: TableDef, op: ItemOp) -> LoggedWrite:
    (h, pk, sk), item, old = op
    written = txn.prev_of(table.tid, h, pk, sk)  # what the row write recorded
    prev = written if written is not None else (old[2], old[3]) if old is not None else None
    return LoggedWrite(table.name, pk, sk, item, prev)


def log_writes(ctx: EngineContext, txn: WriteTxn, hlc: int, writes: list[LoggedWrite]) -> None:
    txn.log_change(hlc, encode_item_change(ctx.region, txn.next_seq, hlc, writes))


def log_item_changes(ctx: EngineContext, txn: WriteTxn, hlc: int, table: TableDef,
                     ops: list[ItemOp]) -> None:
    """Log one change for item writes: (key, new item or None, old row)."""
    log_writes(ctx, txn, hlc, [logged_write(txn, table, op) for op in ops])


def log_multi_table_changes(ctx: EngineContext, txn: WriteTxn, hlc: int,
                            groups: list[tuple[TableDef, list[ItemOp]]]) -> None:
    """One change for a transaction's item writes across tables, so replication
    applies the whole transaction atomically in every region."""
    log_writes(ctx, txn, hlc, [logged_write(txn, table, op)
                               for table, ops in groups for op in ops])


def log_ops(ctx: EngineContext, txn: WriteTxn, hlc: int, ops: list[Op]) -> None:
    txn.log_change(hlc, encode_new_change(ctx.region, txn.next_seq, hlc, ops))


def log_table_op(ctx: EngineContext, txn: WriteTxn, hlc: int, kind: str, name: str,
                 table: TableDef | None) -> None:
    """Log DDL and record the table's replicated state, in the DDL's transaction."""
    version = Version(hlc, ctx.region)
    previous = table_state(txn, name)
    created = version if kind == "create" or previous is None else previous.created
    definition = table_definition(table) if table is not None else None
    txn.set_table_state(name, tuple(created), tuple(version),  # type: ignore[arg-type]
                        orjson.dumps(definition) if definition is not None else None)
    log_ops(ctx, txn, hlc, [TableOp(name, kind, definition)])


def table_state(txn: WriteTxn, name: str) -> TableState | None:
    row = txn.table_state_row(name)
    if row is None:
        return None
    definition = orjson.loads(row[4]) if row[4] is not None else None
    return TableState(Version(row[0], row[1]), Version(row[2], row[3]), definition)
