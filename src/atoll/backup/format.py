"""The backup file: one table's rows, checksummed record by record and as a whole.

Layout (every integer big-endian):

    file    = MAGIC record*
    record  = length:u32 | crc32:u32 | kind:1 byte | payload (length bytes)
    kinds   = H header (JSON) first, then I items and T tombstones, then F footer (JSON)
    I, T    = h:u32 | hlc:u64 | len(pk):u16 | len(sk):u16 | len(origin):u8
              | pk | sk | origin | item JSON (I only: the rest of the payload)
    footer  = {"items": n, "tombstones": m, "sha256": hex digest of every byte before
               the footer record}

The CRC32 covers the kind byte and the payload, so a flipped bit anywhere in a record is
caught where it lies; the SHA-256 in the footer covers the file as a whole, so a record
dropped, repeated or moved whole, or a file cut short, is caught too. Nothing may follow
the footer. A reader verifies as it goes and raises BackupCorrupted, naming the record
and its byte offset, at the first fault; `verify_file` reads a whole file that way
before anything is restored from it. Pure apart from the byte streams it is handed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

from atoll.checksum import crc32
from atoll.errors import BackupCorrupted
from atoll.storage.protocol import SnapshotRow

MAGIC = b"ATOLLBK1"
FORMAT_VERSION = 1
HEADER, ITEM, TOMBSTONE, FOOTER = b"H", b"I", b"T", b"F"
_RECORD = struct.Struct(">IIc")  # length, crc32, kind
_ROW = struct.Struct(">IQHHB")  # h, hlc, len(pk), len(sk), len(origin)
MAX_RECORD_BYTES = 16 * 1024 * 1024  # an item is at most 400 KB; a header holds one definition
FLUSH_BYTES = 1 << 20
_ITEM_CRC = crc32(ITEM)
_TOMBSTONE_CRC = crc32(TOMBSTONE)
_READ_BYTES = 1 << 20


class BackupWriter:
    """Writes one backup to `sink`: the header now, rows as they come, then `finish`."""

    def __init__(self, sink: BinaryIO, header: dict[str, Any]) -> None:
        self._sink = sink
        self._digest = hashlib.sha256()
        self._parts: list[bytes] = []  # not yet written, `_pending` bytes in all
        self._pending = 0
        self._origins: dict[str, bytes] = {}
        self.items = 0
        self.tombstones = 0
        self.bytes_written = 0
        self._parts.append(MAGIC)
        self._pending += len(MAGIC)
        self._record(HEADER, orjson.dumps({**header, "format": FORMAT_VERSION}))

    def _flush(self) -> None:
        data = b"".join(self._parts)
        self._digest.update(data)
        self._sink.write(data)
        self.bytes_written += len(data)
        self._parts.clear()
        self._pending = 0

    def _record(self, kind: bytes, payload: bytes) -> None:
        crc = crc32(payload, crc32(kind))
        self._parts += (_RECORD.pack(len(payload), crc, kind), payload)
        self._pending += _RECORD.size + len(payload)
        if self._pending >= FLUSH_BYTES:
            self._flush()

    def row(self, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
            item: bytes | None) -> None:
        """A live item (`item` its JSON) or a tombstone (`item` None)."""
        self.rows([(h, pk, sk, hlc, origin, item)])

    def rows(self, page: list[SnapshotRow]) -> None:
        """`row` for each of a page of rows (the loop a backup of millions spends its
        time in, so it is written out here once)."""
        parts, origins, pack_row, pack_record, crc = (
            self._parts, self._origins, _ROW.pack, _RECORD.pack, crc32)
        pending = self._pending
        items = 0
        for h, pk, sk, hlc, origin, item in page:
            name = origins.get(origin)
            if name is None:
                name = origins[origin] = origin.encode()
            head = pack_row(h, hlc, len(pk), len(sk), len(name))
            if item is None:
                payload = b"".join((head, pk, sk, name))
                parts += (pack_record(len(payload), crc(payload, _TOMBSTONE_CRC), TOMBSTONE),
                          payload)
            else:
                payload = b"".join((head, pk, sk, name, item))
                parts += (pack_record(len(payload), crc(payload, _ITEM_CRC), ITEM), payload)
                items += 1
            pending += _RECORD.size + len(payload)
        self.items += items
        self.tombstones += len(page) - items
        self._pending = pending
        if pending >= FLUSH_BYTES:
            self._flush()

    def finish(self) -> dict[str, Any]:
        """Write the footer (and flush); returns it, with the file's size."""
        self._flush()
        footer = {"items": self.items, "tombstones": self.tombstones,
                  "sha256": self._digest.hexdigest()}
        payload = orjson.dumps(footer)
        crc = crc32(payload, crc32(FOOTER))
        data = _RECORD.pack(len(payload), crc, FOOTER) + payload
        self._sink.write(data)
        self.bytes_written += len(data)
        return {**footer, "size_bytes": self.bytes_written}


class BackupReader:
    """Reads a backup from `source`, verifying as it goes (BackupCorrupted on a fault).

    `header` is read at construction; `rows()` yields every item and tombstone, and
    checks the footer after the last one (`footer` is set then)."""

    def __init__(self, source: BinaryIO, name: str) -> None:
        self._source = source
        self.name = name
        self._digest = hashlib.sha256()
        self._offset = 0
        self._records = 0
        self._buffer = b""  # read ahead of the records taken so far, from `_pos` on
        self._pos = 0
        self.footer: dict[str, Any] | None = None
        magic = self._take(len(MAGIC), "its first bytes")
        if magic != MAGIC:
            raise BackupCorrupted(f"{name} is not an Atoll backup file (no {MAGIC.decode()} "
                                  "at its start)")
        self._digest.update(magic)
        kind, payload = self._next()
        if kind != HEADER:
            raise self._fault("does not start with its header record")
        self.header: dict[str, Any] = self._json(payload, "header")
        if self.header.get("format") != FORMAT_VERSION:
            raise self._fault(f"has format {self.header.get('format')!r}, "
                              f"not {FORMAT_VERSION}")

    def _fault(self, what: str) -> BackupCorrupted:
        return BackupCorrupted(f"Backup file {self.name} is corrupted: record {self._records} "
                               f"(byte offset {self._offset}) {what}")

    def _take(self, count: int, what: str) -> bytes:
        """The next `count` bytes, read from the source a megabyte at a time."""
        end = self._pos + count
        if end > len(self._buffer):
            parts = [self._buffer[self._pos:]]
            have = len(parts[0])
            while have < count:
                more = self._source.read(max(_READ_BYTES, count - have))
                if not more:
                    raise BackupCorrupted(f"Backup file {self.name} is corrupted: it ends at "
                                          f"byte {self._offset + have} in {what} (truncated)")
                parts.append(more)
                have += len(more)
            self._buffer, self._pos, end = b"".join(parts), 0, count
        data = self._buffer[self._pos:end]
        self._pos = end
        return data

    def _next(self) -> tuple[bytes, bytes]:
        """The next record's kind and payload, its CRC checked and (unless it is the
        footer) its bytes added to the running digest."""
        self._records += 1
        head = self._take(_RECORD.size, f"the head of record {self._records}")
        length, crc, kind = _RECORD.unpack(head)
        if length > MAX_RECORD_BYTES:
            raise self._fault(f"claims a length of {length} bytes")
        payload = self._take(length, f"record {self._records}")
        if crc32(payload, crc32(kind)) != crc:
            raise self._fault("failed its checksum")
        if kind != FOOTER:
            self._digest.update(head)
            self._digest.update(payload)
        self._offset += len(head) + length
        return kind, payload

    def _json(self, payload: bytes, what: str) -> dict[str, Any]:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise self._fault(f"has a {what} that is not JSON") from None
        if type(value) is not dict:
            raise self._fault(f"has a {what} that is not a JSON object")
        return value

    def rows(self) -> Iterator[SnapshotRow]:
        items = tombstones = 0
        while True:
            kind, payload = self._next()
            if kind == FOOTER:
                break
            if kind not in (ITEM, TOMBSTONE):
                raise self._fault(f"has an unexpected kind {kind!r}")
            row = self._row(kind, payload)
            if kind == ITEM:
                items += 1
            else:
                tombstones += 1
            yield row
        footer = self._json(payload, "footer")
        if footer.get("sha256") != self._digest.hexdigest():
            raise self._fault("is a footer whose SHA-256 does not match the file: records "
                              "are missing, repeated or out of place")
        if (footer.get("items"), footer.get("tombstones")) != (items, tombstones):
            raise self._fault(f"is a footer counting {footer.get('items')} items and "
                              f"{footer.get('tombstones')} tombstones; the file holds "
                              f"{items} and {tombstones}")
        if self._pos < len(self._buffer) or self._source.read(1):
            raise self._fault("is followed by bytes after the footer")
        self.footer = footer

    def _row(self, kind: bytes, payload: bytes) -> SnapshotRow:
        if len(payload) < _ROW.size:
            raise self._fault("is a row too short for its fields")
        h, hlc, pk_len, sk_len, origin_len = _ROW.unpack_from(payload)
        at = _ROW.size
        end = at + pk_len + sk_len + origin_len
        if end > len(payload) or (kind == TOMBSTONE and end != len(payload)):
            raise self._fault("is a row whose field lengths do not fit it")
        pk = payload[at:at + pk_len]
        sk = payload[at + pk_len:at + pk_len + sk_len]
        origin = payload[at + pk_len + sk_len:end].decode(errors="replace")
        return h, pk, sk, hlc, origin, payload[end:] if kind == ITEM else None


def verify_file(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a whole backup file, verifying every record and the footer; its (header,
    footer), or BackupCorrupted."""
    try:
        with open(path, "rb") as source:
            reader = BackupReader(source, path)
            for _row in reader.rows():
                pass
    except OSError as exc:
        raise BackupCorrupted(f"Backup file {path} cannot be read: {exc.strerror}") from None
    return reader.header, reader.footer or {}
