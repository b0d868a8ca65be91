"""Shards: how a stream's records are grouped, named and read.

Theory of operation
- A region writes its records one at a time, in commit order, so a stream never needs
  parallel shards: at any moment it has ONE open shard, and each shard is a range of
  the region's record positions, [first, end]; the records of the stream with positions
  in that range are the shard's. A shard closes (gets its `end`, the last position
  taken) when its stream is disabled, and when it rolls over: an open shard that has
  been open for SHARD_ROLL_MS (4 hours, about how often DynamoDB's shards roll) and holds
  at least one record is closed, and its child opens at the next position. The child
  names it as its parent, so reading shards parent first reads every record in order.
  Restarting a node does not roll a shard: a shard is defined by positions, which
  survive restarts, and iterators taken before a restart keep working after it.
- A shard is named `shardId-<creation ms, 20 digits>-<number, 8 hex digits>`: shards
  sort by name in creation order (which the Kinesis adapter expects), and the number
  finds the shard in its stream. A child is created at least 1 ms after its parent.
- Retention: records are kept RETENTION_MS (24 hours) after they were written. Trimming
  removes the oldest records of a stream (the longest run of them older than that) and
  raises the stream's trim point; a read at or below the trim point is refused
  (TrimmedDataAccessException). A closed shard disappears 24 hours after it closed, a
  disabled stream 24 hours after it was disabled.
- Where an iterator starts (`start_position`): TRIM_HORIZON at the shard's oldest
  untrimmed record; LATEST just after the stream's newest record (or at the shard's
  end + 1 if it is closed); AT_/AFTER_SEQUENCE_NUMBER at/after a record of the shard.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from atoll.errors import TrimmedDataAccess, ValidationError
from atoll.streams.records import sequence_number
from atoll.streams.spec import ACCOUNT, stream_arn

RETENTION_MS = 24 * 3600 * 1000
SHARD_ROLL_MS = 4 * 3600 * 1000

_SHARD_ID_RE = re.compile(r"shardId-(\d{20})-([0-9a-f]{8})\Z")


class Stream(NamedTuple):
    """One stream as the storage keeps it."""

    sid: int
    table_name: str
    label: str
    view_type: str
    key_schema: bytes  # KeySchema JSON of its table
    created_ms: int
    disabled_ms: int | None  # None while enabled
    trimmed_pos: int  # its records at or below this position are gone

    def arn(self, region: str, account: str = ACCOUNT) -> str:
        return stream_arn(region, self.table_name, self.label, account)

    def visible(self, now_ms: int) -> bool:
        """Enabled, or disabled less than 24 hours ago."""
        return self.disabled_ms is None or self.disabled_ms >= now_ms - RETENTION_MS


class Shard(NamedTuple):
    """One shard as the storage keeps it."""

    number: int
    first_pos: int
    end_pos: int | None  # None while open
    created_ms: int
    closed_ms: int | None

    @property
    def shard_id(self) -> str:
        return shard_id(self.created_ms, self.number)

    def holds(self, pos: int) -> bool:
        return pos >= self.first_pos and (self.end_pos is None or pos <= self.end_pos)


def shard_id(created_ms: int, number: int) -> str:
    return f"shardId-{created_ms:020d}-{number:08x}"


def parse_shard_id(text: str) -> int | None:
    """The shard number a shard id names, or None if it is not a shard id."""
    match = _SHARD_ID_RE.match(text)
    return int(match.group(2), 16) if match else None


def visible_shards(shards: list[Shard], now_ms: int) -> list[Shard]:
    """The shards a stream still shows: not those closed more than 24 hours ago."""
    cutoff = now_ms - RETENTION_MS
    return [s for s in shards if s.closed_ms is None or s.closed_ms >= cutoff]


def describe_shard(shard: Shard, parent: Shard | None, trimmed_pos: int) -> dict[str, Any]:
    """A shard as DescribeStream lists it: its sequence-number range (starting at its
    oldest untrimmed position; ending only if it is closed) and its parent."""
    start = max(shard.first_pos, trimmed_pos + 1)
    numbers = {"StartingSequenceNumber": sequence_number(start)}
    if shard.end_pos is not None:
        numbers["EndingSequenceNumber"] = sequence_number(max(shard.end_pos, start))
    description: dict[str, Any] = {"ShardId": shard.shard_id, "SequenceNumberRange": numbers}
    if parent is not None:
        description["ParentShardId"] = parent.shard_id
    return description


def roll_due(shard: Shard, now_ms: int) -> bool:
    """Whether an open shard has been open long enough to roll over (if it has records)."""
    return shard.end_pos is None and now_ms - shard.created_ms >= SHARD_ROLL_MS


def start_position(iterator_type: str, shard: Shard, trimmed_pos: int, last_pos: int,
                   sequence: int | None) -> int:
    """The first position an iterator of this type reads in `shard`, given the stream's
    trim point and its newest record's position. Raises TrimmedDataAccess for a position
    already trimmed and ValidationError for a sequence number outside the shard (or
    beyond the stream's newest record)."""
    if iterator_type == "TRIM_HORIZON":
        return max(shard.first_pos, trimmed_pos + 1)
    if iterator_type == "LATEST":
        if shard.end_pos is not None:
            return shard.end_pos + 1
        return max(shard.first_pos, last_pos + 1)
    if sequence is None or not shard.holds(sequence) or sequence > last_pos:
        raise ValidationError(f"Invalid SequenceNumber for shard {shard.shard_id}")
    pos = sequence if iterator_type == "AT_SEQUENCE_NUMBER" else sequence + 1
    if pos <= trimmed_pos:
        raise TrimmedDataAccess("The operation attempted to read past the oldest stream "
                                "record in a shard.")
    return pos
