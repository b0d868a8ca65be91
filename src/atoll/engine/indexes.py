"""Secondary index maintenance: index rows written with their base item, and backfill.

Theory of operation
- An item belongs to an index when it has every key attribute of the index (sparse
  indexes: items without them are simply absent). Its index row holds the projected
  item: the whole item (ALL), or the table and index keys (KEYS_ONLY) plus the listed
  attributes (INCLUDE).
- Every write job that changes a base item calls `plan` *before* writing anything (so a
  bad index key rejects the write with nothing changed, and never poisons a batch), then
  `apply` after the item row: it removes the rows of the old item whose index key changed
  and writes the new ones. Both run in the same storage transaction as the item and its
  changelog record, so after a crash an index always matches its table.
- Write jobs use the write path's view of the table definition
  (the catalog's commit view), which DDL jobs update in commit order: a write queued behind
  an UpdateTable that adds an index maintains that index, whatever definition the request
  was validated against.
- A GSI added by UpdateTable starts CREATING; `backfill` walks the base table in chunks
  of BACKFILL_CHUNK_ITEMS, each its own write job, so the node keeps serving between
  chunks. Writes meanwhile maintain the index too, and each chunk reads the current items
  inside its job, so the result is exact. Items whose index key has the wrong type are
  skipped, as DynamoDB does. When the walk ends the index turns ACTIVE; a node restarted
  mid-backfill starts it again (writing an index row twice is harmless).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from atoll.engine import ddl, options
from atoll.engine.context import EngineContext
from atoll.engine.indexdef import GSI, MAX_GSIS, IndexDef, check_index_set, parse_index
from atoll.engine.tabledef import EncodedKey, TableDef, check_index_attributes, index_not_found
from atoll.errors import LimitExceeded, ServiceUnavailable, ValidationError
from atoll.model.keys import check_key_size, encode_key_value, partition_hash
from atoll.model.values import item_size, number_size
from atoll.storage import WriteTxn

log = logging.getLogger(__name__)

BACKFILL_CHUNK_ITEMS = 256  # one chunk holds the writer for a few ms
BACKFILL_RETRY_MIN_S = 0.1  # after a storage fault, the same chunk again (doubling)
BACKFILL_RETRY_MAX_S = 5.0
WRITE_UNIT_BYTES = 1024

# (index, h, pk, sk, projected item bytes, projected size)
Entry = tuple[IndexDef, int, bytes, bytes, bytes, int]
Plan = list[Entry]


def _key_part(index: IndexDef, item: dict[str, Any], name: str, kind: str,
              strict: bool) -> bytes | None:
    value = item.get(name)
    if value is None:
        return None
    if type(value) is not dict or len(value) != 1 or kind not in value:
        if not strict:
            return None
        actual = next(iter(value), "?") if type(value) is dict else "?"
        raise ValidationError("One or more parameter values were invalid: Type mismatch for "
                              f"Index Key {name} Expected: {kind} Actual: {actual} "
                              f"IndexName: {index.name}")
    if value[kind] == "":
        if not strict:
            return None
        raise ValidationError("One or more parameter values are not valid. A value specified "
                              "for a secondary index key is not supported. The AttributeValue "
                              "for a key attribute cannot contain an empty "
                              f"{'string' if kind == 'S' else 'binary'} value. "
                              f"IndexName: {index.name}, IndexKey: {name}")
    encoded = encode_key_value(value, kind)
    try:
        check_key_size(encoded, kind, partition=name == index.hash_key)
    except ValidationError:
        if not strict:
            return None
        raise
    return encoded


def index_key(table: TableDef, index: IndexDef, item: dict[str, Any],
              strict: bool) -> tuple[int, bytes, bytes] | None:
    """(h, pk, sk) of `item` in the index, or None when it is not in it (sparse)."""
    types = table.attribute_types
    pk = _key_part(index, item, index.hash_key, types[index.hash_key], strict)
    sk: bytes | None = b""
    if index.range_key is not None:
        sk = _key_part(index, item, index.range_key, types[index.range_key], strict)
    if pk is None or sk is None:
        return None
    return partition_hash(pk), pk, sk


def _projected_size(projected: dict[str, Any]) -> int:
    """DynamoDB size of an already validated and normalised (projected) item."""
    size = 0
    for name, value in projected.items():
        if "S" in value:
            text = value["S"]
            size += len(text) if text.isascii() else len(text.encode())
        elif "N" in value:
            size += number_size(value["N"])
        else:
            size += item_size({name: value})  # containers, binaries (rare): name included
            continue
        size += len(name) if name.isascii() else len(name.encode())
    return size


def entry_for(table: TableDef, index: IndexDef, item: dict[str, Any], item_bytes: bytes,
              size: int, strict: bool) -> Entry | None:
    """The index row of `item`, or None when the item is not in the index (sparse)."""
    key = index_key(table, index, item, strict)
    if key is None:
        return None
    if index.projection == "ALL":
        return index, key[0], key[1], key[2], item_bytes, size
    names = list(table.key_names()) + [k for k in index.key_names() if k not in table.key_names()]
    if index.projection == "INCLUDE":
        names += index.non_key_attributes
    projected = {n: item[n] for n in names if n in item}
    return index, key[0], key[1], key[2], orjson.dumps(projected), _projected_size(projected)


def plan(table: TableDef, item: dict[str, Any], item_bytes: bytes, size: int) -> Plan:
    """The index rows of an item being written; raises ValidationError for a bad index
    key (call before writing anything)."""
    entries = []
    for index in table.indexes:
        entry = entry_for(table, index, item, item_bytes, size, strict=True)
        if entry is not None:
            entries.append(entry)
    return entries


def apply(txn: WriteTxn, table: TableDef, key: EncodedKey, old_bytes: bytes | None,
          new: Plan | None) -> dict[str, float]:
    """Bring the index rows of one base item from its old state to `new` (None: deleted).

    As in DynamoDB, an index is written only when the item enters it, leaves it, moves
    within it (key changed: a delete and a put) or changes a projected attribute; a write
    that leaves its index row as it was costs that index nothing. Returns the write
    capacity units spent per index."""
    if not table.indexes:
        return {}
    units: dict[str, float] = {}
    fresh = {entry[0].name: entry for entry in new or ()}
    if old_bytes is not None:
        old_item = orjson.loads(old_bytes)
        for index in table.indexes:
            old_entry = entry_for(table, index, old_item, old_bytes, 0, strict=False)
            if old_entry is None:
                continue
            replacement = fresh.get(index.name)
            if replacement is not None and replacement[1:4] == old_entry[1:4]:
                if replacement[4] == old_entry[4]:
                    del fresh[index.name]  # same key, same projection: nothing to write
                continue
            txn.index_delete(table.tid, index.iid, *old_entry[1:4], key[1], key[2])
            units[index.name] = 1.0
    if fresh:
        txn.index_put_many([(table.tid, index.iid, h, pk, sk, key[1], key[2], item, size)
                            for index, h, pk, sk, item, size in fresh.values()])
        for name, entry in fresh.items():
            units[name] = units.get(name, 0.0) + max(1, -(-entry[5] // WRITE_UNIT_BYTES))
    return units


# --- DescribeTable: ItemCount and IndexSizeBytes -----------------------------------------

EXACT_STATS_MAX_ITEMS = 100_000  # counting more than this on each describe blocks the loop
STATS_CACHE_S = 10.0


def index_stats(ctx: EngineContext, table: TableDef, index: IndexDef) -> tuple[int, int]:
    """(ItemCount, IndexSizeBytes): counted exactly for small indexes; a large index's
    figures are reused for STATS_CACHE_S (DynamoDB itself refreshes them every few hours)."""
    cache = ctx.index_stats_cache
    key = (table.tid, index.iid)
    now_s = ctx.now_ms() / 1000
    cached = cache.get(key)
    if cached is not None and now_s - cached[0] < STATS_CACHE_S:
        return cached[1], cached[2]
    count, size = ctx.storage.index_stats(table.tid, index.iid)
    if count > EXACT_STATS_MAX_ITEMS:
        cache[key] = (now_s, count, size)
    else:
        cache.pop(key, None)
    return count, size


# --- UpdateTable: GlobalSecondaryIndexUpdates -------------------------------------------

def apply_gsi_updates(table: TableDef, updated: TableDef,
                      request: dict[str, Any]) -> tuple[list[str], list[int]]:
    """Apply Create/Update/Delete entries to `updated` (a copy of `table`); returns the
    names of the indexes to backfill and the iids whose rows must go."""
    updates = request["GlobalSecondaryIndexUpdates"]
    creating = [i.name for i in table.indexes if i.status in ("CREATING", "DELETING")]
    online = [u for u in updates if u.get("Create") or u.get("Delete")]
    if creating and online:
        raise LimitExceeded("Subscriber limit exceeded: Only 1 online index can be created or "
                            "deleted simultaneously per table")
    if len(online) > 1:
        raise LimitExceeded("Subscriber limit exceeded: Only 1 online index can be created or "
                            "deleted simultaneously per table")
    for definition in request.get("AttributeDefinitions") or ():
        attr, kind = definition["AttributeName"], definition["AttributeType"]
        if updated.attribute_types.get(attr, kind) != kind:
            raise ValidationError("One or more parameter values were invalid: Cannot change the "
                                  f"type of attribute {attr}")
        updated.attribute_types[attr] = kind
    backfill: list[str] = []
    dropped: list[int] = []
    for entry in updates:
        actions = [a for a in ("Create", "Update", "Delete") if entry.get(a) is not None]
        if len(actions) != 1:
            raise ValidationError("One or more parameter values were invalid: exactly one of "
                                  "Create, Update or Delete must be given per index update")
        spec = entry[actions[0]]
        name = spec["IndexName"]
        existing = updated.find_index(name)
        if actions[0] == "Create":
            if existing is not None:
                raise ValidationError("One or more parameter values were invalid: Index "
                                      f"already exists: {name}")
            index = parse_index(spec, GSI, updated.hash_key, updated.range_key,
                                updated.billing_mode)
            if sum(1 for i in updated.indexes if i.kind == GSI) >= MAX_GSIS:
                raise LimitExceeded("GlobalSecondaryIndex count exceeds the per-table limit "
                                    f"of {MAX_GSIS}")
            index.iid = updated.next_iid
            index.status = "CREATING"
            updated.next_iid += 1
            updated.indexes.append(index)
            backfill.append(name)
        elif existing is None or existing.kind != GSI:
            raise index_not_found(updated, name)
        elif actions[0] == "Delete":
            updated.indexes.remove(existing)
            dropped.append(existing.iid)
        else:
            throughput = spec.get("ProvisionedThroughput") or {}
            existing.read_capacity = int(throughput.get("ReadCapacityUnits",
                                                         existing.read_capacity))
            existing.write_capacity = int(throughput.get("WriteCapacityUnits",
                                                          existing.write_capacity))
            existing.options = options.index_options(spec, updated.billing_mode, name,
                                                     existing.options)
    check_index_set(updated.indexes)
    # definitions no index uses any more are dropped, as DynamoDB does
    used = set(updated.key_names())
    for index in updated.indexes:
        used.update(index.key_names())
    updated.attribute_types = {n: t for n, t in updated.attribute_types.items() if n in used}
    check_index_attributes(updated)
    return backfill, dropped


async def backfill(ctx: EngineContext, table_name: str, index_name: str) -> None:
    """Index every existing item, chunk by chunk, then turn the index ACTIVE."""
    table = ctx.catalog.get(table_name)
    if table is None:
        return
    tid = table.tid
    after: tuple[int, bytes, bytes] | None = None
    indexed = 0

    def chunk(txn: WriteTxn) -> tuple[tuple[int, bytes, bytes] | None, int, bool]:
        current = ctx.catalog.current_by_tid(tid)
        index = current.find_index(index_name) if current is not None else None
        if current is None or index is None or index.status != "CREATING":
            return None, 0, False  # the table or the index went away meanwhile
        rows = txn.scan_chunk(tid, after, BACKFILL_CHUNK_ITEMS)
        count = 0
        for _h, pk, sk, item_bytes, size in rows:
            entry = entry_for(current, index, orjson.loads(item_bytes), item_bytes, size,
                              strict=False)
            if entry is not None:
                txn.index_put(tid, index.iid, entry[1], entry[2], entry[3], pk, sk,
                              entry[4], entry[5])
                count += 1
        if len(rows) < BACKFILL_CHUNK_ITEMS:
            return None, count, True
        last = rows[-1]
        return (last[0], last[1], last[2]), count, True

    backoff_s = BACKFILL_RETRY_MIN_S
    while True:
        try:
            after, count, alive = await ctx.storage.write(chunk)
        except ServiceUnavailable as exc:  # a storage fault (a full disk): retry the chunk
            log.warning("backfill of %s.%s paused: %s", table_name, index_name, exc)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, BACKFILL_RETRY_MAX_S)
            continue
        backoff_s = BACKFILL_RETRY_MIN_S
        indexed += count
        if not alive:
            return
        if after is None:
            break
    log.info("backfilled %d items into %s.%s", indexed, table_name, index_name)

    async with ctx.catalog.ddl_lock:
        current = ctx.catalog.get(table_name)
        if current is None or current.tid != tid:
            return
        index = current.find_index(index_name)
        if index is None or index.status != "CREATING":
            return
        updated = current.copy()
        updated.index(index_name).status = "ACTIVE"
        await ddl.replace_definition(ctx, current, updated)
