"""The pull protocol: messages, their wire form, and planning what a Batch brings.

Theory of operation: a receiver asks a peer `Pull(cursors, max_changes, origins, ahead,
wait_ms)`; the peer answers `Batch(records)` with changes from its changelog above those
cursors (`atoll.replication.serving`) — its own and those it learned from others — so
C's changes reach A through B when A cannot reach C. `origins` says whose changes to send
(empty: everyone's); `ahead` raises the cursors for the changes the puller is applying
right now, so the next fetch overlaps that apply without fetching them twice; `wait_ms`
asks the server to hold a Pull it has nothing for (a long poll). The cursors themselves
are committed ones only: a Pull acknowledges them, and retention counts on that.

The receiver decodes every record (checksum, shape) and keeps per origin only the run of
changes that continues its cursor (`plan_batch`: duplicates and reordering are harmless,
a gap or a change into a table not seen yet stops that origin's run); the run is applied
by `atoll.replication.apply.ApplyChanges`, which also compares a bounded number of the
duplicates (`replays`) with the changelog (atoll.replication.admission). A Batch whose `log_start` is not empty says
the server's log cannot bring the puller up to date on those origins: it must be rebuilt
from a snapshot (`atoll.replication.rebuild`).

Ordering contract for the shells that drive this (etcd raft's "persist, then send"):
  1. apply-and-advance is ONE store transaction: the changes, their changelog records and
     the cursors commit together or not at all;
  2. a local write is acknowledged to the client only after it committed;
  3. a Batch carries committed changelog records only, and a Pull carries cursors read
     from the store once durable (never cursors of changes still being applied).
A malformed message is refused whole (`BadMessage`); a bad record is refused alone; in
both cases nothing is applied past it and nothing stored changes — the next Pull asks
again from the same cursor.

Wire form (bytes; one message per HTTP body or simulated delivery):
  message = u32 crc32(payload) + payload   (a damaged Pull could acknowledge cursors
                                            its sender never reached: retention trusts them)
  Pull    payload = b"P" + orjson {"id": int, "c": {origin: [seq, hlc]}, "m": max_changes,
                                   "o": [origin, ...], "a": {origin: seq}, "w": wait_ms}
  Batch   payload = b"B" + u32 header length + orjson {"id", "more", "ls": {origin: seq}}
                    + records, each u32 length + an `encode_change` frame (which carries
                    its own checksum: records are stored and relayed as they are)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from atoll.checksum import crc32
from atoll.invariant import invariant
from atoll.replication.admission import MAX_REPLAY_CHECKS
from atoll.replication.change import Change, ItemWrite, TableOp, decode_change
from atoll.replication.config import MAX_BATCH_CHANGES
from atoll.replication.cursors import MAX_ORIGINS, Cursor, Cursors, cursor_of, from_wire, to_wire
from atoll.replication.errors import BadChange, BadMessage
from atoll.replication.merge import TableState

MAX_BATCH_BYTES = 16 * 1024 * 1024
_U32 = 4


@dataclass(frozen=True, slots=True)
class Pull:
    request_id: int
    cursors: Mapping[str, Cursor]
    max_changes: int
    origins: tuple[str, ...] = ()  # whose changes to send; empty: every origin's
    ahead: Mapping[str, int] = field(default_factory=dict)  # skip through these seqs
    wait_ms: int = 0  # hold the Pull this long if there is nothing to send


@dataclass(frozen=True, slots=True)
class Batch:
    request_id: int
    records: tuple[bytes, ...]
    has_more: bool
    log_start: Mapping[str, int] = field(default_factory=dict)  # where the puller is behind


Message = Pull | Batch


# --- wire form ------------------------------------------------------------------------

def encode_message(message: Message) -> bytes:
    return checksummed(_payload(message))


def checksummed(payload: bytes) -> bytes:
    """`payload` framed with its CRC-32 (every replication message is)."""
    return crc32(payload).to_bytes(_U32, "big") + payload


def verified_payload(data: bytes) -> bytes:
    """The payload of a `checksummed` frame, or BadMessage."""
    if not isinstance(data, bytes) or len(data) <= _U32 or len(data) > MAX_BATCH_BYTES:
        raise BadMessage("empty or oversized message")
    if crc32(data[_U32:]) != int.from_bytes(data[:_U32], "big"):
        raise BadMessage("message checksum mismatch")
    return data[_U32:]


def _payload(message: Message) -> bytes:
    if isinstance(message, Pull):
        return b"P" + orjson.dumps({"id": message.request_id, "c": to_wire(message.cursors),
                                    "m": message.max_changes, "o": list(message.origins),
                                    "a": dict(sorted(message.ahead.items())),
                                    "w": message.wait_ms})
    header = orjson.dumps({"id": message.request_id, "more": message.has_more,
                           "ls": dict(message.log_start)})
    parts = [b"B", len(header).to_bytes(_U32, "big"), header]
    for record in message.records:
        parts += [len(record).to_bytes(_U32, "big"), record]
    return b"".join(parts)


def decode_message(data: bytes) -> Message:
    """The message in `data`, or BadMessage. Records inside a Batch are NOT decoded here:
    each is checked on its own by `plan_batch`, so one bad record does not hide others."""
    data = verified_payload(data)
    if data[:1] == b"P":
        return _decode_pull(json_object(data[1:]))
    if data[:1] == b"B":
        return _decode_batch(data)
    raise BadMessage("unknown message type")


def _decode_pull(doc: dict[str, Any]) -> Pull:
    if (set(doc) != {"id", "c", "m", "o", "a", "w"} or not natural(doc["id"])
            or not natural(doc["m"]) or not natural(doc["w"])):
        raise BadMessage("malformed Pull")
    if not 1 <= doc["m"] <= MAX_BATCH_CHANGES:
        raise BadMessage(f"max_changes must be 1..{MAX_BATCH_CHANGES}")
    origins, ahead = doc["o"], doc["a"]
    if (not isinstance(origins, list) or len(origins) > MAX_ORIGINS
            or not all(isinstance(o, str) and o for o in origins)):
        raise BadMessage("Pull origins must be a list of region names")
    if (not isinstance(ahead, dict) or len(ahead) > MAX_ORIGINS
            or not all(k and natural(v) for k, v in ahead.items())):
        raise BadMessage("Pull ahead must map origins to seqs")
    return Pull(doc["id"], from_wire(doc["c"]), doc["m"], tuple(origins), ahead, doc["w"])


def _decode_batch(data: bytes) -> Batch:
    size, at = _u32(data, 1)
    header = json_object(data[at:at + size])
    at += size
    if (set(header) != {"id", "more", "ls"} or not natural(header["id"])
            or not isinstance(header["more"], bool) or not isinstance(header["ls"], dict)
            or not all(isinstance(k, str) and natural(v) for k, v in header["ls"].items())):
        raise BadMessage("malformed Batch header")
    records: list[bytes] = []
    while at < len(data):
        if len(records) >= MAX_BATCH_CHANGES:
            raise BadMessage(f"a Batch holds at most {MAX_BATCH_CHANGES} records")
        size, at = _u32(data, at)
        if at + size > len(data):
            raise BadMessage("Batch record runs past the end")
        records.append(data[at:at + size])
        at += size
    return Batch(header["id"], tuple(records), header["more"], header["ls"])


def _u32(data: bytes, at: int) -> tuple[int, int]:
    if at + _U32 > len(data):
        raise BadMessage("truncated message")
    return int.from_bytes(data[at:at + _U32], "big"), at + _U32


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadMessage("message is not JSON") from None
    if not isinstance(doc, dict):
        raise BadMessage("message is not a JSON object")
    return doc


def natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- the receiving side ---------------------------------------------------------------

@dataclass(slots=True)
class BatchPlan:
    accepted: list[Change] = field(default_factory=list)  # in apply order
    frames: list[bytes] = field(default_factory=list)  # accepted[i]'s record, as received
    duplicates: int = 0
    held: dict[str, str] = field(default_factory=dict)  # origin -> why its run stopped
    refused: list[str] = field(default_factory=list)  # records refused, and why
    # the first MAX_REPLAY_CHECKS duplicates, with their records: for the apply job to
    # compare with the changelog (a different change under a used seq is refused there)
    replays: list[tuple[Change, bytes]] = field(default_factory=list)


def plan_batch(records: Sequence[bytes], cursors: Cursors,
               table_state: Callable[[str], TableState | None]) -> BatchPlan:
    """Which records to apply, in which order: per origin, the run that continues the
    cursor; a change into a table neither stored nor created earlier in the run waits
    (its creation may come from another origin later in this batch: hence the loop).
    A change at or below its cursor is a duplicate: counted, and the first
    MAX_REPLAY_CHECKS of them kept as `replays` for the apply to check."""
    plan = BatchPlan()
    pending: dict[str, dict[int, Change]] = {}
    frames: dict[tuple[str, int], bytes] = {}  # decode_change checked they are canonical
    for record in records:
        try:
            change = decode_change(record)
        except BadChange as error:
            plan.refused.append(str(error))
            continue
        if change.seq <= cursor_of(cursors, change.origin).seq:
            plan.duplicates += 1
            if len(plan.replays) < MAX_REPLAY_CHECKS:
                plan.replays.append((change, bytes(record)))
            continue
        same: Change = pending.setdefault(change.origin, {}).setdefault(change.seq, change)
        if same.checksum != change.checksum:
            plan.refused.append(f"two different changes {change.origin}/{change.seq}")
        else:
            frames[(change.origin, change.seq)] = bytes(record)
    created: set[str] = set()
    next_seq = {origin: cursor_of(cursors, origin).seq + 1 for origin in pending}
    progress = True
    while progress:
        progress = False
        for origin in sorted(pending):
            run = pending[origin].get(next_seq[origin])
            while run is not None and _tables_known(run, table_state, created):
                plan.accepted.append(run)
                plan.frames.append(frames[(origin, run.seq)])
                created.update(op.table for op in run.ops
                               if isinstance(op, TableOp) and op.kind == "create")
                next_seq[origin] += 1
                run = pending[origin].get(next_seq[origin])
                progress = True
    for origin in sorted(pending):
        if any(seq >= next_seq[origin] for seq in pending[origin]):
            waiting = pending[origin].get(next_seq[origin])
            plan.held[origin] = ("gap" if waiting is None
                                 else f"unknown table in {origin}/{waiting.seq}")
    return plan


def _tables_known(change: Change, table_state: Callable[[str], TableState | None],
                  created: set[str]) -> bool:
    for op in change.ops:
        if isinstance(op, TableOp) and op.kind == "create":
            continue
        invariant(isinstance(op, ItemWrite | TableOp), "unknown op type")
        if op.table not in created and table_state(op.table) is None:
            return False
    return True
