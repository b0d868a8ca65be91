"""Streams in the write path: records captured with their writes, streams kept in step
with table definitions.

Theory of operation
- Capture. Every item write this region stores — a local write (items.put_row and
  delete_row, which every API write goes through) or a peer's change applied here (the
  replica's one point of storing an item) — passes the item as it was before and as it
  is after, *as this region stores them*, to `capture`, in the write's own transaction. If the table's stream is enabled,
  `atoll.streams.records.stream_record` makes the record (or none, for a write that
  changed nothing) and the storage appends it at the region's next position. So a
  stream holds exactly the changes applied here, each once (apply is exactly-once, and
  the record commits or rolls back with its write), in the order they were applied,
  with this region's images. Tables without a stream cost one attribute test.
  Records are stored beside the changelog rather than read from it: a change's body
  says what its origin wrote, not what this region's item became when it was merged,
  not whether it changed anything here, and not whether it was an INSERT here. Only
  what the view type shows is stored (KEYS_ONLY: the keys), for tables with a stream
  only; records keep their own 24 hours, so replication's purge of the changelog never
  shortens a stream.
- Definitions. A table definition carries the stream's view type and label (replicated
  with the definition, so every region has the same stream) and this region's storage
  id of it (`stream_sid`, local like `tid`). Wherever a definition is stored — CreateTable,
  UpdateTable and other rewrites, DeleteTable, a peer's DDL applied here — `reconcile`
  runs in that transaction: a stream that is no longer the enabled one is disabled
  (closing its open shard; it stays readable for 24 hours), a newly enabled one is
  opened (from the next position: it holds the changes applied after it was enabled
  here).
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll.engine.context import EngineContext
from atoll.engine.tabledef import EncodedKey, TableDef
from atoll.storage import WriteTxn
from atoll.streams.records import BY_TTL, KeysRenderer, Materialized, stream_record
from atoll.streams.spec import check_update, new_label, wanted_view_type


def capture(txn: WriteTxn, table: TableDef, pk: bytes, sk: bytes, old: Materialized | None,
            new: Materialized | None, origin: str, now_ms: int, flags: int = 0) -> None:
    """Record one item write of `table` (its definition as of this transaction) in its
    stream, if it has one enabled: the item at key (pk, sk) as stored before (`old`) and
    after (`new`), each (item JSON, size) or None."""
    view_type = table.stream_view_type
    if view_type is None or not table.stream_sid:
        return
    keys = _keys_renderer(table).render((pk, sk))
    made = stream_record(view_type, table.key_names(), keys, old, new)
    if made is not None:
        txn.stream_append(table.stream_sid, now_ms, made[0] | flags, origin, made[1])


# A table's identity (table_id: one table's life, whose key schema cannot change) -> its
# key attributes' names and its Keys renderer: one entry per table written with a stream,
# emptied if it ever grows past the bound. The names are compared on each use, so an
# identity that came back with another key schema gets a renderer of its own.
_KEYS_RENDERERS: dict[str, tuple[str, str | None, KeysRenderer]] = {}
MAX_KEYS_RENDERERS = 4096


def _keys_renderer(table: TableDef) -> KeysRenderer:
    range_key = table.range_key
    entry = _KEYS_RENDERERS.get(table.table_id)
    if entry is not None and entry[0] == table.hash_key and entry[1] == range_key:
        return entry[2]
    if len(_KEYS_RENDERERS) >= MAX_KEYS_RENDERERS:
        _KEYS_RENDERERS.clear()
    parts = [(table.hash_key, table.hash_type)]
    if range_key is not None:
        parts.append((range_key, table.range_type or "S"))
    renderer = KeysRenderer(parts)
    _KEYS_RENDERERS[table.table_id] = (table.hash_key, range_key, renderer)
    return renderer


def capture_local(ctx: EngineContext, txn: WriteTxn, table: TableDef, key: EncodedKey,
                  old: tuple[bytes, int, int, str] | None, new: Materialized | None,
                  by_ttl: bool = False) -> None:
    """Record a local item write (items.put_row and delete_row, the engine's one point of
    storing a local item): `old` the row it replaced, `new` what it stored."""
    if table.stream_sid:
        capture(txn, table, key[1], key[2], (old[0], old[1]) if old is not None else None,
                new, ctx.region, ctx.now_ms(), BY_TTL if by_ttl else 0)


def update_specification(table: TableDef, updated: TableDef, spec: dict[str, Any],
                         now_ms: int) -> None:
    """UpdateTable's StreamSpecification, applied to `updated` (a copy of `table`)."""
    wanted = wanted_view_type(spec)
    check_update(table.name, table.stream_view_type, wanted)
    updated.stream_view_type = wanted
    if wanted is not None:
        updated.stream_label = new_label(now_ms, table.stream_label)


def reconcile(txn: WriteTxn, before: TableDef | None, after: TableDef | None,
              now_ms: int) -> None:
    """In the transaction storing `after` in place of `before` (either None for a table
    created or dropped): disable the stream `before` had if `after` does not have it,
    open the one `after` has if `before` did not, and set `after.stream_sid`."""
    old = _enabled(before)
    new = _enabled(after)
    if before is not None and old is not None and old != new and before.stream_sid:
        txn.stream_close(before.stream_sid, now_ms)
    if after is None:
        return
    if new is None:
        after.stream_sid = 0
    elif new == old and before is not None and before.stream_sid:
        after.stream_sid = before.stream_sid
    else:
        after.stream_sid = txn.stream_open(after.name, new[1], new[2],
                                           orjson.dumps(after.key_schema()), now_ms)


def _enabled(table: TableDef | None) -> tuple[str, str, str] | None:
    """(table name, label, view type) of a definition's enabled stream."""
    if table is None or table.stream_view_type is None or table.stream_label is None:
        return None
    return table.name, table.stream_label, table.stream_view_type
