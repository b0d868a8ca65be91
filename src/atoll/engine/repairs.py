"""Repairs: a DIVERGED key's winning version written into this region, and the repair log.

Theory of operation: verify (atoll.antientropy) picks the winner of a key with the merge
rule and sends it whole; `repair_job` writes it here in ONE write transaction, the way
an applied change would be written — item row, index rows, tree — but with no changelog
record and no cursor move (the change it stands for was already applied everywhere it
had to be, or was lost: a repair is not a new change). Inside the transaction it reads
the key's tree row as stored, checksum failures included, and lets
`antientropy.repair.repair_applies` decide: written only if the row is still what
verify saw (a compare-and-set on its leaf) or the winner supersedes what is there now,
so a write that landed meanwhile is never overwritten by an older version and a repair
applied twice writes nothing the second time. Every repair, written or not, is recorded
in the repair log (`GET /_atoll/repairs`, `atoll repairs`).

The replaced row's index rows are found from its stored bytes when they still parse (a
flipped byte usually leaves them parseable); when they do not, the winner's own index
rows still replace any row with the same index key.
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll.antientropy import APPLIED, RepairLogEntry, RepairRecord
from atoll.antientropy.repair import repair_applies
from atoll.antientropy.store import Entry
from atoll.antientropy.verdict import describe_version
from atoll.antientropy.versions import HLC_SCHEME, BadVersion, decode_hlc_version
from atoll.engine import indexes
from atoll.engine.context import EngineContext
from atoll.errors import AtollError
from atoll.model.keys import partition_hash
from atoll.model.values import item_size
from atoll.storage import WriteTxn
from atoll.storage.treeprotocol import TreeRow, TreeWriteJob, TreeWriteTxn, tree_version

REFUSED_NO_TABLE = "refused: no such table"
REFUSED_VERSION = "refused: unreadable version"
REFUSED_INDEX = "refused: the item does not fit this region's indexes"


def row_entry(row: TreeRow) -> Entry:
    """A storage tree row as the verify core's Entry."""
    return Entry(row.pk, row.sk, tree_version(row.hlc, row.origin), row.item, row.intact)


def repair_job(ctx: EngineContext, record: RepairRecord, now_ms: int) -> TreeWriteJob:
    """The write job applying `record` here and logging it; its result is the log entry."""

    def job(txn: TreeWriteTxn) -> RepairLogEntry:
        found = txn.table_row(record.table)
        table = None if found is None else ctx.catalog.current_by_tid(found[0])
        h = partition_hash(record.pk)
        row = None if table is None else txn.tree_row(table.tid, h, record.pk, record.sk)
        current = None if row is None else row_entry(row)
        if table is None:
            outcome = REFUSED_NO_TABLE
        else:
            outcome = repair_applies(record, current, HLC_SCHEME)
        if outcome == APPLIED and table is not None:
            outcome = _write(ctx, txn, table, h, record, row)
        entry = RepairLogEntry(
            now_ms, ctx.region, record.table, record.pk, record.sk,
            describe_version(record.version, HLC_SCHEME), record.source,
            None if current is None else describe_version(current.version, HLC_SCHEME),
            record.reason, record.concurrent, outcome)
        txn.record_repair(now_ms, record.table, repair_record(entry))
        return entry

    return job


def _write(ctx: EngineContext, txn: WriteTxn, table: Any, h: int, record: RepairRecord,
           row: TreeRow | None) -> str:
    try:
        version, _prev = decode_hlc_version(record.version)
    except BadVersion:
        return REFUSED_VERSION
    key = (h, record.pk, record.sk)
    live = row if row is not None and row.item is not None else None
    old_bytes = _parseable(live.item) if live is not None and live.item is not None else None
    current = ctx.catalog.current(table)
    if record.item is None:
        if live is None:
            txn.delete_absent(table.tid, h, record.pk, record.sk, version.hlc, version.origin)
        else:
            txn.delete(table.tid, h, record.pk, record.sk, version.hlc, version.origin,
                       live.size)
            indexes.apply(txn, current, key, old_bytes, None)
    else:
        item = orjson.loads(record.item)
        size = item_size(item)
        try:
            plan = indexes.plan(current, item, record.item, size) if current.indexes else None
        except AtollError:
            return REFUSED_INDEX
        txn.put(table.tid, h, record.pk, record.sk, record.item, size, version.hlc,
                version.origin, None if live is None else live.size)
        indexes.apply(txn, current, key, old_bytes, plan)
    ctx.clock.observe(version.hlc)  # a later local write of the key supersedes the repair
    return APPLIED


def _parseable(raw: bytes) -> bytes | None:
    """The stored bytes if they still read as an item (a damaged row's may not)."""
    try:
        return raw if isinstance(orjson.loads(raw), dict) else None
    except orjson.JSONDecodeError:
        return None


def repair_record(entry: RepairLogEntry) -> bytes:
    """A repair log record (JSON), as `GET /_atoll/repairs` serves it."""
    return orjson.dumps({
        "region": entry.region, "table": entry.table, "pk": entry.pk.hex(),
        "sk": entry.sk.hex(), "winner": entry.winner, "source": entry.source,
        "replaced": entry.replaced, "reason": entry.reason, "conflict": entry.conflict,
        "outcome": entry.outcome})
