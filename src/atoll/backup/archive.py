"""The point-in-time archive of one table: changelog records kept past replication's purge.

Layout: `log-<epoch>-<part>.seg` files in the table's PITR directory. The epoch is the
number of the table snapshot that was newest when the segment started (snapshots.py
of the caller says why that lets whole epochs go together); a new part starts whenever
a node (re)starts archiving, so a record torn by a crash can only be the last of a part.

    segment = record*
    record  = length:u32 | crc32:u32 | len(origin):u8 | origin | seq:u64 | hlc:u64 | frame

`frame` is the changelog record exactly as stored (atoll.replication.change: its own
CRC32 and canonical body). Reading checks every record's CRC32; a record cut short or
failing its check at the very end of a part is the write a crash interrupted and is
ignored (the archiver's persisted cursor is behind it, so it was archived again); one
anywhere else is corruption and raises BackupCorrupted.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from atoll.errors import BackupCorrupted

_HEAD = struct.Struct(">II")
_TAIL = struct.Struct(">QQ")
_NAME_RE = re.compile(r"log-(\d{6})-(\d{4})\.seg\Z")
MAX_RECORD_BYTES = 64 * 1024 * 1024

ArchivedRecord = tuple[str, int, int, bytes]  # (origin, seq, hlc, frame)


def segment_name(epoch: int, part: int) -> str:
    return f"log-{epoch:06d}-{part:04d}.seg"


def segments(directory: str) -> list[tuple[int, int, str]]:
    """(epoch, part, path) of every segment in `directory`, in order."""
    found = []
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
        match = _NAME_RE.match(name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)),
                          os.path.join(directory, name)))
    return sorted(found)


def encode_record(origin: str, seq: int, hlc: int, frame: bytes) -> bytes:
    name = origin.encode()
    payload = b"".join((bytes((len(name),)), name, _TAIL.pack(seq, hlc), frame))
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


class SegmentWriter:
    """Appends records to one segment file; `sync` makes what was appended durable."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "ab")
        self.size_bytes = os.path.getsize(path)

    def append(self, data: bytes) -> None:
        self._file.write(data)
        self.size_bytes += len(data)

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_segment(path: str) -> Iterator[ArchivedRecord]:
    """Every record of one segment, checked (see the module doc for a torn tail)."""
    with open(path, "rb") as source:
        data = source.read()
    at = 0
    while at < len(data):
        head_end = at + _HEAD.size
        if head_end > len(data):
            return  # torn tail
        length, crc = _HEAD.unpack_from(data, at)
        end = head_end + length
        if length > MAX_RECORD_BYTES or end > len(data) \
                or zlib.crc32(data[head_end:end]) != crc:
            if end >= len(data):
                return  # the last record, cut short by a crash
            raise BackupCorrupted(f"Point-in-time archive {path} is corrupted: the record at "
                                  f"byte offset {at} failed its checksum")
        payload = data[head_end:end]
        name_end = 1 + payload[0]
        origin = payload[1:name_end].decode(errors="replace")
        seq, hlc = _TAIL.unpack_from(payload, name_end)
        yield origin, seq, hlc, payload[name_end + _TAIL.size:]
        at = end
