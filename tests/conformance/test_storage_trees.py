"""The hash-tree part of the `Storage` contract (storage/protocol.py, "Hash trees"), run
against every implementation.

Each test checks a storage's trees against a naive reference: the keys' newest states
kept in a dict by the test itself, hashed with the verify core's own
`antientropy.rebuild_buckets`. To check another backend, add a `TreeBackend` to
TREE_BACKENDS (how to open a storage with trees kept or not, and reopen its data).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from atoll.antientropy import DEFAULT_SHAPE, Entry, encode_hlc_version, rebuild_buckets
from atoll.antientropy.hashing import bucket_of
from atoll.model.keys import encode_key_value, partition_hash
from atoll.replication.change import Version
from atoll.storage import MemoryStorage, SqliteStorage, Storage, WriteTxn
from atoll.storage.postgres import PostgresStorage
from atoll.storage.sqlite.trees import FOLD_AT
from atoll.storage.treeprotocol import TREE_BUCKETS, TreeAccess, TreeRow, tree_version
from tests.pg import fresh_schema_dsn, pg_server, shared_server  # noqa: F401  (fixture)
from tests.support import in_a_loop, started, write

TIMEOUT_S = 30
Key = tuple[int, bytes, bytes]
State = tuple[int, str, bytes | None]  # hlc, origin, item (None: tombstone)


@dataclass(frozen=True)
class TreeBackend:
    open: Callable[[Path, str, bool], Any]  # (directory, region, trees) -> a Storage
    reopen: Callable[[Any, Path, str, bool], Any]  # (closed one, directory, region, trees)


def _sqlite(path: Path, region: str, trees: bool) -> SqliteStorage:
    return SqliteStorage(str(path / "trees.db"), durable=False, region=region, trees=trees)


def _postgres(path: Path, region: str, trees: bool) -> PostgresStorage:
    """A schema of the session's PostgreSQL server per test directory: reopening the
    same directory's storage finds the same data."""
    schema = "t_" + "".join(c if c.isalnum() else "_" for c in path.name.lower())[-40:]
    return PostgresStorage(fresh_schema_dsn(shared_server(), schema), region=region,
                           trees=trees)


TREE_BACKENDS: dict[str, TreeBackend] = {
    "sqlite": TreeBackend(_sqlite, lambda _old, path, region, trees: _sqlite(path, region, trees)),
    "memory": TreeBackend(lambda _path, region, trees: MemoryStorage(region, trees=trees),
                          lambda old, _path, region, trees: MemoryStorage(region, data=old.data,
                                                                          trees=trees)),
    "postgresql": TreeBackend(_postgres, lambda _old, path, region, trees: _postgres(
        path, region, trees)),
}


@pytest.fixture(params=sorted(TREE_BACKENDS))
def backend(request: pytest.FixtureRequest) -> TreeBackend:
    if request.param == "postgresql":
        request.getfixturevalue("pg_server")  # started once, stopped after the session
    return TREE_BACKENDS[request.param]


async def write_now(access: TreeAccess, fn: Callable[[WriteTxn], Any]) -> Any:
    """`TreeAccess.write_now` from where the backend wants it called."""
    if access.threaded:
        return await asyncio.wait_for(asyncio.to_thread(access.write_now, fn), TIMEOUT_S)
    return access.write_now(fn)


def key(n: int, sk: bytes = b"") -> Key:
    pk = encode_key_value({"S": f"user#{n:05d}"}, "S")
    return partition_hash(pk), pk, sk


class Model:
    """The naive reference: every key's newest state, per table name."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Key, State]] = {}

    def buckets(self, table: str) -> list[int]:
        entries = [Entry(k[1], k[2], encode_hlc_version(Version(hlc, origin), None), item)
                   for k, (hlc, origin, item) in self.tables.get(table, {}).items()]
        return rebuild_buckets(table, entries, DEFAULT_SHAPE)


def put(txn: WriteTxn, tid: int, k: Key, item: bytes, hlc: int, origin: str = "a") -> None:
    old = txn.get(tid, *k)
    txn.put(tid, *k, item, len(item), hlc, origin, old[1] if old else None)


def delete(txn: WriteTxn, tid: int, k: Key, hlc: int, origin: str = "a") -> None:
    old = txn.get(tid, *k)
    if old is None:
        txn.delete_absent(tid, *k, hlc, origin)
    else:
        txn.delete(tid, *k, hlc, origin, old[1])


async def random_writes(storage: Storage, tid: int, table: str, model: Model, rng: random.Random,
                        count: int, hlc0: int) -> int:
    """`count` puts, deletes and deletes of absent keys over a few hundred keys; returns
    the next hlc."""
    states = model.tables.setdefault(table, {})
    hlc = hlc0
    for _batch in range(count // 20):
        jobs = []
        for _ in range(20):
            hlc += 1
            k = key(rng.randrange(300), rng.choice([b"", b"x"]))
            if rng.random() < 0.7:
                item = b'{"v":{"N":"%d"}}' % hlc
                jobs.append(lambda txn, k=k, item=item, hlc=hlc: put(txn, tid, k, item, hlc))
                states[k] = (hlc, "a", item)
            else:
                jobs.append(lambda txn, k=k, hlc=hlc: delete(txn, tid, k, hlc))
                states[k] = (hlc, "a", None)
        await asyncio.wait_for(asyncio.gather(*(storage.write(job) for job in jobs)), TIMEOUT_S)
    return hlc


async def assert_tree(storage: Storage, tid: int, table: str, model: Model) -> None:
    access = storage.tree_access()
    try:
        assert access.tree_built(tid) == TREE_BUCKETS
        assert access.bucket_hashes(tid, 0, TREE_BUCKETS) == model.buckets(table)
    finally:
        access.close()


# --- upkeep ------------------------------------------------------------------------------

@in_a_loop
async def test_the_tree_is_the_xor_of_the_rows_after_puts_deletes_and_purges(
        backend: TreeBackend, tmp_path: Path) -> None:
    model, rng = Model(), random.Random(5)
    async with started(backend.open(tmp_path, "a", True)) as storage:
        t1 = await write(storage, lambda txn: txn.create_table("t1", b"{}"))
        t2 = await write(storage, lambda txn: txn.create_table("t2", b"{}"))
        hlc = await random_writes(storage, t1, "t1", model, rng, 600, 1000)
        hlc = await random_writes(storage, t2, "t2", model, rng, 200, hlc)
        await assert_tree(storage, t1, "t1", model)
        await assert_tree(storage, t2, "t2", model)
        # a purge takes a tombstone's leaf out where it is the key's tree row, and changes
        # nothing where a newer live item covers an older tombstone
        horizon = 1000 + 400
        purged = await write(storage, lambda txn: txn.purge_tombstones(horizon, 10_000))
        assert purged > 0
        for states in model.tables.values():
            for k, (state_hlc, _origin, item) in list(states.items()):
                if item is None and state_hlc < horizon:
                    del states[k]
        await assert_tree(storage, t1, "t1", model)
        await assert_tree(storage, t2, "t2", model)


@in_a_loop
async def test_the_tree_stays_the_xor_of_the_rows_past_the_delta_log_and_a_restart(
        backend: TreeBackend, tmp_path: Path) -> None:
    """More writes than SQLite logs before it folds deltas into its buckets (FOLD_AT):
    the hashes read are the rows' whether a delta is folded or still logged, and after a
    restart with deltas still logged."""
    model, rng = Model(), random.Random(11)
    storage = backend.open(tmp_path, "a", True)
    async with started(storage):
        tid = await write(storage, lambda txn: txn.create_table("t", b"{}"))
        hlc = await random_writes(storage, tid, "t", model, rng, FOLD_AT + 1500, 1000)
        await assert_tree(storage, tid, "t", model)
        hlc = await random_writes(storage, tid, "t", model, rng, 300, hlc)
    storage = backend.reopen(storage, tmp_path, "a", True)
    async with started(storage):
        await assert_tree(storage, tid, "t", model)
        await random_writes(storage, tid, "t", model, rng, FOLD_AT, hlc)
        await assert_tree(storage, tid, "t", model)


@in_a_loop
async def test_a_write_that_does_not_read_its_key_first_still_replaces_the_keys_leaf(
        backend: TreeBackend, tmp_path: Path) -> None:
    """A write takes the key's old row from the job's own read only if nothing was
    written since, in the same transaction; a later transaction reads it again."""
    k, other = key(1), key(2)
    async with started(backend.open(tmp_path, "a", True)) as storage:
        tid = await write(storage, lambda txn: txn.create_table("t", b"{}"))
        await write(storage, lambda txn: put(txn, tid, k, b'{"a":{"S":"1"}}', 10))
        await write(storage, lambda txn: txn.put(tid, *k, b'{"a":{"S":"2"}}', 15, 11, "a", 15,
                                                 (10, "a")))

        def read_then_write_elsewhere_then_here(txn: WriteTxn) -> None:
            assert txn.get(tid, *k) is not None
            put(txn, tid, other, b'{"b":{"S":"1"}}', 12)
            txn.put(tid, *k, b'{"a":{"S":"3"}}', 15, 13, "a", 15, (11, "a"))

        await write(storage, read_then_write_elsewhere_then_here)
        model = Model()
        model.tables["t"] = {k: (13, "a", b'{"a":{"S":"3"}}'),
                             other: (12, "a", b'{"b":{"S":"1"}}')}
        await assert_tree(storage, tid, "t", model)


@in_a_loop
async def test_a_put_over_a_newer_tombstone_leaves_the_tombstone_as_the_tree_row(
        backend: TreeBackend, tmp_path: Path) -> None:
    """The tree row is the newest of a key's item and tombstone, whatever the order."""
    model = Model()
    k = key(1)
    async with started(backend.open(tmp_path, "a", True)) as storage:
        tid = await write(storage, lambda txn: txn.create_table("t", b"{}"))
        await write(storage, lambda txn: txn.delete_absent(tid, *k, 20, "b"))
        await write(storage, lambda txn: put(txn, tid, k, b'{"old":{"S":"x"}}', 10, "a"))
        model.tables["t"] = {k: (20, "b", None)}
        await assert_tree(storage, tid, "t", model)
        row = await write(storage, lambda txn: txn.tree_row(tid, *k))
        assert row == TreeRow(*k, 20, "b", None, True, 0)
        await write(storage, lambda txn: put(txn, tid, k, b'{"new":{"S":"y"}}', 30, "a"))
        model.tables["t"] = {k: (30, "a", b'{"new":{"S":"y"}}')}
        await assert_tree(storage, tid, "t", model)


class Failed(Exception):
    pass


@in_a_loop
async def test_a_job_that_fails_after_writing_leaves_the_tree_as_it_was(
        backend: TreeBackend, tmp_path: Path) -> None:
    model = Model()
    async with started(backend.open(tmp_path, "a", True)) as storage:
        tid = await write(storage, lambda txn: txn.create_table("t", b"{}"))

        def bad(txn: WriteTxn) -> None:
            put(txn, tid, key(2), b'{"b":{"S":"bad"}}', 11)
            txn.tree_correct(tid, 7, 12345)
            raise Failed("after writing")

        futures = [storage.write(lambda txn: put(txn, tid, key(1), b'{"a":{"S":"1"}}', 10)),
                   storage.write(bad),
                   storage.write(lambda txn: put(txn, tid, key(3), b'{"c":{"S":"3"}}', 12))]
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True),
                                         TIMEOUT_S)
        assert isinstance(results[1], Failed)
        model.tables["t"] = {key(1): (10, "a", b'{"a":{"S":"1"}}'),
                             key(3): (12, "a", b'{"c":{"S":"3"}}')}
        await assert_tree(storage, tid, "t", model)


@in_a_loop
async def test_a_dropped_table_takes_its_tree_and_a_new_one_starts_empty_and_complete(
        backend: TreeBackend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a", True)) as storage:
        tid = await write(storage, lambda txn: txn.create_table("t", b"{}"))
        await write(storage, lambda txn: put(txn, tid, key(1), b'{"a":{"S":"1"}}', 10))

        def drop_and_recreate(txn: WriteTxn) -> int:
            put(txn, tid, key(2), b'{"b":{"S":"2"}}', 11)  # a delta pending in this batch
            txn.drop_table("t", tid)
            return txn.create_table("u", b"{}")

        new = await write(storage, drop_and_recreate)
        assert new == tid  # the tid is reused: nothing of the old tree may remain
        model = Model()
        await assert_tree(storage, new, "u", model)
        await write(storage, lambda txn: put(txn, new, key(3), b'{"c":{"S":"3"}}', 12))
        model.tables["u"] = {key(3): (12, "a", b'{"c":{"S":"3"}}')}
        await assert_tree(storage, new, "u", model)


# --- building, correcting, reading -------------------------------------------------------

@in_a_loop
async def test_a_table_written_without_trees_gets_its_tree_built_in_chunks_under_writes(
        backend: TreeBackend, tmp_path: Path) -> None:
    model, rng = Model(), random.Random(9)
    storage = backend.open(tmp_path, "a", False)
    async with started(storage):
        tid = await write(storage, lambda txn: txn.create_table("t", b"{}"))
        hlc = await random_writes(storage, tid, "t", model, rng, 400, 1000)
        access = storage.tree_access()
        assert access.tree_built(tid) == 0
        assert await write(storage, lambda txn: txn.tree_build(tid, 100)) == 0  # keeps none
        access.close()
    storage = backend.reopen(storage, tmp_path, "a", True)
    async with started(storage):
        access = storage.tree_access()
        assert access.tree_built(tid) == 0
        built, steps = 0, 0
        while built < TREE_BUCKETS:
            built = await write(storage, lambda txn: txn.tree_build(tid, 9000))
            hlc = await random_writes(storage, tid, "t", model, rng, 40, hlc)  # writes go on
            steps += 1
            assert access.tree_built(tid) == built
        assert steps == -(-TREE_BUCKETS // 9000)
        access.close()
        await assert_tree(storage, tid, "t", model)


@in_a_loop
async def test_a_correction_xors_one_bucket_and_snapshots_show_hashes_and_rows(
        backend: TreeBackend, tmp_path: Path) -> None:
    model = Model()
    async with started(backend.open(tmp_path, "a", True)) as storage:
        tid = await write(storage, lambda txn: txn.create_table("t", b"{}"))
        k1, k2 = key(1), key(2)
        await write(storage, lambda txn: (put(txn, tid, k1, b'{"a":{"S":"1"}}', 10),
                                          delete(txn, tid, k2, 11, "b")))
        model.tables["t"] = {k1: (10, "a", b'{"a":{"S":"1"}}'), k2: (11, "b", None)}
        access = storage.tree_access()
        bucket = bucket_of(k1[1])
        snapshots = access.bucket_snapshots(tid, bucket - 1, 3)
        assert [snapshots.get(b, (0, []))[0] for b in range(bucket - 1, bucket + 2)] \
            == model.buckets("t")[bucket - 1:bucket + 2]
        assert all(stored or rows for stored, rows in snapshots.values())  # empty: left out
        stored, rows = snapshots[bucket]
        assert stored != 0 and TreeRow(*k1, 10, "a", b'{"a":{"S":"1"}}', True, 15) in rows
        assert all(r.h >> 16 == b for b, (_s, rs) in snapshots.items() for r in rs)
        await write_now(access, lambda txn: txn.tree_correct(tid, bucket, 0xABC))
        assert access.bucket_hashes(tid, bucket, 1) == [stored ^ 0xABC]
        await write_now(access, lambda txn: txn.tree_correct(tid, bucket, 0xABC))
        assert access.bucket_hashes(tid, bucket, 1) == [stored]
        assert access.tree_rows(tid, [k2, key(3)]) == [TreeRow(*k2, 11, "b", None, True), None]
        assert access.key_count(tid) == 2
        access.close()


@in_a_loop
async def test_item_states_read_each_keys_causal_state_as_the_write_path_does(
        backend: TreeBackend, tmp_path: Path) -> None:
    """What a verify fetch sends with a row: the live item's (state, version, prev), else
    the tombstone's, as `WriteTxn.item_state` reads it."""
    async with started(backend.open(tmp_path, "a", True)) as storage:
        tid = await write(storage, lambda txn: txn.create_table("t", b"{}"))
        k1, k2, k3 = key(1), key(2), key(3)
        item = b'{"a":{"S":"1"}}'
        await write(storage, lambda txn: (
            txn.put(tid, *k1, item, len(item), 10, "a", None, (7, "b"), b'{"c":{"a":10}}'),
            txn.delete_absent(tid, *k2, 11, "b", (9, "a"))))
        access = storage.tree_access()
        found = access.item_states(tid, [k1, k2, k3])
        assert found == [(b'{"c":{"a":10}}', (10, "a"), (7, "b")), (b"", (11, "b"), (9, "a")),
                         None]
        assert found == await write(storage, lambda txn: [txn.item_state(tid, *k)
                                                          for k in (k1, k2, k3)])
        access.close()


@in_a_loop
async def test_bucket_rows_page_in_key_order_through_items_and_tombstones(
        backend: TreeBackend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a", True)) as storage:
        tid = await write(storage, lambda txn: txn.create_table("t", b"{}"))
        k = key(7)
        sks = [bytes([n]) for n in range(30)]

        def fill(txn: WriteTxn) -> None:  # one partition: one bucket, 30 keys
            for n, sk in enumerate(sks):
                if n % 3 == 0:
                    txn.delete_absent(tid, k[0], k[1], sk, 100 + n, "a")
                    continue
                if n % 5 == 0:  # an older tombstone under a live item
                    txn.delete_absent(tid, k[0], k[1], sk, 1, "z")
                put(txn, tid, (k[0], k[1], sk), b'{"n":{"N":"%d"}}' % n, 100 + n)

        await write(storage, fill)
        access = storage.tree_access()
        seen: list[bytes] = []
        after = None
        for _ in range(10):
            page = access.bucket_rows(tid, k[0] >> 16, after, 7)
            seen += [row.sk for row in page]
            if len(page) < 7:
                break
            after = (page[-1].h, page[-1].pk, page[-1].sk)
        assert seen == sks
        versions = {row.sk: (row.hlc, row.item is None)
                    for row in access.bucket_rows(tid, k[0] >> 16, None, 100)}
        assert versions == {sk: (100 + n, n % 3 == 0) for n, sk in enumerate(sks)}
        access.close()


# --- purge points and the repair log ------------------------------------------------------

@in_a_loop
async def test_purge_points_record_the_newest_purged_record_and_survive_a_restart(
        backend: TreeBackend, tmp_path: Path) -> None:
    storage = backend.open(tmp_path, "a", True)
    async with started(storage):
        def log(txn: WriteTxn) -> None:
            for n in range(1, 11):
                txn.log_change(1000 + n, b"c%d" % n)
            txn.append_remote_changes([("b", n, 2000 + n, b"r%d" % n) for n in range(1, 6)])

        await write(storage, log)
        assert storage.purge_points() == {}
        assert await write(storage, lambda txn: txn.purge_changelog("a", 4, 100)) == 4
        assert await write(storage, lambda txn: txn.purge_changelog("b", 9, 2)) == 2
        assert storage.purge_points() == {"a": (4, 1004), "b": (2, 2002)}

        def bad(txn: WriteTxn) -> None:
            txn.purge_changelog("a", 8, 100)
            raise Failed("after writing")

        with pytest.raises(Failed):
            await write(storage, bad)
        assert storage.purge_points() == {"a": (4, 1004), "b": (2, 2002)}
        access = storage.tree_access()
        assert access.purge_points() == {"a": (4, 1004), "b": (2, 2002)}
        assert access.cursor_vector() == storage.cursor_vector()
        access.close()
    storage = backend.reopen(storage, tmp_path, "a", True)
    async with started(storage):
        assert storage.purge_points() == {"a": (4, 1004), "b": (2, 2002)}


@in_a_loop
async def test_the_repair_log_numbers_records_from_one_and_a_failed_job_leaves_none(
        backend: TreeBackend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a", True)) as storage:
        await write(storage, lambda txn: txn.record_repair(5, "t", b"one"))

        def bad(txn: WriteTxn) -> None:
            txn.record_repair(6, "t", b"lost")
            raise Failed("after writing")

        with pytest.raises(Failed):
            await write(storage, bad)
        await write(storage, lambda txn: txn.record_repair(7, "u", b"two"))
        assert storage.repairs() == [(1, 5, "t", b"one"), (2, 7, "u", b"two")]
        assert storage.repairs(1, 10) == [(2, 7, "u", b"two")]


def test_tree_version_is_the_verify_cores_version_without_prev() -> None:
    assert tree_version(123, "eu") == encode_hlc_version(Version(123, "eu"), None)
