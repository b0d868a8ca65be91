"""Laws of the trees and the comparison, checked against naive references.

- A bucket hash maintained write by write equals the one rebuilt from the rows, and does
  not depend on the order of the writes (XOR commutes).
- Upper levels computed from the buckets change iff some bucket under them changed.
- A session over any two or three stores lists exactly the keys whose states disagree
  (a naive comparison of all rows), whatever the page size, with large buckets compared
  through sub-bucket hashes.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from atoll.antientropy import (
    MemoryTreeStore,
    Session,
    SessionConfig,
    TreeShape,
    VerdictBook,
    drive,
    encode_hlc_version,
    rebuild_buckets,
    serve,
)
from atoll.antientropy.hashing import level_hashes
from atoll.antientropy.messages import listed_of
from atoll.antientropy.store import KeyPos
from atoll.antientropy.verdict import agree
from atoll.replication.change import Version

TABLE = "t"
BITS = 4

keys = st.binary(min_size=1, max_size=6)
versions = st.integers(min_value=1, max_value=50)
contents = st.one_of(st.none(), st.binary(min_size=1, max_size=8))
writes = st.lists(st.tuples(keys, versions, contents), max_size=60)


def version(hlc: int, origin: str = "a") -> bytes:
    return encode_hlc_version(Version(hlc, origin), None)


def new_store(region: str) -> MemoryTreeStore:
    store = MemoryTreeStore(region, bucket_bits=BITS)
    store.create_table(TABLE, version(1))
    return store


@settings(max_examples=150, deadline=None)
@given(writes, st.randoms(use_true_random=False))
def test_incremental_tree_equals_rebuild_in_any_order(ops, rnd):
    forward, shuffled = new_store("a"), new_store("b")
    final: dict[bytes, tuple[int, bytes | None]] = {}
    for pk, hlc, item in ops:
        forward.write(TABLE, pk, b"", version(hlc), item)
        final[pk] = (hlc, item)
    rows = list(final.items())
    rnd.shuffle(rows)
    for pk, (hlc, item) in rows:
        shuffled.write(TABLE, pk, b"", version(hlc), item)
    shape = TreeShape(BITS, 2)
    rebuilt = rebuild_buckets(TABLE, forward.rows(TABLE).values(), shape)
    assert list(forward.bucket_hashes(TABLE, 0, shape.buckets)) == rebuilt
    assert list(shuffled.bucket_hashes(TABLE, 0, shape.buckets)) == rebuilt


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**128 - 1), min_size=256, max_size=256),
       st.integers(min_value=0, max_value=255), st.integers(min_value=1, max_value=2**128 - 1))
def test_a_changed_bucket_changes_exactly_its_ancestors(buckets, changed, delta):
    shape = TreeShape(8, 2)
    after = list(buckets)
    after[changed] ^= delta
    for level in range(0, shape.depth):
        before_nodes = level_hashes(shape, buckets, level, 0, shape.nodes_at(level))
        after_nodes = level_hashes(shape, after, level, 0, shape.nodes_at(level))
        span = shape.buckets // shape.nodes_at(level)
        differing = [i for i, (x, y) in enumerate(zip(before_nodes, after_nodes)) if x != y]
        assert differing == [changed // span]


region_rows = st.dictionaries(st.sampled_from([b"k%d" % i for i in range(40)]),
                              st.tuples(versions, contents), max_size=40)


def naive_differences(stores: dict[str, MemoryTreeStore]) -> set[tuple[KeyPos, str, str]]:
    """Every (key, region, region) whose states disagree, from all rows."""
    views = {r: s.rows(TABLE) for r, s in stores.items()}
    found = set()
    for a, b in itertools.combinations(sorted(stores), 2):
        for key in set(views[a]) | set(views[b]):
            sa, sb = views[a].get(key), views[b].get(key)
            if not agree(None if sa is None else listed_of(sa),
                         None if sb is None else listed_of(sb)):
                found.add((key, a, b))
    return found


@settings(max_examples=120, deadline=None)
@given(st.lists(region_rows, min_size=2, max_size=3), st.integers(min_value=1, max_value=7),
       st.booleans(), st.sampled_from([1, 2, 3]), st.booleans())
def test_a_session_finds_exactly_the_disagreeing_keys(tables, page_keys, skew, sub_bits, deep):
    stores = {}
    for index, rows in enumerate(tables):
        store = new_store(f"r{index}")
        for pk, (hlc, item) in rows.items():
            # skew: a third of the keys share one partition key (one bucket), so buckets
            # outgrow a page and are compared through sub-bucket hashes
            shared = skew and pk[-1] % 3 == 0
            store.write(TABLE, b"p" if shared else pk, pk if shared else b"", version(hlc), item)
        stores[store.region] = store
    config = SessionConfig(shape=TreeShape(BITS, 2), page_keys=page_keys, sub_bits=sub_bits,
                           spans_per_request=3, parents_per_request=2, deep=deep)
    session = Session(TABLE, sorted(stores), 7, 0, VerdictBook(), config=config)
    report = drive(session, lambda region, data: serve(data, stores[region], 0), lambda: 1)
    assert not report.error
    assert {(d.key, d.a, d.b) for d in report.differences} == naive_differences(stores)
    assert report.damaged_buckets == ({r: 0 for r in stores} if deep else {})
