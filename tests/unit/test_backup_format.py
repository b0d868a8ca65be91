"""The backup file format: round trips, and every kind of damage refused with its place."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from atoll.backup.format import (
    MAGIC,
    BackupReader,
    BackupWriter,
    verify_file,
)
from atoll.errors import BackupCorrupted

ROWS = [
    (0, b"\x01a", b"", 10, "us-east", b'{"pk":{"S":"a"}}'),
    (7, b"\x01b", b"\x01x", 11, "eu-west", b'{"pk":{"S":"b"},"sk":{"S":"x"}}'),
    (2**32 - 1, b"\x01c" * 300, b"\x02" * 200, 2**63, "ap-south", b'{"big":{"S":"' +
     b"z" * 5000 + b'"}}'),
    (5, b"\x01d", b"", 12, "us-east", None),
]
HEADER = {"table": "t", "definition": {"name": "t"}, "cursors": {"us-east": [3, 12]}}


def _file(rows: list[tuple[int, bytes, bytes, int, str, bytes | None]] = ROWS) -> bytes:
    sink = io.BytesIO()
    writer = BackupWriter(sink, HEADER)
    for row in rows:
        writer.row(*row)
    footer = writer.finish()
    data = sink.getvalue()
    assert footer["size_bytes"] == len(data)
    dead = sum(1 for row in rows if row[5] is None)
    assert (footer["items"], footer["tombstones"]) == (len(rows) - dead, dead)
    return data


def _read(data: bytes) -> tuple[dict, list, dict]:
    reader = BackupReader(io.BytesIO(data), "test.atb")
    rows = list(reader.rows())
    assert reader.footer is not None
    return reader.header, rows, reader.footer


def _refused(data: bytes) -> str:
    with pytest.raises(BackupCorrupted) as caught:
        _read(data)
    return caught.value.message


def _record_bounds(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record after the magic."""
    bounds = []
    at = len(MAGIC)
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        bounds.append((at, at + 9 + length))
        at += 9 + length
    return bounds


def test_rows_and_header_round_trip() -> None:
    header, rows, footer = _read(_file())
    assert header == {**HEADER, "format": 1}
    assert rows == ROWS
    assert footer["items"] == 3 and footer["tombstones"] == 1 and len(footer["sha256"]) == 64


def test_an_empty_table_round_trips() -> None:
    assert _read(_file([]))[1] == []


def test_every_flipped_byte_is_caught() -> None:
    data = _file(ROWS[:2] + ROWS[3:])  # small: every position is tried
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x40
        _refused(bytes(damaged))


def test_a_flipped_byte_is_reported_with_its_record_and_offset() -> None:
    data = _file()
    start, end = _record_bounds(data)[2]  # the second row
    damaged = bytearray(data)
    damaged[end - 3] ^= 1
    message = _refused(bytes(damaged))
    assert "record 3" in message and f"byte offset {start - len(MAGIC)}" in message
    assert "failed its checksum" in message


def test_truncation_anywhere_is_caught() -> None:
    data = _file()
    for cut in (0, 3, len(MAGIC), len(MAGIC) + 5, len(data) // 2, len(data) - 1):
        assert "truncated" in _refused(data[:cut]) or "not an Atoll backup" in _refused(data[:cut])


def test_dropped_repeated_or_swapped_records_fail_the_whole_file_hash() -> None:
    data = _file()
    bounds = _record_bounds(data)
    rows = [data[a:b] for a, b in bounds[1:-1]]
    head, footer = data[:bounds[1][0]], data[bounds[-1][0]:]
    for body in (rows[1:], rows + rows[:1], [rows[1], rows[0], *rows[2:]]):
        assert "SHA-256 does not match" in _refused(head + b"".join(body) + footer)


def test_bytes_after_the_footer_are_refused() -> None:
    assert "after the footer" in _refused(_file() + b"\x00")


def test_a_file_of_something_else_is_refused() -> None:
    assert "not an Atoll backup" in _refused(b"SQLite format 3\x00" + b"\x00" * 100)


def test_verify_file_reads_a_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "b.atb"
    path.write_bytes(_file())
    header, footer = verify_file(str(path))
    assert header["table"] == "t" and footer["items"] == 3
    damaged = bytearray(path.read_bytes())
    damaged[-60] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(BackupCorrupted):
        verify_file(str(path))
    with pytest.raises(BackupCorrupted, match="cannot be read"):
        verify_file(str(tmp_path / "missing.atb"))
