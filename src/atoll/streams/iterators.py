"""Shard iterators: opaque, self-contained, expiring after 15 minutes.

Theory of operation: an iterator is everything a GetRecords needs, so the node keeps no
state per reader and iterators survive restarts: the stream's ARN (as DynamoDB's
iterators begin, `<stream ARN>|1|<token>`), then a token holding the stream's storage
id, the shard's number, the position to read from and the time the iterator was issued,
with a CRC32 of those, in URL-safe base64. GetRecords refuses an iterator whose token
does not decode or whose checksum fails (ValidationException) and one issued more than
ITERATOR_TTL_MS ago (ExpiredIteratorException); each NextShardIterator is issued anew.
The checksum catches damage, not forgery: an iterator can only name what its bearer
could read anyway.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import NamedTuple

from atoll.checksum import crc32
from atoll.errors import ExpiredIterator, ValidationError

ITERATOR_TTL_MS = 15 * 60 * 1000
_FIELDS = struct.Struct(">QQQQ")  # sid, shard, pos, issued_ms
_CRC = struct.Struct(">I")
_VERSION = "1"


class ShardIterator(NamedTuple):
    arn: str
    sid: int
    shard: int
    pos: int  # the first position this iterator reads
    issued_ms: int

    def encode(self) -> str:
        fields = _FIELDS.pack(self.sid, self.shard, self.pos, self.issued_ms)
        token = base64.urlsafe_b64encode(fields + _CRC.pack(crc32(fields)))
        return f"{self.arn}|{_VERSION}|{token.decode()}"

    def at(self, pos: int, issued_ms: int) -> ShardIterator:
        """The same shard, read from `pos`, issued at `issued_ms` (a NextShardIterator)."""
        return ShardIterator(self.arn, self.sid, self.shard, pos, issued_ms)


def decode_iterator(text: str, now_ms: int) -> ShardIterator:
    """The iterator `text` encodes, if it is valid and has not expired."""
    arn, _, rest = text.partition("|")
    version, _, token = rest.partition("|")
    if version != _VERSION:
        raise ValidationError("Invalid ShardIterator")
    try:
        raw = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        raise ValidationError("Invalid ShardIterator") from None
    if len(raw) != _FIELDS.size + _CRC.size:
        raise ValidationError("Invalid ShardIterator")
    fields = raw[:_FIELDS.size]
    if _CRC.unpack(raw[_FIELDS.size:])[0] != crc32(fields):
        raise ValidationError("Invalid ShardIterator")
    sid, shard, pos, issued_ms = _FIELDS.unpack(fields)
    if now_ms - issued_ms > ITERATOR_TTL_MS:
        raise ExpiredIterator("The shard iterator has expired and can no longer be used to "
                              "retrieve stream records. A shard iterator expires 15 minutes "
                              "after it is retrieved using the GetShardIterator action.")
    return ShardIterator(arn, sid, shard, pos, issued_ms)
