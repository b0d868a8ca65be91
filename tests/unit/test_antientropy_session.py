"""The session's walk: round trips and bytes stay proportional to what differs."""

from __future__ import annotations

from atoll.antientropy import (
    MemoryTreeStore,
    Session,
    SessionConfig,
    Status,
    TreeShape,
    VerdictBook,
    drive,
    encode_hlc_version,
    serve,
)
from atoll.antientropy.hashing import bucket_of
from atoll.antientropy.messages import SubHashes
from atoll.antientropy.wire import decode_request
from atoll.replication.change import Version

TABLE = "t"


def pair(keys: int, bucket_bits: int = 16, one_partition: bool = False
         ) -> dict[str, MemoryTreeStore]:
    stores = {}
    for region in ("a", "b"):
        store = MemoryTreeStore(region, bucket_bits=bucket_bits)
        store.create_table(TABLE, encode_hlc_version(Version(1, "a"), None))
        for i in range(keys):
            pk, sk = (b"p", b"%06d" % i) if one_partition else (b"k%06d" % i, b"")
            store.write(TABLE, pk, sk, encode_hlc_version(Version(10 + i, "a"), None), b"{}")
        store.set_cursor("a", keys, 10 + keys)
        stores[region] = store
    return stores


def run(stores, config: SessionConfig, remote=("b",)):  # type: ignore[no-untyped-def]
    sent = []

    def answer(region: str, data: bytes) -> bytes:
        sent.append(decode_request(data))
        return serve(data, stores[region], 0)

    session = Session(TABLE, sorted(stores), 1, 0, VerdictBook(), config=config, remote=remote)
    return drive(session, answer, lambda: 1), sent


def test_one_divergent_key_costs_depth_round_trips_and_little_bytes():
    stores = pair(5000)
    stores["b"].write(TABLE, b"k000123", b"", encode_hlc_version(Version(5, "b"), None), b"{}")
    report, _ = run(stores, SessionConfig())
    assert [d.pk for d in report.differences] == [b"k000123"]
    assert report.round_trips == 1 + 3 + 1  # open (level 1), levels 2-4, the bucket's keys
    assert report.pairs[0].bytes_exchanged < 3_000
    assert report.bytes_by_region["a"] == 0  # the local region's answers are not counted


def test_a_large_partition_is_compared_by_sub_buckets():
    stores = pair(3000, bucket_bits=8, one_partition=True)
    stores["b"].write(TABLE, b"p", b"%06d" % 1234, encode_hlc_version(Version(5, "b"), None),
                      b"{}")
    config = SessionConfig(shape=TreeShape(8, 4), page_keys=100, sub_bits=8)
    report, sent = run(stores, config)
    assert [(d.pk, d.sk) for d in report.differences] == [(b"p", b"001234")]
    assert any(isinstance(r, SubHashes) for r in sent)
    # listing the partition would cost ~3,000 rows of ~40 bytes per region
    assert report.pairs[0].bytes_exchanged < 30_000


def test_a_session_refuses_to_list_more_rows_than_its_bound():
    stores = pair(500, bucket_bits=4)
    for i in range(500):
        stores["b"].write(TABLE, b"k%06d" % i, b"", encode_hlc_version(Version(5, "b"), None),
                          b"{}")
    report, _ = run(stores, SessionConfig(shape=TreeShape(4, 2), max_rows=300))
    assert report.status is Status.INCOMPLETE and "rows to compare" in report.error


def test_focused_pass_lists_only_the_given_buckets():
    stores = pair(1000, bucket_bits=8)
    stores["b"].write(TABLE, b"k000007", b"", encode_hlc_version(Version(5, "b"), None), b"{}")
    target = bucket_of(b"k000007", 8)
    session = Session(TABLE, ["a", "b"], 2, 0, VerdictBook(),
                      config=SessionConfig(shape=TreeShape(8, 4)), focus=[target])
    report = drive(session, lambda r, d: serve(d, stores[r], 0), lambda: 1)
    assert [d.pk for d in report.differences] == [b"k000007"]
    assert report.round_trips == 2  # open, then the bucket's keys
    session = Session(TABLE, ["a", "b"], 3, 0, VerdictBook(),
                      config=SessionConfig(shape=TreeShape(8, 4)), focus=[(target + 1) % 256])
    assert drive(session, lambda r, d: serve(d, stores[r], 0), lambda: 1).differences == []
