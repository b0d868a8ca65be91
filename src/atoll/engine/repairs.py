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

The winner comes with its causal state (`Entry.causal`, made by `causal_bytes` where
it was fetched) and is stored the way replication applies a write: its state JOINED into
the target's (`merge.join_write`), so the repaired row holds what the source's holds —
and anything the target held that the source never saw — and merges later writes as
every other region does. A target row that cannot be joined — its bytes fail their
checksum, it holds the winner's version with other contents (edited or rotted: one
version has one content), or its state contradicts the winner's — is replaced by the
winner and its state as they came (the join into no row, which still checks the state
against the item). What the join reveals as lost goes to the conflict log, as on apply.

The replaced row's index rows are found from its stored bytes when they still parse (a
flipped byte usually leaves them parseable); when they do not, the winner's own index
rows still replace any row with the same index key.
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll.antientropy import ALREADY, APPLIED, RepairLogEntry, RepairRecord
from atoll.antientropy.repair import repair_applies
from atoll.antientropy.store import Entry
from atoll.antientropy.verdict import describe_version
from atoll.antientropy.versions import HLC_SCHEME, BadVersion, decode_hlc_version
from atoll.engine import indexes
from atoll.engine.context import EngineContext
from atoll.engine.replica_txn import conflict_record
from atoll.engine.tabledef import TableDef
from atoll.errors import AtollError
from atoll.model.keys import partition_hash
from atoll.model.values import item_size
from atoll.replication.change import ItemWrite, Version, item_json
from atoll.replication.errors import BadChange
from atoll.replication.merge import Stored, agree, join_write
from atoll.storage import WriteTxn
from atoll.storage.protocol import StoredState
from atoll.storage.treeprotocol import TreeRow, TreeWriteJob, TreeWriteTxn, tree_version

REFUSED_NO_TABLE = "refused: no such table"
REFUSED_VERSION = "refused: unreadable version"
REFUSED_STATE = "refused: the causal state does not fit the item"
REFUSED_INDEX = "refused: the item does not fit this region's indexes"

CAUSAL_PREV = b"p"  # + the version bytes of the write the row form overwrote
CAUSAL_STATE = b"s"  # + the item state's stored bytes (atoll.replication.itemstate)


def row_entry(row: TreeRow) -> Entry:
    """A storage tree row as the verify core's Entry (a listing's: no causal state)."""
    return Entry(row.pk, row.sk, tree_version(row.hlc, row.origin), row.item, row.intact)


def causal_bytes(found: StoredState) -> bytes:
    """A row's causal state as verify carries it (`Entry.causal`): b"" for the row form
    with no prev (also what a peer that predates item states sends), CAUSAL_PREV + the
    prev's version bytes for the row form over a prev, CAUSAL_STATE + the stored state."""
    state, _version, prev = found
    if state:
        return CAUSAL_STATE + state
    return b"" if prev is None else CAUSAL_PREV + tree_version(prev[0], prev[1])


def fetched_entry(row: TreeRow | None, found: StoredState | None) -> Entry | None:
    """A fetched row with its causal state (read after the row); None if there is no row
    or a write changed the key between the two reads (the state is another version's:
    the session reports the winner changed, and a later session repairs)."""
    if row is None or found is None or found[1] != (row.hlc, row.origin):
        return None
    return Entry(row.pk, row.sk, tree_version(row.hlc, row.origin), row.item, row.intact,
                 causal_bytes(found))


def read_causal(raw: bytes) -> tuple[bytes, Version | None]:
    """(state, prev) from `Entry.causal`; BadVersion if it is neither form."""
    if not raw:
        return b"", None
    tag, body = raw[:1], raw[1:]
    if tag == CAUSAL_STATE and body:
        return body, None
    if tag == CAUSAL_PREV:
        prev, beyond = decode_hlc_version(body)
        if beyond is None:
            return b"", prev
    raise BadVersion("causal state is neither a prev nor a state")


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
            outcome = _write(ctx, txn, table, h, record, row, now_ms)
        entry = RepairLogEntry(
            now_ms, ctx.region, record.table, record.pk, record.sk,
            describe_version(record.version, HLC_SCHEME), record.source,
            None if current is None else describe_version(current.version, HLC_SCHEME),
            record.reason, record.concurrent, outcome)
        txn.record_repair(now_ms, record.table, repair_record(entry))
        return entry

    return job


def _write(ctx: EngineContext, txn: WriteTxn, table: TableDef, h: int, record: RepairRecord,
           row: TreeRow | None, now_ms: int) -> str:
    try:
        version, _prev = decode_hlc_version(record.version)
        state, prev = read_causal(record.causal)
    except BadVersion:
        return REFUSED_VERSION
    item = None if record.item is None else orjson.loads(record.item)
    write = ItemWrite(record.table, record.pk, record.sk, item, prev, state)
    definition: dict[str, Any] = {"hash_key": table.hash_key, "range_key": table.range_key,
                                  "attribute_types": table.attribute_types}
    local = _joinable(txn, table, h, row, version)
    try:
        joined, conflicts = join_write(local, write, version, definition)
    except BadChange:
        if local is None:
            return REFUSED_STATE
        try:  # the target's state contradicts the winner's: it is replaced
            joined, conflicts = join_write(None, write, version, definition)
        except BadChange:
            return REFUSED_STATE
    if joined is None:
        return ALREADY  # the target's state holds all the winner's (nothing to write)
    stored_bytes = record.item if joined.item is item else None
    outcome = _store(ctx, txn, table, h, record, row, joined, stored_bytes)
    if outcome == APPLIED:
        for conflict in conflicts:
            if not agree(conflict):
                txn.record_conflict(now_ms, record.table, conflict_record(conflict))
        ctx.clock.observe(joined.version.hlc)  # a later local write supersedes the repair
    return outcome


def _joinable(txn: WriteTxn, table: TableDef, h: int, row: TreeRow | None,
              version: Version) -> Stored | None:
    """The target's stored state to join the winner into; None (replace it) when the row
    fails its checksum or holds the winner's own version with other contents."""
    if row is None or not row.intact or (row.hlc, row.origin) == (version.hlc, version.origin):
        return None
    found = txn.item_state(table.tid, h, row.pk, row.sk)
    if found is None:
        return None
    state, (hlc, origin), prev = found
    item = None if row.item is None else orjson.loads(row.item)
    return Stored(Version(hlc, origin), item, None if prev is None else Version(*prev), state)


def _store(ctx: EngineContext, txn: WriteTxn, table: TableDef, h: int, record: RepairRecord,
           row: TreeRow | None, joined: Stored, item_bytes: bytes | None) -> str:
    """Write `joined` (item or tombstone, version, prev, state) over the key's row."""
    key = (h, record.pk, record.sk)
    live = row if row is not None and row.item is not None else None
    old_bytes = _parseable(live.item) if live is not None and live.item is not None else None
    current = ctx.catalog.current(table)
    version = joined.version
    prev = None if joined.prev is None else (joined.prev.hlc, joined.prev.origin)
    if joined.item is None:
        if live is None:
            txn.delete_absent(table.tid, h, record.pk, record.sk, version.hlc, version.origin,
                              prev, joined.state)
        else:
            txn.delete(table.tid, h, record.pk, record.sk, version.hlc, version.origin,
                       live.size, prev, joined.state)
            indexes.apply(txn, current, key, old_bytes, None)
        return APPLIED
    raw = item_bytes if item_bytes is not None else item_json(joined.item)
    size = item_size(joined.item)
    try:
        plan = indexes.plan(current, joined.item, raw, size) if current.indexes else None
    except AtollError:
        return REFUSED_INDEX
    txn.put(table.tid, h, record.pk, record.sk, raw, size, version.hlc, version.origin,
            None if live is None else live.size, prev, joined.state)
    indexes.apply(txn, current, key, old_bytes, plan)
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
