"""Forged changes on the wire: well-formed, correctly checksummed changes that are wrong,
as a buggy or malicious peer, or a damaged store re-checksummed on its way, would send.

Theory of operation: a link with `LinkFaults.forge_p` passes a Batch through
`forge_batch`, which takes one of the records that writes an item into `table` and
either
- misfiles it: the same (origin, seq), the item's key attribute `pk` changed so that it
  no longer encodes to the row key it is filed under (replacing the true record), or
- reuses a sequence: a different change under the seq just below the lowest one of that
  origin in the Batch — a seq the puller asked past, so it holds it already (added
  beside the true records).
Both carry the attribute `FORGED_ATTRIBUTE`, so a checker can tell that nothing of a
forgery was ever stored (`checkers.forgeries_refused`): admission must refuse the first,
and the second is never applied (a replay), only compared and refused. `table` is one
the workload never deletes, so the receiver always knows its key schema once it holds
the table at all (a write into a table deleted here is dropped by the merge, with its
change logged: a forgery there would be logged, not refused).
"""

from __future__ import annotations

import random

from atoll.replication.change import Change, ItemWrite, Op, decode_change, encode_change
from atoll.replication.errors import BadChange, BadMessage
from atoll.replication.protocol import Batch, decode_message, encode_message

FORGED_ATTRIBUTE = "forged"


def forge_batch(rng: random.Random, body: bytes, table: str) -> tuple[bytes, str] | None:
    """`body` (a Batch) with one forged record, and what was forged; None if the Batch
    holds no record to forge from (or does not decode: corruption is another fault)."""
    try:
        batch = decode_message(body)
    except BadMessage:
        return None
    if not isinstance(batch, Batch):
        return None
    candidates = []
    lowest: dict[str, int] = {}  # per origin: its lowest seq in the Batch
    for index, record in enumerate(batch.records):
        try:
            change = decode_change(record)
        except BadChange:
            continue
        lowest[change.origin] = min(change.seq, lowest.get(change.origin, change.seq))
        if any(isinstance(op, ItemWrite) and op.item is not None and op.table == table
               for op in change.ops):
            candidates.append((index, change))
    if not candidates:
        return None
    index, change = rng.choice(candidates)
    records = list(batch.records)
    if rng.random() < 0.5:
        records[index] = encode_change(_forged(change, change.seq, misfile=True))
        what = f"misfiled {change.origin}/{change.seq}"
    else:
        below = lowest[change.origin] - 1
        if below < 1:
            return None
        records.append(encode_change(_forged(change, below, misfile=False)))
        what = f"reused {change.origin}/{below}"
    return encode_message(Batch(batch.request_id, tuple(records), batch.has_more,
                                batch.log_start)), what


def _forged(change: Change, seq: int, misfile: bool) -> Change:
    ops: list[Op] = []
    for op in change.ops:
        if isinstance(op, ItemWrite) and op.item is not None:
            item = {**op.item, FORGED_ATTRIBUTE: {"S": "misfiled" if misfile else "reused"}}
            if misfile:
                item["pk"] = {"S": f"forged-{op.pk.hex()}"}
            op = ItemWrite(op.table, op.pk, op.sk, item, op.prev)
        ops.append(op)
    return Change.create(change.origin, seq, change.hlc, ops)
