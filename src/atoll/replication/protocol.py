"""The pull protocol: messages, their wire form, and the pure state machines.

Theory of operation: a receiver asks a peer `Pull(cursors, max_changes)`; the peer
answers `Batch(records)` with changes from its changelog above those cursors — its own
and those it learned from others — so C's changes reach A through B when A cannot reach
C. The receiver decodes every record (checksum, shape), keeps per origin only the run of
changes that continues its cursor (`plan_batch`: duplicates and reordering are harmless,
a gap or a change into a table not seen yet stops that origin's run), and applies the
run. A Pull also acknowledges the puller's cursors: that is what retention counts on.

Ordering contract for the shell that drives this core (etcd raft's "persist, then send"):
  1. apply-and-advance is ONE store transaction (`ReplicaStore.apply`): the changes, their
     changelog records and the cursors commit together or not at all;
  2. a local write is acknowledged to the client only after `local_write` committed;
  3. a Batch is built from committed changelog records only, and a Pull carries cursors
     read from the store (never cursors of changes still being applied).
A malformed message is refused whole (`BadMessage`); a bad record is refused alone; in
both cases nothing is applied past it and nothing stored changes — the next Pull asks
again from the same cursor.

Wire form (bytes; one message per HTTP body or stream frame):
  message = u32 crc32(payload) + payload   (a damaged Pull could acknowledge cursors
                                            its sender never reached: retention trusts them)
  Pull    payload = b"P" + orjson {"id": int, "c": {origin: [seq, hlc]}, "m": max_changes}
  Batch   payload = b"B" + u32 header length + orjson {"id", "more", "ls": {origin: seq}}
                    + records, each u32 length + an `encode_change` frame (which carries
                    its own checksum: records are stored and relayed as they are)
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from atoll.invariant import invariant
from atoll.replication.admission import reused_sequence
from atoll.replication.change import Change, ItemWrite, TableOp, decode_change, encode_change
from atoll.replication.cursors import Cursor, Cursors, cursor_of, from_wire, to_wire
from atoll.replication.errors import BadChange, BadMessage
from atoll.replication.merge import TableState

MAX_BATCH_CHANGES = 1000
# Duplicates compared with the changelog per batch (each is a read): beyond it they are
# skipped unchecked, so a batch of a thousand relayed duplicates costs a bounded time.
MAX_DUPLICATE_CHECKS = 100
MAX_BATCH_BYTES = 16 * 1024 * 1024
_U32 = 4


@dataclass(frozen=True, slots=True)
class Pull:
    request_id: int
    cursors: Mapping[str, Cursor]
    max_changes: int


@dataclass(frozen=True, slots=True)
class Batch:
    request_id: int
    records: tuple[bytes, ...]
    has_more: bool
    log_start: Mapping[str, int] = field(default_factory=dict)  # where the puller is behind


Message = Pull | Batch


# --- wire form ------------------------------------------------------------------------

def encode_message(message: Message) -> bytes:
    payload = _payload(message)
    return zlib.crc32(payload).to_bytes(_U32, "big") + payload


def _payload(message: Message) -> bytes:
    if isinstance(message, Pull):
        return b"P" + orjson.dumps({"id": message.request_id, "c": to_wire(message.cursors),
                                    "m": message.max_changes})
    header = orjson.dumps({"id": message.request_id, "more": message.has_more,
                           "ls": dict(message.log_start)})
    parts = [b"B", len(header).to_bytes(_U32, "big"), header]
    for record in message.records:
        parts += [len(record).to_bytes(_U32, "big"), record]
    return b"".join(parts)


def decode_message(data: bytes) -> Message:
    """The message in `data`, or BadMessage. Records inside a Batch are NOT decoded here:
    each is checked on its own by `plan_batch`, so one bad record does not hide others."""
    if not isinstance(data, bytes) or len(data) <= _U32 or len(data) > MAX_BATCH_BYTES:
        raise BadMessage("empty or oversized message")
    if zlib.crc32(data[_U32:]) != int.from_bytes(data[:_U32], "big"):
        raise BadMessage("message checksum mismatch")
    data = data[_U32:]
    if data[:1] == b"P":
        doc = _json(data[1:])
        if set(doc) != {"id", "c", "m"} or not _natural(doc["id"]) or not _natural(doc["m"]):
            raise BadMessage("malformed Pull")
        if not 1 <= doc["m"] <= MAX_BATCH_CHANGES:
            raise BadMessage(f"max_changes must be 1..{MAX_BATCH_CHANGES}")
        return Pull(doc["id"], from_wire(doc["c"]), doc["m"])
    if data[:1] == b"B":
        return _decode_batch(data)
    raise BadMessage("unknown message type")


def _decode_batch(data: bytes) -> Batch:
    size, at = _u32(data, 1)
    header = _json(data[at:at + size])
    at += size
    if (set(header) != {"id", "more", "ls"} or not _natural(header["id"])
            or not isinstance(header["more"], bool) or not isinstance(header["ls"], dict)
            or not all(isinstance(k, str) and _natural(v) for k, v in header["ls"].items())):
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


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadMessage("message is not JSON") from None
    if not isinstance(doc, dict):
        raise BadMessage("message is not a JSON object")
    return doc


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- the serving side -----------------------------------------------------------------

def serve_pull(pull: Pull, changes: Sequence[Change], log_start: Mapping[str, int]) -> Batch:
    """The answer to `pull`, given `changes` = store.changes_since(pull.cursors,
    pull.max_changes) and the store's log_start."""
    invariant(len(changes) <= pull.max_changes, "changes_since returned more than asked")
    behind = {origin: start for origin, start in sorted(log_start.items())
              if cursor_of(pull.cursors, origin).seq < start}
    return Batch(pull.request_id, tuple(encode_change(c) for c in changes),
                 has_more=len(changes) == pull.max_changes, log_start=behind)


# --- the receiving side ---------------------------------------------------------------

@dataclass(slots=True)
class BatchPlan:
    accepted: list[Change] = field(default_factory=list)  # in apply order
    frames: list[bytes] = field(default_factory=list)  # accepted[i]'s record, as received
    duplicates: int = 0
    held: dict[str, str] = field(default_factory=dict)  # origin -> why its run stopped
    refused: list[str] = field(default_factory=list)  # records refused, and why


def plan_batch(records: Sequence[bytes], cursors: Cursors,
               table_state: Callable[[str], TableState | None],
               logged: Callable[[str, int], bytes | None] | None = None) -> BatchPlan:
    """Which records to apply, in which order: per origin, the run that continues the
    cursor; a change into a table neither stored nor created earlier in the run waits
    (its creation may come from another origin later in this batch: hence the loop).
    `logged(origin, seq)`, when given, reads the changelog's record: a duplicate that
    differs from it reused a sequence number and is refused (admission.reused_sequence)."""
    plan = BatchPlan()
    checked = 0
    pending: dict[str, dict[int, Change]] = {}
    frames: dict[tuple[str, int], bytes] = {}  # decode_change checked they are canonical
    for record in records:
        try:
            change = decode_change(record)
        except BadChange as error:
            plan.refused.append(str(error))
            continue
        if change.seq <= cursor_of(cursors, change.origin).seq:
            why = None
            if logged is not None and checked < MAX_DUPLICATE_CHECKS:
                checked += 1
                why = reused_sequence(change, bytes(record), logged(change.origin, change.seq))
            if why is not None:
                plan.refused.append(why)
            else:
                plan.duplicates += 1
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


class PullSession:
    """The receiver's state for one peer: at most one Pull in flight; a new one when the
    previous was answered (at once if the peer has more, else after `interval_ms`) or
    timed out after `timeout_ms`."""

    def __init__(self, peer: str, interval_ms: int, timeout_ms: int, max_changes: int,
                 first_request_id: int = 1) -> None:
        invariant(0 < max_changes <= MAX_BATCH_CHANGES, "max_changes out of bounds")
        invariant(0 < interval_ms <= timeout_ms, "a pull must time out after its interval")
        self.peer = peer
        self.interval_ms = interval_ms
        self.timeout_ms = timeout_ms
        self.max_changes = max_changes
        self.next_request_id = first_request_id
        self.in_flight: int | None = None
        self.sent_ms = 0
        self.next_pull_ms = 0
        self.timeouts = 0

    def poll(self, now_ms: int, cursors: Cursors) -> Pull | None:
        """The Pull to send now, if any."""
        if self.in_flight is not None:
            if now_ms - self.sent_ms < self.timeout_ms:
                return None
            self.timeouts += 1  # lost request or answer: ask again from current cursors
        elif now_ms < self.next_pull_ms:
            return None
        self.in_flight = self.next_request_id
        self.next_request_id += 1
        self.sent_ms = now_ms
        return Pull(self.in_flight, dict(cursors), self.max_changes)

    def on_batch(self, batch: Batch, now_ms: int, refused: bool) -> bool:
        """Record an answer; True if it answered the Pull in flight. A batch with refused
        content waits a full interval before the next Pull (no hot retry loop)."""
        if batch.request_id != self.in_flight:
            return False  # late or duplicated: its changes were still usable
        self.in_flight = None
        more = batch.has_more and not refused
        self.next_pull_ms = now_ms if more else now_ms + self.interval_ms
        return True

    def reset(self) -> None:
        """Forget the Pull in flight (the peer restarted, or the link was re-made)."""
        self.in_flight = None
        self.next_pull_ms = 0

