"""The `Storage` contract (atoll.storage.protocol), run against every implementation.

To check another backend (PostgreSQL), add a `Backend` to BACKENDS: how to open an empty
storage for a region, and how to open a closed one's data again, as after a restart.
Every test runs once per backend; ranges and orders are checked against a naive
reference (sorted Python tuples) on keys chosen to catch prefix and sign mistakes.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from atoll.errors import ServiceUnavailable
from atoll.invariant import InvariantViolation
from atoll.storage import MemoryStorage, SqliteStorage, WriteTxn
from atoll.storage.postgres import PostgresStorage
from atoll.storage.protocol import SCAN_PAGE_ROWS
from tests.pg import fresh_schema_dsn, pg_server, shared_server  # noqa: F401  (fixture)
from tests.support import in_a_loop, started, write

TIMEOUT_S = 20


@dataclass(frozen=True)
class Backend:
    open: Callable[[Path, str], Any]  # (directory, region) -> an empty Storage
    reopen: Callable[[Any, Path, str], Any]  # (closed storage, directory, region) -> Storage


def _sqlite(path: Path, region: str) -> SqliteStorage:
    return SqliteStorage(str(path / "conformance.db"), durable=True, region=region)


def _postgres(path: Path, region: str) -> PostgresStorage:
    """A schema of the session's PostgreSQL server per test directory: reopening the
    same directory's storage finds the same data."""
    schema = "c_" + "".join(c if c.isalnum() else "_" for c in path.name.lower())[-40:]
    return PostgresStorage(fresh_schema_dsn(shared_server(), schema), region=region)


BACKENDS: dict[str, Backend] = {
    "sqlite": Backend(_sqlite, lambda _old, path, region: _sqlite(path, region)),
    "memory": Backend(lambda _path, region: MemoryStorage(region),
                      lambda old, _path, region: MemoryStorage(region, data=old.data)),
    "postgresql": Backend(_postgres, lambda _old, path, region: _postgres(path, region)),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "postgresql":
        request.getfixturevalue("pg_server")  # started once, stopped after the session
    return BACKENDS[request.param]


def create(name: str) -> Callable[[WriteTxn], int]:
    return lambda txn: txn.create_table(name, b'{"name": "%s"}' % name.encode())


def put(txn: WriteTxn, tid: int, key: tuple[int, bytes, bytes], item: bytes = b"{}",
        hlc: int = 1, origin: str = "a", prev: tuple[int, str] | None = None) -> None:
    """A put as the engine makes it: telling the storage the size it replaces."""
    old = txn.get(tid, *key)
    txn.put(tid, *key, item, len(item), hlc, origin, old[1] if old else None, prev)


def puts(tid: int, keys: list[tuple[int, bytes, bytes]]) -> Callable[[WriteTxn], None]:
    def job(txn: WriteTxn) -> None:
        for n, key in enumerate(keys):
            put(txn, tid, key, b'{"n": %d}' % n)
    return job


class Failed(Exception):
    """What the failing jobs of these tests raise."""


# Bytes chosen around the edges of bytewise order: the empty string, prefixes, 0x00, 0xff.
EDGES = [b"", b"\x00", b"\x00\x00", b"a", b"a\x00", b"a\x00\x00", b"a\xff", b"ab", b"b",
         b"\x7f", b"\x80", b"\xff", b"\xff\xff"]
HASHES = [0, 1, 2**31 - 1, 2**31, 2**32 - 1]  # unsigned 32-bit: 2**31 sorts after 2**31 - 1


# --- the write path ------------------------------------------------------------------------

@pytest.mark.parametrize("inline", [True, False])
@in_a_loop
async def test_a_job_that_fails_after_writing_leaves_nothing_and_its_batch_mates_commit(
        backend: Backend, tmp_path: Path, inline: bool) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))

        def first(txn: WriteTxn) -> int:
            put(txn, tid, (1, b"k1", b""))
            return txn.log_change(10, b"first")

        def bad(txn: WriteTxn) -> None:
            put(txn, tid, (1, b"k2", b""))
            txn.delete(tid, 1, b"k1", b"", 11, "a", 2)
            txn.index_put(tid, 1, 5, b"g", b"", b"k2", b"", b"{}", 2)
            txn.log_change(11, b"bad")
            txn.append_remote_changes([("b", 1, 5, b"remote")])
            txn.set_cursor("b", 1, 5)
            txn.token_put("token", b"hash", 100)
            txn.record_conflict(100, "t", b"conflict")
            txn.create_table("other", b"{}")
            txn.set_table_state("other", (1, "a"), (1, "a"), b"{}")
            txn.keep_changes("t", (b"first",))
            raise Failed("after writing")

        def last(txn: WriteTxn) -> int:
            put(txn, tid, (1, b"k3", b""))
            return txn.log_change(12, b"last")

        futures = [storage.write(job, inline=inline) for job in (first, bad, last)]
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True),
                                         TIMEOUT_S)
        assert results[0] == 1 and isinstance(results[1], Failed) and results[2] == 2
        assert storage.get_item(tid, 1, b"k1", b"") == (b"{}", 2)
        assert storage.get_item(tid, 1, b"k2", b"") is None
        assert storage.get_item(tid, 1, b"k3", b"") == (b"{}", 2)
        assert [body for _s, _h, body in storage.changes_since("a", 0, 10)] == [b"first", b"last"]
        assert storage.changes_since("b", 0, 10) == [] and "b" not in storage.cursor_vector()
        assert list(storage.scan_index(tid, 1, None, None)) == []
        assert storage.conflicts() == [] and storage.table_state_row("other") is None
        assert [name for name, _tid, _d in storage.load_tables()] == ["t"]
        assert storage.table_stats(tid) == (2, 4)
        kept = storage.snapshot_changes()
        assert kept.kept_tables == {}
        kept.close()
        assert await write(storage, lambda txn: (txn.token_get("token"),
                                                 txn.tombstone_version(tid, 1, b"k1", b""))
                           ) == (None, None)


@in_a_loop
async def test_a_job_that_fails_before_writing_fails_alone(backend: Backend,
                                                           tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        def refuse(txn: WriteTxn) -> None:
            if txn.get(1, 1, b"k", b"") is None:
                raise Failed("condition")

        futures = [storage.write(lambda txn: txn.log_change(1, b"x"), inline=True),
                   storage.write(refuse, inline=True),
                   storage.write(lambda txn: txn.log_change(2, b"y"), inline=True)]
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True),
                                         TIMEOUT_S)
        assert results[0] == 1 and isinstance(results[1], Failed) and results[2] == 2


@in_a_loop
async def test_jobs_run_in_submission_order_and_each_sees_the_writes_before_it(
        backend: Backend, tmp_path: Path) -> None:
    rng = random.Random(3)
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))

        def job_for(n: int) -> Callable[[WriteTxn], tuple[int, bool]]:
            def job(txn: WriteTxn) -> tuple[int, bool]:
                saw = n == 0 or txn.get(tid, 0, b"%d" % (n - 1), b"") is not None
                put(txn, tid, (0, b"%d" % n, b""))
                return txn.log_change(n, b""), saw
            return job

        futures = []
        for n in range(1200):  # more than one batch's worth, submitted at once
            futures.append(storage.write(job_for(n), inline=rng.random() < 0.7))
        assert not any(future.done() for future in futures)  # answered once durable, later
        results = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
        assert results == [(n + 1, True) for n in range(1200)]
        assert storage.status()["writes_committed"] == 1201


@in_a_loop
async def test_write_sync_runs_a_job_before_start_and_only_then(backend: Backend,
                                                                 tmp_path: Path) -> None:
    storage = backend.open(tmp_path, "a")
    tid = storage.write_sync(create("t"))

    def bad(txn: WriteTxn) -> None:
        put(txn, tid, (1, b"k", b""))
        raise Failed("after writing")

    with pytest.raises(Failed):
        storage.write_sync(bad)
    assert storage.write_sync(lambda txn: txn.log_change(1, b"x")) == 1
    async with started(storage):
        assert storage.get_item(tid, 1, b"k", b"") is None
        assert storage.changes_since("a", 0, 10) == [(1, 1, b"x")]
        with pytest.raises(InvariantViolation):
            storage.write_sync(lambda txn: None)


@in_a_loop
async def test_writes_queue_only_up_to_a_bound(backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        futures = []
        with pytest.raises(ServiceUnavailable):
            for _ in range(100_000):
                futures.append(storage.write(lambda txn: None, inline=True))
        assert 100 <= len(futures) < 100_000
        assert await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S) == [None] * len(futures)
        assert await write(storage, lambda txn: 7) == 7  # accepted again once answered


@in_a_loop
async def test_close_finishes_queued_writes_refuses_new_ones_and_keeps_them(
        backend: Backend, tmp_path: Path) -> None:
    storage = backend.open(tmp_path, "a")
    storage.start(asyncio.get_running_loop())
    futures = [storage.write(lambda txn, n=n: txn.log_change(n, b"%d" % n), inline=n % 2 == 0)
               for n in range(20)]
    storage.close()
    assert await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S) == list(range(1, 21))
    with pytest.raises(ServiceUnavailable):
        storage.write(lambda txn: None)
    storage.close()  # again: nothing happens
    async with started(backend.reopen(storage, tmp_path, "a")) as reopened:
        assert [seq for seq, _h, _b in reopened.changes_since("a", 0, 100)] == list(range(1, 21))
        assert await write(reopened, lambda txn: txn.log_change(99, b"next")) == 21


@in_a_loop
async def test_acknowledged_writes_are_durable_and_settle_has_nothing_left(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        await write(storage, puts(tid, [(1, b"k", b"")]), inline=True)
        assert storage.get_item(tid, 1, b"k", b"") is not None
        waiter = storage.settle()  # the read saw only answered (durable) writes
        assert waiter is None or await asyncio.wait_for(waiter, TIMEOUT_S) is None
        await asyncio.wait_for(storage.settled(), TIMEOUT_S)
        assert storage.settle() is None
    async with started(backend.reopen(storage, tmp_path, "a")) as reopened:
        assert reopened.get_item(tid, 1, b"k", b"") == (b'{"n": 0}', 8)
        assert reopened.load_tables() == [("t", tid, b'{"name": "t"}')]


@in_a_loop
async def test_commit_listeners_run_after_each_batch_with_its_writes_readable(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        seen: list[bool] = []
        storage.commit_listeners.append(
            lambda: seen.append(storage.get_item(tid, 1, b"k", b"") is not None))
        await write(storage, puts(tid, [(1, b"k", b"")]), inline=True)
        assert seen and seen[-1] is True


@in_a_loop
async def test_visible_listeners_run_after_each_commit_with_its_writes_readable(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        seen: list[bool] = []
        storage.visible_listeners.append(
            lambda: seen.append(storage.get_item(tid, 1, b"k", b"") is not None))
        await write(storage, puts(tid, [(1, b"k", b"")]), inline=True)
        await write(storage, puts(tid, [(1, b"j", b"")]))  # a batch run on the writer thread
        assert len(seen) >= 2 and seen[-1] is True


@in_a_loop
async def test_status_counts_writes_and_batches(backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        before = storage.status()
        await asyncio.wait_for(asyncio.gather(
            *(storage.write(lambda txn: None, inline=True) for _ in range(10))), TIMEOUT_S)
        after = storage.status()
        assert after["writes_committed"] - before["writes_committed"] == 10
        assert 1 <= after["write_batches_committed"] - before["write_batches_committed"] <= 10
        assert after["write_path"]["batches_total"] >= 1


# --- items: reads after writes, order and ranges -------------------------------------------

@in_a_loop
async def test_reads_see_each_acknowledged_write(backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        key = (7, b"pk", b"sk")
        assert storage.get_item(tid, *key) is None
        await write(storage, lambda txn: put(txn, tid, key, b"one"), inline=True)
        assert storage.get_item(tid, *key) == (b"one", 3)
        assert storage.get_item(tid, *key) == (b"one", 3)  # a second read (a cache, if any)
        await write(storage, lambda txn: put(txn, tid, key, b"second"), inline=True)
        assert storage.get_item(tid, *key) == (b"second", 6)
        assert storage.get_items_snapshot([(tid, *key), (tid, 7, b"pk", b"other")]) == [
            (b"second", 6), None]
        await write(storage, lambda txn: txn.delete(tid, *key, 5, "a", 6), inline=True)
        assert storage.get_item(tid, *key) is None
        await write(storage, lambda txn: put(txn, tid, key, b"again"), inline=True)
        assert storage.get_item(tid, *key) == (b"again", 5)
        await write(storage, lambda txn: txn.drop_table("t", tid))
        assert storage.get_item(tid, *key) is None


def _keys(rng: random.Random, count: int) -> list[tuple[int, bytes, bytes]]:
    return sorted({(rng.choice(HASHES), rng.choice(EDGES), rng.choice(EDGES))
                   for _ in range(count)})


@in_a_loop
async def test_scans_walk_key_order_from_a_start_key_within_a_hash_range(
        backend: Backend, tmp_path: Path) -> None:
    keys = _keys(random.Random(11), 300)
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        other = await write(storage, create("u"))
        shuffled = random.Random(12).sample(keys, len(keys))
        await write(storage, puts(tid, shuffled))
        await write(storage, puts(other, keys[:5]))
        scanned = [(h, pk, sk) for h, pk, sk, _item, _size in storage.scan_items(tid, None, None)]
        assert scanned == keys
        for after, h_start, h_end in itertools.product(
                [None, *keys[::37], (1, b"a", b"a\x00")], [0, 2**31], [None, 2**31, 2**32 - 1]):
            got = [row[:3] for row in storage.scan_items(tid, after, h_end, h_start)]
            assert got == [key for key in keys
                           if (key > after if after is not None else key[0] >= h_start)
                           and (h_end is None or key[0] < h_end)], (after, h_start, h_end)
        assert list(storage.scan_items(99, None, None)) == []
        for after, h_start, h_end, limit in itertools.product(
                [None, *keys[::53]], [0, 2**31], [None, 2**31], [1, 7, SCAN_PAGE_ROWS]):
            page = storage.scan_page(tid, after, h_end, h_start, limit)
            rows = list(storage.scan_items(tid, after, h_end, h_start, limit))
            assert _listed(page) == [(item, size) for _h, _pk, _sk, item, size in rows]
            _check_unsized(storage.scan_page(tid, after, h_end, h_start, limit, sized=False),
                           page)
        assert _listed(storage.scan_page(99, None, None, 0, 5)) == []


def _listed(page: tuple[Any, Any]) -> list[tuple[bytes, int]]:
    """A page read's (items, sizes) columns as (item, size) rows."""
    items, sizes = page
    assert len(items) == len(sizes)
    return list(zip(items, sizes, strict=True))


def _check_unsized(unsized: tuple[Any, Any], sized: tuple[Any, Any]) -> None:
    """An unsized page read has the sized one's items; each size is the item's or its
    stored length (storage/pages.py)."""
    assert list(unsized[0]) == list(sized[0])
    assert all(size in (exact, len(item))
               for item, size, exact in zip(*unsized, sized[1], strict=True))


def _bounds(values: list[bytes]) -> list[tuple[bytes, bool] | None]:
    return [None] + [(value, inclusive) for value in values for inclusive in (True, False)]


def _within(sk: bytes, lower: tuple[bytes, bool] | None, upper: tuple[bytes, bool] | None
            ) -> bool:
    return ((lower is None or sk > lower[0] or (lower[1] and sk == lower[0]))
            and (upper is None or sk < upper[0] or (upper[1] and sk == upper[0])))


@in_a_loop
async def test_queries_return_one_partition_within_sort_key_bounds_both_ways(
        backend: Backend, tmp_path: Path) -> None:
    sks = [b"", b"\x00", b"a", b"a\x00", b"ab", b"b", b"\xff"]
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        # neighbours of partition (5, b"p"): a longer pk, a pk it prefixes, other hashes
        neighbours = [(5, b"p\x00", b"a"), (5, b"pa", b""), (5, b"o\xff", b"b"),
                      (4, b"p", b"a"), (6, b"p", b"a")]
        await write(storage, puts(tid, [(5, b"p", sk) for sk in sks] + neighbours))
        for lower, upper in itertools.product(_bounds([b"", b"a", b"a\x00", b"aa", b"\xff"]),
                                              repeat=2):
            expected = [sk for sk in sks if _within(sk, lower, upper)]
            for forward in (True, False):
                got = [sk for sk, _item, _size in
                       storage.query_items(tid, 5, b"p", lower, upper, forward)]
                assert got == (expected if forward else expected[::-1]), (lower, upper, forward)


@in_a_loop
async def test_a_query_page_is_the_query_rows_items_and_sizes_without_keys(
        backend: Backend, tmp_path: Path) -> None:
    sks = [b"", b"\x00", b"a", b"a\x00", b"ab", b"b", b"\xff"]
    # sizes as the engine declares them, up to an item's 400 KB (the SQLite storage packs
    # size and checksum into one integer column for this read)
    sizes = [0, 1, 255, 65_536, 409_600, 409_599, 7]
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))

        def job(txn: WriteTxn) -> None:
            for n, (sk, size) in enumerate(zip(sks, sizes, strict=True)):
                txn.put(tid, 5, b"p", sk, b'{"n": %d}' % n, size, 1, "a", None, None)
            txn.put(tid, 5, b"p\x00", b"a", b"{}", 2, 1, "a", None, None)  # a neighbour

        await write(storage, job)
        for lower, upper, forward, limit in itertools.product(
                _bounds([b"", b"a\x00", b"\xff"]), _bounds([b"a", b"\xff"]), (True, False),
                (1, 3, SCAN_PAGE_ROWS)):
            rows = list(storage.query_items(tid, 5, b"p", lower, upper, forward, limit))
            page = storage.query_page(tid, 5, b"p", lower, upper, forward, limit)
            assert page == [(item, size) for _sk, item, size in rows], (lower, upper, forward)
        assert sorted(size for _item, size in
                      storage.query_page(tid, 5, b"p", None, None, True, 10)) == sorted(sizes)
        assert storage.query_page(tid, 5, b"q", None, None, True, 5) == []


@in_a_loop
async def test_table_statistics_follow_the_sizes_writes_declare(backend: Backend,
                                                                 tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        assert storage.table_stats(tid) == (0, 0)

        def writes(txn: WriteTxn) -> None:
            put(txn, tid, (1, b"a", b""), b"12345")
            put(txn, tid, (1, b"b", b""), b"123")
            put(txn, tid, (1, b"a", b""), b"1")  # replaces 5 bytes with 1
            txn.delete(tid, 1, b"b", b"", 9, "a", 3)

        await write(storage, writes)
        assert storage.table_stats(tid) == (1, 1)
        assert storage.table_stats(tid + 1) == (0, 0)
        assert storage.collection_size(tid, 1, b"a") == 1


# --- secondary indexes ---------------------------------------------------------------------

@in_a_loop
async def test_index_rows_order_by_their_full_key_in_queries_and_scans(
        backend: Backend, tmp_path: Path) -> None:
    sks = [b"", b"a", b"a\x00", b"b"]
    bases = [(b"x", b""), (b"x", b"\x00"), (b"y", b"")]
    rows = sorted((sk, base_pk, base_sk) for sk in sks for base_pk, base_sk in bases)
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))

        def index(txn: WriteTxn) -> None:
            txn.index_put_many([(tid, 1, 5, b"g", sk, bpk, bsk, b"{}", 2)
                                for sk, bpk, bsk in reversed(rows)])
            txn.index_put(tid, 1, 5, b"g\x00", b"a", b"x", b"", b"{}", 2)  # a neighbour
            txn.index_put(tid, 2, 5, b"g", b"a", b"x", b"", b"{}", 2)  # another index
            txn.index_put(tid, 1, 5, b"g", b"a", b"x", b"", b"[1]", 3)  # replaces its row

        await write(storage, index)
        for lower, upper in itertools.product(_bounds([b"a", b"a\x00"]), repeat=2):
            for start in [None, rows[0], rows[5], (b"a", b"x", b"\x01"), rows[-1]]:
                for forward in (True, False):
                    expected = [row for row in (rows if forward else rows[::-1])
                                if _within(row[0], lower, upper) and (
                                    start is None or (row > start if forward else row < start))]
                    got = [row[:3] for row in storage.query_index(
                        tid, 1, 5, b"g", lower, upper, forward, start)]
                    assert got == expected, (lower, upper, start, forward)
        assert storage.index_stats(tid, 1) == (len(rows) + 1, 2 * (len(rows) + 1) + 1)
        full = [(5, b"g", *row) for row in rows] + [(5, b"g\x00", b"a", b"x", b"")]
        assert [row[:5] for row in storage.scan_index(tid, 1, None, None)] == full
        assert [row[:5] for row in storage.scan_index(tid, 1, full[4], None)] == full[5:]
        assert list(storage.scan_index(tid, 1, None, 5)) == []
        assert len(list(storage.scan_index(tid, 1, None, 6, 5))) == len(full)

        def unindex(txn: WriteTxn) -> None:
            txn.index_delete(tid, 1, 5, b"g", *rows[0])
            txn.index_drop(tid, 2)

        await write(storage, unindex)
        assert [row[:3] for row in storage.query_index(tid, 1, 5, b"g", None, None, True,
                                                       None)] == rows[1:]
        assert storage.index_stats(tid, 2) == (0, 0)


@in_a_loop
async def test_index_pages_hold_the_items_and_sizes_of_the_range_reads_first_rows(
        backend: Backend, tmp_path: Path) -> None:
    rng = random.Random(21)
    keys = sorted({(rng.choice([5, 2**31 + 7]), rng.choice([b"g", b"g\x00", b"h"]),
                    bytes(rng.randrange(4) for _ in range(rng.randrange(3))), b"x",
                    bytes([n % 256, n // 256])) for n in range(400)})
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))

        def index(txn: WriteTxn) -> None:
            txn.index_put_many([(tid, 1, h, pk, sk, bpk, bsk, b'{"n":%d}' % n, n + 1)
                                for n, (h, pk, sk, bpk, bsk) in enumerate(keys)])

        await write(storage, index)
        for lower, upper, forward, limit in itertools.product(
                _bounds([b"\x01", b"\x02\x00"]), [None, (b"\x03", False)], (True, False),
                [1, 7, SCAN_PAGE_ROWS]):
            for h, pk in ((5, b"g"), (2**31 + 7, b"h"), (5, b"none")):
                for start in [None, (b"\x01", b"x", b"")]:
                    rows = list(storage.query_index(tid, 1, h, pk, lower, upper, forward,
                                                    start, limit))
                    page = storage.query_index_page(tid, 1, h, pk, lower, upper, forward,
                                                    start, limit)
                    assert _listed(page) == [row[3:] for row in rows]
                    _check_unsized(storage.query_index_page(
                        tid, 1, h, pk, lower, upper, forward, start, limit, sized=False), page)
        for after, h_start, h_end, limit in itertools.product(
                [None, *keys[::61]], [0, 2**31], [None, 2**31], [1, 7, SCAN_PAGE_ROWS]):
            rows = list(storage.scan_index(tid, 1, after, h_end, h_start, limit))
            page = storage.scan_index_page(tid, 1, after, h_end, h_start, limit)
            assert _listed(page) == [row[5:] for row in rows]
            _check_unsized(storage.scan_index_page(tid, 1, after, h_end, h_start, limit,
                                                   sized=False), page)
        assert len(_listed(storage.scan_index_page(tid, 1, None, None, 0, 150 // 2))) == 75
        assert _listed(storage.scan_index_page(tid, 2, None, None, 0, 5)) == []


@in_a_loop
async def test_an_item_collection_counts_its_items_and_local_index_rows(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))

        def job(txn: WriteTxn) -> None:
            put(txn, tid, (5, b"p", b"1"), b"1234")
            put(txn, tid, (5, b"p", b"2"), b"12")
            put(txn, tid, (5, b"p\x00", b"1"), b"123456789")  # another partition
            txn.index_put(tid, 1, 5, b"p", b"z", b"p", b"1", b"{}", 10)  # local: counted
            txn.index_put(tid, 2, 5, b"p", b"z", b"q", b"1", b"{}", 100)  # global: base pk q

        await write(storage, job)
        assert storage.collection_size(tid, 5, b"p") == 16
        assert storage.collection_size(tid, 6, b"p") == 0


# --- tombstones, versions and snapshots ----------------------------------------------------

@in_a_loop
async def test_deletes_leave_versioned_tombstones_until_purged(backend: Backend,
                                                                tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        key = (3, b"k", b"")

        def job(txn: WriteTxn) -> Any:
            put(txn, tid, key, b"{}", 10, "a")
            txn.delete(tid, *key, 20, "b", 2, (10, "a"))
            after_delete = txn.versions(tid, *key), txn.prev_of(tid, *key)
            put(txn, tid, key, b"[]", 30, "a", (20, "b"))
            after_put = txn.versions(tid, *key), txn.prev_of(tid, *key)
            txn.delete_absent(tid, 3, b"gone", b"", 15, "c")
            return after_delete, after_put, txn.tombstone_version(tid, 3, b"gone", b"")

        after_delete, after_put, absent = await write(storage, job)
        assert after_delete == ((None, (20, "b", (10, "a"))), (10, "a"))
        assert after_put == (((b"[]", 2, 30, "a", (20, "b")), (20, "b", (10, "a"))), (20, "b"))
        assert absent == (15, "c")
        # each row with its prev and causal state (b"": the row form)
        assert storage.snapshot_rows(tid, None, 10, tombstones=False) == [
            (3, b"k", b"", 30, "a", b"[]", (20, "b"), b"")]
        assert storage.snapshot_rows(tid, None, 10, tombstones=True) == [
            (3, b"gone", b"", 15, "c", None, None, b""),
            (3, b"k", b"", 20, "b", None, (10, "a"), b"")]
        assert storage.snapshot_rows(tid, (3, b"gone", b""), 10, tombstones=True) == [
            (3, b"k", b"", 20, "b", None, (10, "a"), b"")]
        assert storage.snapshot_rows(tid, None, 1, tombstones=True) == [
            (3, b"gone", b"", 15, "c", None, None, b"")]
        await write(storage, lambda txn: txn.put(tid, 3, b"s", b"", b"{}", 2, 40, "a", None,
                                                 None, b'{"c":{"a":40}}'))
        assert storage.snapshot_rows(tid, (3, b"k", b""), 10, tombstones=False) == [
            (3, b"s", b"", 40, "a", b"{}", None, b'{"c":{"a":40}}')]
        assert await write(storage, lambda txn: txn.purge_tombstones(18, 10)) == 1
        assert await write(storage, lambda txn: txn.purge_tombstones(100, 0)) == 0
        assert [row[:3] for row in storage.snapshot_rows(tid, None, 10, True)] == [key]
        # a tombstone whose state holds more than its delete (counter floors, say) stays
        kept = (3, b"n", b"")
        await write(storage, lambda txn: txn.delete_absent(tid, *kept, 6, "c", None,
                                                            b'{"c":{"c":6}}'))
        assert await write(storage, lambda txn: txn.purge_tombstones(100, 10)) == 1
        assert [row[:3] for row in storage.snapshot_rows(tid, None, 10, True)] == [kept]


@in_a_loop
async def test_item_states_are_kept_beside_items_and_tombstones_across_a_restart(
        backend: Backend, tmp_path: Path) -> None:
    storage = backend.open(tmp_path, "a")
    async with started(storage):
        tid = await write(storage, create("t"))
        key, other, gone = (3, b"k", b""), (3, b"o", b""), (4, b"g", b"")

        def job(txn: WriteTxn) -> Any:
            seen = [txn.item_state(tid, *key)]
            txn.put(tid, *key, b"{}", 2, 10, "a", None, None, b'{"c":{"a":10}}')
            seen.append(txn.item_state(tid, *key))
            txn.delete(tid, *key, 20, "b", 2, (10, "a"), b'{"c":{"a":10,"b":20}}')
            seen.append(txn.item_state(tid, *key))
            txn.put(tid, *key, b"[]", 2, 30, "a", None, (20, "b"))  # the row form
            seen.append(txn.item_state(tid, *key))
            txn.put(tid, *other, b"{}", 2, 5, "c", None, None, b"s")
            txn.delete_absent(tid, *gone, 7, "c", None, b"t")
            return seen

        assert await write(storage, job) == [
            None, (b'{"c":{"a":10}}', (10, "a"), None),
            (b'{"c":{"a":10,"b":20}}', (20, "b"), (10, "a")),
            (b"", (30, "a"), (20, "b"))]
    async with started(backend.reopen(storage, tmp_path, "a")) as reopened:
        def read(txn: WriteTxn) -> Any:
            return [txn.item_state(tid, *k) for k in (key, other, gone)]

        assert await write(reopened, read) == [
            (b"", (30, "a"), (20, "b")), (b"s", (5, "c"), None), (b"t", (7, "c"), None)]


@in_a_loop
async def test_a_table_snapshot_keeps_serving_the_state_it_was_opened_on(
        backend: Backend, tmp_path: Path) -> None:
    keys = _keys(random.Random(11), 60)
    async with started(backend.open(tmp_path, "a")) as storage:
        assert storage.snapshot_table("t") is None
        tid = await write(storage, create("t"))
        await write(storage, create("other"))

        def fill(txn: WriteTxn) -> None:
            for n, key in enumerate(keys):
                put(txn, tid, key, b'{"n": %d}' % n, hlc=100 + n, origin="a")
            txn.delete(tid, *keys[0], 300, "b", len(b'{"n": 0}'), (100, "a"))
            txn.delete_absent(tid, 9, b"gone", b"", 301, "c")
            put(txn, 2, (1, b"elsewhere", b""))
            txn.set_table_state("t", (1, "a"), (2, "a"), b"state")
            txn.log_change(400, b"change")
            txn.set_cursor("b", 7, 250)

        await write(storage, fill)
        snapshot = storage.snapshot_table("t")
        assert snapshot is not None
        stats = storage.table_stats(tid)
        live = sorted((k, b'{"n": %d}' % n, 100 + n) for n, k in enumerate(keys) if n)
        try:
            def later(txn: WriteTxn) -> None:  # after the snapshot: none of it shows
                put(txn, tid, keys[1], b"[1]", hlc=500, origin="a")
                txn.delete(tid, *keys[2], 501, "a", len(b'{"n": 2}'))
                put(txn, tid, (0, b"new", b""), b"[2]", hlc=502, origin="a")
                txn.update_table("t", b"changed")
                txn.set_table_state("t", (1, "a"), (3, "a"), b"later")
                txn.log_change(600, b"later")

            await write(storage, later)
            assert storage.get_item(tid, *keys[1]) == (b"[1]", 3)  # the storage moved on
            assert (snapshot.tid, snapshot.definition) == (tid, b'{"name": "t"}')
            assert snapshot.state == (1, "a", 2, "a", b"state")
            assert snapshot.cursors == {"a": (1, 400), "b": (7, 250)}
            assert (snapshot.item_count, snapshot.size_bytes) == stats
            # paged from another thread, in key order, strictly after each page's last key
            rows: list[Any] = []
            after = None
            for _page in range(len(keys)):
                page = await asyncio.to_thread(snapshot.rows, after, 7, False)
                if not page:
                    break
                rows += page
                after = page[-1][:3]
            assert [(row[:3], row[5], row[3]) for row in rows] == live
            assert {row[4] for row in rows} == {"a"}
            dead = snapshot.rows(None, 10, True)
            assert sorted(dead) == sorted([(*keys[0], 300, "b", None),
                                           (9, b"gone", b"", 301, "c", None)])
            assert snapshot.rows(dead[0][:3], 10, True) == dead[1:]
        finally:
            snapshot.close()
        snapshot.close()  # idempotent
        with pytest.raises(ValueError):
            snapshot.rows(None, 1, False)
        fresh = storage.snapshot_table("t")
        assert fresh is not None and fresh.definition == b"changed"
        assert (0, b"new", b"", 502, "a", b"[2]") in fresh.rows(None, 100, False)
        fresh.close()


@in_a_loop
async def test_kept_tables_keep_their_records_past_the_purge(backend: Backend,
                                                             tmp_path: Path) -> None:
    markers = (b'"w":"t"', b'"t":"t"')
    bodies = [b'{"w":"t","n":1}', b'{"w":"u","n":2}', b'{"t":"t","k":"update"}',
              b'{"w":"u"},{"w":"t"}', b'{"w":"tt"}', b'{"w":"t","n":6}', b'{"w":"u","n":7}']
    storage = backend.open(tmp_path, "a")
    async with started(storage):
        def log(txn: WriteTxn) -> None:
            for n, body in enumerate(bodies):
                txn.log_change(100 + n, body)
            txn.append_remote_changes([("b", 1, 50, b'{"w":"t","from":"b"}'),
                                       ("b", 2, 51, b'{"w":"u","from":"b"}')])
            txn.set_cursor("b", 2, 51)

        await write(storage, log)
        await write(storage, lambda txn: txn.keep_changes("t", (b"placeholder",)))
        await write(storage, lambda txn: txn.keep_changes("t", markers))  # replaces
        before = storage.snapshot_changes()
        assert await write(storage, lambda txn: txn.purge_changelog("a", 5, 100)) == 5
        assert await write(storage, lambda txn: txn.purge_changelog("b", 9, 100)) == 1
        try:  # opened before the purge: still the whole changelog
            assert [seq for seq, _h, _b in before.changes("a", 0, 100)] == list(range(1, 8))
            assert before.kept("t", "a", 0, 100) == []
        finally:
            before.close()
        snapshot = storage.snapshot_changes()
        await write(storage, lambda txn: txn.purge_changelog("a", 6, 100))  # not seen below
        try:
            assert snapshot.kept_tables == {"t": markers}
            assert snapshot.cursors == {"a": (7, 106), "b": (2, 51)}
            # the records naming t (once or with another table) moved to t's kept log
            assert await asyncio.to_thread(snapshot.kept, "t", "a", 0, 100) == [
                (1, 100, bodies[0]), (3, 102, bodies[2]), (4, 103, bodies[3])]
            assert snapshot.kept("t", "a", 1, 1) == [(3, 102, bodies[2])]
            assert snapshot.kept("t", "b", 0, 100) == [(1, 50, b'{"w":"t","from":"b"}')]
            assert snapshot.kept("u", "a", 0, 100) == []
            assert [seq for seq, _h, _b in snapshot.changes("a", 0, 100)] == [6, 7]
            assert snapshot.changes("b", 0, 100) == [(2, 51, b'{"w":"u","from":"b"}')]
        finally:
            snapshot.close()
        snapshot.close()
        with pytest.raises(ValueError):
            snapshot.changes("a", 0, 1)
        assert [seq for seq, _h, _b in storage.changes_since("a", 0, 100)] == [7]
        assert await write(storage, lambda txn: txn.purge_kept_changes("t", "a", 3, 100)) == 2
    reopened = backend.reopen(storage, tmp_path, "a")  # kept logs outlive a restart
    async with started(reopened):
        after = reopened.snapshot_changes()
        try:
            assert [seq for seq, _h, _b in after.kept("t", "a", 0, 100)] == [4, 6]
        finally:
            after.close()
        await write(reopened, lambda txn: txn.release_changes("t"))
        await write(reopened, lambda txn: txn.log_change(200, b'{"w":"t","n":8}'))
        await write(reopened, lambda txn: txn.purge_changelog("a", 8, 100))
        released = reopened.snapshot_changes()
        try:
            assert released.kept_tables == {} and released.kept("t", "a", 0, 100) == []
        finally:
            released.close()


@in_a_loop
async def test_a_transaction_reads_its_own_writes(backend: Backend, tmp_path: Path) -> None:
    keys = _keys(random.Random(5), 40)
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))

        def job(txn: WriteTxn) -> list[Any]:
            puts(tid, keys)(txn)
            chunks = [txn.scan_chunk(tid, None, 15)]
            while len(chunks[-1]) == 15:
                chunks.append(txn.scan_chunk(tid, chunks[-1][-1][:3], 15))
            return [row[:3] for chunk in chunks for row in chunk]

        assert await write(storage, job) == keys


# --- the changelog, cursors and conflicts --------------------------------------------------

@in_a_loop
async def test_the_changelog_keeps_each_origins_records_in_sequence(backend: Backend,
                                                                    tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        def local(txn: WriteTxn) -> list[int]:
            return [txn.log_change(hlc, b"local %d" % hlc) for hlc in (100, 300, 200)]

        assert await write(storage, local) == [1, 2, 3]
        assert storage.last_local_hlc() == 300
        assert storage.cursor_vector() == {"a": (3, 200)}

        def remote(txn: WriteTxn) -> None:
            txn.append_remote_changes([("b", seq, seq * 10, b"b%d" % seq) for seq in (1, 2, 4)])
            txn.append_remote_changes([("b", 3, 30, b"b3"), ("b", 2, 99, b"duplicate")])
            txn.set_cursor("b", 4, 40)

        await write(storage, remote)
        assert storage.changes_since("b", 1, 2) == [(2, 20, b"b2"), (3, 30, b"b3")]
        assert storage.changes_since("b", 4, 10) == [] and storage.changes_since("z", 0, 9) == []
        assert storage.cursors() == {"a": 3, "b": 4}
        assert await write(storage, lambda txn: (txn.cursor("b"), txn.cursor("z"))) == (4, 0)
        # the record logged first under (origin, seq) is the one kept and read back
        assert await write(storage, lambda txn: [
            txn.logged_frame("b", 2), txn.logged_frame("a", 1), txn.logged_frame("b", 9),
            txn.logged_frame("z", 1)]) == [b"b2", b"local 100", None, None]
        assert storage.log_start() == {"a": 0, "b": 0}
        assert await write(storage, lambda txn: txn.purge_changelog("b", 10, 2)) == 2
        assert storage.log_start() == {"a": 0, "b": 2}
        # never an origin's latest record
        assert await write(storage, lambda txn: txn.purge_changelog("b", 10, 10)) == 1
        assert await write(storage, lambda txn: txn.purge_changelog("a", 10, 10)) == 2
        assert storage.log_start() == {"a": 2, "b": 3}
        assert storage.changes_since("a", 0, 10) == [(3, 200, b"local 200")]


@in_a_loop
async def test_local_sequences_continue_after_a_restart_and_an_adopted_cursor(
        backend: Backend, tmp_path: Path) -> None:
    storage = backend.open(tmp_path, "a")
    async with started(storage):
        await write(storage, lambda txn: [txn.log_change(n, b"") for n in (1, 2, 3)])
        await write(storage, lambda txn: txn.purge_changelog("a", 3, 10))
    storage = backend.reopen(storage, tmp_path, "a")
    async with started(storage):
        assert await write(storage, lambda txn: txn.log_change(4, b"")) == 4

        def adopt(txn: WriteTxn) -> int:  # as after a snapshot: continue after the cursor
            txn.set_cursor("a", 10, 50)
            txn.next_seq = 11
            return txn.log_change(51, b"")

        assert await write(storage, adopt) == 11
        assert storage.cursor_vector()["a"] == (11, 51)
    storage = backend.reopen(storage, tmp_path, "a")
    async with started(storage):
        assert await write(storage, lambda txn: txn.log_change(52, b"")) == 12


@in_a_loop
async def test_conflicts_are_numbered_in_the_order_recorded(backend: Backend,
                                                            tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        await write(storage, lambda txn: [txn.record_conflict(ms, "t", b"r%d" % ms)
                                          for ms in (30, 10, 20)])
        assert storage.conflicts() == [(1, 30, "t", b"r30"), (2, 10, "t", b"r10"),
                                       (3, 20, "t", b"r20")]
        assert storage.conflicts(after_id=1, limit=1) == [(2, 10, "t", b"r10")]
        assert storage.conflicts(after_id=3) == []


@in_a_loop
async def test_tokens_are_kept_until_purged_by_age(backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        await write(storage, lambda txn: [txn.token_put(f"t{ms}", b"h%d" % ms, ms)
                                          for ms in (10, 20, 30)])
        await write(storage, lambda txn: txn.token_put("t30", b"again", 31))
        assert await write(storage, lambda txn: txn.token_get("t30")) == (b"again", 31)
        assert await write(storage, lambda txn: txn.tokens_purge(25, 1)) == 1
        assert await write(storage, lambda txn: txn.tokens_purge(25, 10)) == 1
        assert await write(storage, lambda txn: [txn.token_get(f"t{ms}") for ms in (10, 20, 30)]
                           ) == [None, None, (b"again", 31)]


# --- the catalog ---------------------------------------------------------------------------

@in_a_loop
async def test_tables_take_the_next_tid_and_dropping_one_removes_its_rows(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "a")) as storage:
        assert [await write(storage, create(name)) for name in ("b", "a")] == [1, 2]
        await write(storage, lambda txn: txn.drop_table("a", 2))
        assert await write(storage, create("c")) == 2  # one more than the highest live tid
        await write(storage, lambda txn: txn.update_table("b", b"new"))
        assert storage.load_tables() == [("b", 1, b"new"), ("c", 2, b'{"name": "c"}')]

        def fill(txn: WriteTxn) -> Any:
            put(txn, 1, (1, b"k", b""))
            txn.delete_absent(1, 1, b"d", b"", 5, "a")
            txn.index_put(1, 1, 2, b"g", b"", b"k", b"", b"{}", 2)
            txn.set_table_state("b", (1, "a"), (2, "a"), b"state")
            return txn.table_row("b"), txn.table_state_row("b")

        assert await write(storage, fill) == ((1, b"new"), (1, "a", 2, "a", b"state"))
        await write(storage, lambda txn: txn.drop_table("b", 1))
        assert list(storage.scan_items(1, None, None)) == []
        assert storage.snapshot_rows(1, None, 10, tombstones=True) == []
        assert list(storage.scan_index(1, 1, None, None)) == [] and storage.table_stats(1) == (0, 0)
        assert await write(storage, lambda txn: txn.table_row("b")) is None
        # the table name's replicated state outlives the table
        assert storage.table_state_row("b") == (1, "a", 2, "a", b"state")
        assert storage.load_table_states() == [("b", 1, "a", 2, "a", b"state")]
