"""The PITR archive's segments, and the retention hold PITR puts on the changelog purge."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.backup.archive import SegmentWriter, encode_record, read_segment, segment_name, segments
from atoll.clock import make_hlc
from atoll.errors import BackupCorrupted
from atoll.replication.cursors import Cursor
from atoll.replication.retention import plan_retention

RECORDS = [("us-east", 1, 100, b"\x00\x00\x00\x01frame one"), ("eu-west", 7, 101, b"frame two"),
           ("us-east", 2, 102, b"x" * 5000)]


def _segment(directory: Path, records: list[tuple[str, int, int, bytes]] = RECORDS) -> Path:
    path = directory / segment_name(1, 0)
    writer = SegmentWriter(str(path))
    writer.append(b"".join(encode_record(*record) for record in records))
    writer.sync()
    writer.close()
    return path


def test_records_round_trip_and_segments_list_in_order(tmp_path: Path) -> None:
    path = _segment(tmp_path)
    assert list(read_segment(str(path))) == RECORDS
    for epoch, part in ((2, 0), (1, 1), (10, 3)):
        (tmp_path / segment_name(epoch, part)).write_bytes(b"")
    (tmp_path / "state.json").write_bytes(b"{}")
    assert [(e, p) for e, p, _path in segments(str(tmp_path))] == [(1, 0), (1, 1), (2, 0),
                                                                  (10, 3)]


def test_a_record_torn_at_the_end_of_a_part_is_the_crash_and_is_ignored(tmp_path: Path) -> None:
    path = _segment(tmp_path)
    data = path.read_bytes()
    for cut in (1, 9, 100):
        path.write_bytes(data[:-cut])
        assert list(read_segment(str(path))) == RECORDS[:2]


def test_a_damaged_record_before_the_end_is_corruption(tmp_path: Path) -> None:
    path = _segment(tmp_path)
    data = bytearray(path.read_bytes())
    data[12] ^= 0xFF  # inside the first record
    path.write_bytes(bytes(data))
    with pytest.raises(BackupCorrupted, match="failed its checksum"):
        list(read_segment(str(path)))


REGIONS = ["a", "b"]


def test_a_hold_stops_the_purge_below_what_every_region_acknowledged() -> None:
    own = {"a": Cursor(50, make_hlc(50)), "b": Cursor(30, make_hlc(30))}
    acked = {"b": dict(own)}
    free = plan_retention("a", REGIONS, acked, own, now_ms=100)
    assert dict(free.plan.purge_through) == {"a": 50, "b": 30}
    held = plan_retention("a", REGIONS, acked, own, now_ms=100, holds={"a": 20})
    assert dict(held.plan.purge_through) == {"a": 20, "b": 30}  # only the held origin waits
    assert not held.forced


def test_the_bounded_maximum_still_overrides_a_hold() -> None:
    own = {"a": Cursor(50, make_hlc(50))}
    decision = plan_retention("a", REGIONS, {}, own, now_ms=100, holds={"a": 5},
                              max_records_per_origin=10)
    assert decision.plan.purge_through == {"a": 40} and decision.forced
