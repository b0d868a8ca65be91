"""Atoll's internal tables: cluster data kept in tables no request can name.

Theory of operation: some cluster data (access keys, atoll.node.keys) must reach every
region the way table data does — written through the engine's ordinary write path, so
each write logs one change, replicates, is repaired by anti-entropy and survives a
rebuild from a peer's snapshot. Such data lives in tables whose names start with
`atoll:`. A DynamoDB table name cannot contain ':' (`[a-zA-Z0-9_.-]{3,255}`), so no
user table can collide with one, and the api layer refuses any request that names one
(atoll.api.access): they are hidden from ListTables, DescribeTable, PartiQL and every
other operation.

An internal table is not created by a replicated CreateTable: every node creates it
locally, before it serves, with the same definition and the same replicated table
state (`internal_table_state`, version (1, "atoll")) in every region. Two regions
creating the same table concurrently would otherwise be two incarnations, and the one
that lost the merge would drop the rows written to it meanwhile.
"""

from __future__ import annotations

from typing import Final

import orjson

from atoll.engine.context import EngineContext
from atoll.engine.outbox import table_definition
from atoll.engine.tabledef import TableDef, parse_create_table
from atoll.storage import WriteTxn

PREFIX: Final = "atoll:"
KEYS_TABLE = "atoll:keys"
# The replicated state every region gives an internal table: (hlc, origin) of its
# creation and of its definition. Any real write has a greater hlc.
CREATED_VERSION = (1, "atoll")
# A fixed identity, the same in every region (see tabledef's table_id).
_TABLE_IDS = {KEYS_TABLE: "00000000-0000-4000-8000-000000000001"}


def is_internal(name: str) -> bool:
    return name.startswith(PREFIX)


def keys_table_definition() -> TableDef:
    """The access keys table: one item per key, keyed by its id (a string)."""
    table = parse_create_table({
        "TableName": "keys", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "key_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "key_id", "AttributeType": "S"}]}, 0.0)
    table.name = KEYS_TABLE
    table.table_id = _TABLE_IDS[KEYS_TABLE]
    return table


async def ensure_internal_table(ctx: EngineContext, table: TableDef) -> TableDef:
    """Create `table` here unless it exists: stored, its replicated state set to the
    same value every region sets, published in the catalog. No change is logged.

    Whether it exists is decided inside the write job, under the storage's write lock:
    nodes sharing one region's storage (PostgreSQL) that start at the same moment all
    miss it in their catalogs, and all but the first find it stored and adopt it."""
    existing = ctx.catalog.get(table.name)
    if existing is not None:
        return existing
    definition = table_definition(table)

    def job(txn: WriteTxn) -> TableDef:
        stored = txn.table_row(table.name)
        if stored is not None:  # another node of the region created it first
            found = TableDef.from_json(orjson.loads(stored[1]))
            found.tid = stored[0]
            ctx.catalog.committed_create(found)
            return found
        table.tid = txn.create_table(table.name, orjson.dumps(table.to_json()))
        txn.set_table_state(table.name, CREATED_VERSION, CREATED_VERSION,
                            orjson.dumps(definition))
        ctx.catalog.committed_create(table)
        return table

    created: TableDef = await ctx.storage.write(job)
    ctx.catalog.publish(created)
    return created
