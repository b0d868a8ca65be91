"""Item states beside the rows of a live node (either storage), and in its changes: a
PutItem stores the row form (no state bytes; the change carries `x` null), an ADD stores
the state the core made and the change carries the same document, a DeleteItem keeps a
counter's floors in its tombstone; what GetItem returns is always the plain item."""

from __future__ import annotations

from typing import Any

import orjson

from atoll.replication.change import FORMAT_VERSION, ItemWrite, decode_change
from tests.support import NodeDatabase, create_table


def _rows(server: Any, table: str) -> tuple[Any, Any, Any]:
    """(items.state, tombstones.state, the last change) of the table's one key."""
    with NodeDatabase(server) as database:
        tid = database.one("SELECT tid FROM tables WHERE name = ?", (table,))[0]
        item = database.one("SELECT state FROM items WHERE tid = ?", (tid,))
        tomb = database.one("SELECT state FROM tombstones WHERE tid = ?", (tid,))
        body = database.one("SELECT body FROM changelog WHERE origin = ?"
                            " ORDER BY origin_seq DESC LIMIT 1", ("local",))[0]
    change = decode_change(bytes(body))
    return (None if item is None else item[0], None if tomb is None else tomb[0],
            change)


def _state(raw: Any) -> Any:
    return None if raw is None else orjson.loads(bytes(raw))


def test_rows_and_changes_carry_the_state_the_core_made(ddb: Any, server: Any,
                                                        table_name: str) -> None:
    table = create_table(ddb, table_name)
    key = {"pk": {"S": "k"}}
    ddb.put_item(TableName=table, Item={**key, "n": {"N": "5"}, "s": {"SS": ["b", "a"]}})
    item_state, _tomb, change = _rows(server, table)
    assert change.format == FORMAT_VERSION
    op = change.ops[0]
    assert isinstance(op, ItemWrite) and op.state == b"" and item_state is None  # row form
    assert op.item == {**key, "n": {"N": "5"}, "s": {"SS": ["a", "b"]}}  # sets canonical

    ddb.update_item(TableName=table, Key=key, UpdateExpression="ADD n :d",
                    ExpressionAttributeValues={":d": {"N": "3"}})
    item_state, _tomb, change = _rows(server, table)
    op = change.ops[0]
    assert isinstance(op, ItemWrite) and op.state and _state(item_state) == _state(op.state)
    assert _state(op.state)["a"]["n"]["n"] == {"local": ["3"]}  # this region's increments
    assert ddb.get_item(TableName=table, Key=key)["Item"]["n"] == {"N": "8"}

    ddb.delete_item(TableName=table, Key=key)
    item_state, tomb_state, change = _rows(server, table)
    assert item_state is None and change.ops[0].item is None  # type: ignore[union-attr]
    # the delete reset the counter: its floors rose to the increments it observed
    assert _state(tomb_state)["a"]["n"]["n"] == {"local": ["3", "0", "3"]}
    assert _state(change.ops[0].state) == _state(tomb_state)  # type: ignore[union-attr]
    assert "Item" not in ddb.get_item(TableName=table, Key=key)
