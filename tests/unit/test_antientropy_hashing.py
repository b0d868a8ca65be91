"""Leaves, buckets, the per-transaction delta and today's version bytes."""

from __future__ import annotations

import pytest

from atoll.antientropy import (
    MemoryTreeStore,
    TreeDelta,
    TreeShape,
    bucket_h_range,
    bucket_of,
    item_leaf,
    leaf_hash,
    rebuild_buckets,
)
from atoll.antientropy.hashing import content_hash, level_hashes, node_hash, sub_bucket_of
from atoll.antientropy.store import scrub_bucket
from atoll.antientropy.versions import (
    HLC_SCHEME,
    BadVersion,
    decode_hlc_version,
    encode_hlc_version,
)
from atoll.invariant import InvariantViolation
from atoll.model.keys import partition_hash
from atoll.replication.change import Version

V = encode_hlc_version(Version(7, "us-east"), Version(3, "eu-west"))


def test_a_leaf_covers_every_field():
    base = leaf_hash("t", b"pk", b"sk", V, content_hash(b"{}"))
    others = [leaf_hash("u", b"pk", b"sk", V, content_hash(b"{}")),
              leaf_hash("t", b"pk2", b"sk", V, content_hash(b"{}")),
              leaf_hash("t", b"pk", b"sk2", V, content_hash(b"{}")),
              leaf_hash("t", b"pk", b"sk", encode_hlc_version(Version(8, "us-east"), None),
                        content_hash(b"{}")),
              leaf_hash("t", b"pk", b"sk", V, content_hash(b"{ }")),
              leaf_hash("t", b"pk", b"sk", V, None)]
    assert len({base, *others}) == 7
    assert 0 < base < 1 << 128
    # length prefixes: moving a byte between fields changes the leaf
    assert leaf_hash("t", b"ab", b"c", V, None) != leaf_hash("t", b"a", b"bc", V, None)


def test_buckets_are_ranges_of_the_partition_hash():
    for pk in (b"a", b"user#1", b"\x00\xff" * 10):
        bucket = bucket_of(pk)
        low, high = bucket_h_range(bucket)
        assert low <= partition_hash(pk) <= high
        assert bucket_of(pk, 8) == bucket >> 8
    assert bucket_h_range(0) == (0, 0xFFFF) and bucket_h_range(65535)[1] == 0xFFFFFFFF


def test_tree_delta_xors_per_bucket_and_drops_cancelled_ones():
    delta = TreeDelta(16)
    delta.add("t", b"a", 0, 5)
    delta.add("t", b"a", 5, 9)  # the same key written twice in one batch
    delta.add("t", b"b", 3, 3)  # unchanged row: nothing
    delta.add("u", b"c", 0, 4)
    delta.add("u", b"c", 4, 0)  # written and removed again: cancels
    assert delta.nonzero() == [("t", bucket_of(b"a"), 9)]


def test_node_hash_of_empty_children_is_zero():
    assert node_hash([0, 0, 0, 0]) == 0
    assert node_hash([0, 1, 0, 0]) != node_hash([1, 0, 0, 0])
    shape = TreeShape(4, 2)
    assert level_hashes(shape, [0] * 16, 0, 0, 1) == [0]
    with pytest.raises(InvariantViolation):
        level_hashes(shape, [0] * 15, 0, 0, 1)


def test_tree_shapes_are_checked():
    assert TreeShape().depth == 4 and TreeShape().buckets == 65536 and TreeShape().fanout == 16
    with pytest.raises(InvariantViolation):
        TreeShape(16, 3)
    with pytest.raises(InvariantViolation):
        TreeShape(24, 4)


def test_sub_buckets_split_one_partition():
    subs = {sub_bucket_of(b"p", b"%d" % i, 4) for i in range(200)}
    assert subs == set(range(16))


def test_hlc_versions_round_trip_and_refuse_non_canonical_bytes():
    assert decode_hlc_version(V) == (Version(7, "us-east"), Version(3, "eu-west"))
    assert HLC_SCHEME.stamps(V) == (("us-east", 7),)
    assert HLC_SCHEME.describe(V) == "us-east@7"
    for raw in (b"[7, \"us-east\", null]", b"[7,\"\",null]", b"[-1,\"a\",null]", b"{}", b"x",
                b"[7,\"a\",[1]]", b"[true,\"a\",null]"):
        with pytest.raises(BadVersion):
            decode_hlc_version(raw)


def test_scheme_follows_the_merge_rule():
    older = encode_hlc_version(Version(5, "a"), None)
    newer = encode_hlc_version(Version(6, "b"), Version(5, "a"))
    concurrent = encode_hlc_version(Version(6, "c"), None)
    assert HLC_SCHEME.supersedes(newer, older) and not HLC_SCHEME.supersedes(older, newer)
    assert not HLC_SCHEME.concurrent(newer, older)  # newer knowingly overwrote older
    assert HLC_SCHEME.concurrent(concurrent, older)
    assert HLC_SCHEME.supersedes(concurrent, newer)  # (6, "c") > (6, "b")


def test_memory_store_keeps_its_tree_equal_to_its_rows_until_a_fault():
    store = MemoryTreeStore("a", bucket_bits=4)
    store.create_table("t", V)
    for i in range(50):
        store.write("t", b"k%d" % i, b"", V, b"%d" % i)
    store.write("t", b"k1", b"", V, None)
    store.purge_tombstone("t", b"k1", b"")
    shape = TreeShape(4, 2)
    rows = store.rows("t")
    assert list(store.bucket_hashes("t", 0, 16)) == rebuild_buckets("t", rows.values(), shape)
    store.drop_row("t", b"k2", b"")
    bucket = bucket_of(b"k2", 4)
    stored, entries = store.bucket_snapshot("t", bucket)
    scrub = scrub_bucket("t", bucket, stored, entries)
    assert scrub.damaged and stored ^ scrub.rebuilt == item_leaf("t", b"k2", b"", V, b"2")
