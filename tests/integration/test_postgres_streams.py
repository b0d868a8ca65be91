"""Stream positions on PostgreSQL when several nodes write one region (storage/postgres/
streams.py): three PostgresStorage instances over one schema, each with its own writer
thread and connection, as three Atoll nodes have.

What must hold beyond the single-node contract (tests/conformance/test_storage_streams.py):
positions follow commit order across the nodes (checked against the changelog, whose
order is commit order: loghead.py), a reader following a stream from its last position
never misses a record that commits later below it, a job rolled back on one node leaves
no record, and the head's position survives a database made before the column existed
and a head row made anew.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg

from atoll.storage import WriteTxn
from atoll.storage.postgres import PostgresStorage
from atoll.storage.postgres.schema import STATEMENTS
from tests.pg import pg_dsn, pg_server  # noqa: F401  (fixtures)
from tests.support import in_a_loop

NODES = 3
ROUNDS = 25
JOBS_PER_NODE_PER_ROUND = 6
FAILING_EVERY = 7  # every 7th job appends, then raises: its batch is replayed without it
READ_PAGE = 5
DEADLINE_S = 60.0


class Failed(Exception):
    """What the failing jobs raise."""


def job(sid: int, n: int) -> Callable[[WriteTxn], int]:
    """Log a change and append a record naming its changelog sequence; every
    FAILING_EVERY-th job raises after both."""
    def run(txn: WriteTxn) -> int:
        seq = txn.log_change(n, b"%d" % n)
        pos = txn.stream_append(sid, n, 0, "local", b'{"seq": %d, "n": %d}' % (seq, n))
        if n % FAILING_EVERY == 0:
            raise Failed()
        return pos
    return run


def seqs_of(records: list[tuple[int, int, int, str, bytes]]) -> list[int]:
    return [int(r[4].split(b",")[0].split(b":")[1]) for r in records]


@in_a_loop
async def test_positions_follow_commit_order_across_nodes_and_a_reader_misses_none(
        pg_dsn: str) -> None:  # noqa: F811
    nodes = [PostgresStorage(pg_dsn, region="local", node=f"n{i}") for i in range(NODES)]
    loop = asyncio.get_running_loop()
    for node in nodes:
        node.start(loop)
    try:
        sid = await nodes[0].write(lambda txn: txn.stream_open("t", "l", "KEYS_ONLY", b"[]", 0))
        done = asyncio.Event()
        seen: list[tuple[int, int, int, str, bytes]] = []
        polls = 0

        async def follow() -> None:
            nonlocal polls
            reader = nodes[1]  # reads see what any node committed
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                finished = done.is_set()  # before the read: then the read is final
                page = reader.stream_records(sid, seen[-1][0] + 1 if seen else 0, READ_PAGE)
                polls += 1
                seen.extend(page)
                if finished and not page:
                    return
                await asyncio.sleep(0.001 if not page else 0)

        follower = asyncio.ensure_future(follow())
        acknowledged: list[int] = []
        failed = 0
        n = 0
        for _round in range(ROUNDS):
            futures = []
            for node in nodes:
                for _ in range(JOBS_PER_NODE_PER_ROUND):
                    n += 1
                    futures.append(node.write(job(sid, n)))
            for result in await asyncio.wait_for(
                    asyncio.gather(*futures, return_exceptions=True), DEADLINE_S):
                if isinstance(result, Failed):
                    failed += 1
                else:
                    assert isinstance(result, int), result
                    acknowledged.append(result)
        done.set()
        await asyncio.wait_for(follower, DEADLINE_S)

        everything = nodes[2].stream_records(sid, 0, 10_000)
        assert seen == everything  # the follower missed nothing committed behind it
        assert polls > ROUNDS  # it followed the stream while it grew
        positions = [r[0] for r in everything]
        assert sorted(acknowledged) == positions  # each acknowledged job's record, once
        assert len(positions) == n - failed and failed == n // FAILING_EVERY
        assert seqs_of(everything) == sorted(seqs_of(everything))  # commit order
        assert all(node.batches_committed > 0 for node in nodes)
    finally:
        for node in nodes:
            node.close()


@in_a_loop
async def test_a_database_made_before_the_position_column_gets_it(
        pg_dsn: str) -> None:  # noqa: F811
    with psycopg.connect(pg_dsn) as conn:
        for statement in STATEMENTS:
            conn.execute(statement)
        conn.execute("ALTER TABLE log_heads DROP COLUMN stream_pos")
    storage = PostgresStorage(pg_dsn, region="local")
    storage.start(asyncio.get_running_loop())
    try:
        sid = await storage.write(lambda txn: txn.stream_open("t", "l", "KEYS_ONLY", b"[]", 0))
        taken = await storage.write(lambda txn: [txn.stream_append(sid, 1, 0, "local", b"{}")
                                                 for _ in range(3)])
        assert taken == [1, 2, 3]
    finally:
        storage.close()


@in_a_loop
async def test_a_head_row_made_anew_starts_above_every_recorded_position(
        pg_dsn: str) -> None:  # noqa: F811
    storage = PostgresStorage(pg_dsn, region="local")
    storage.start(asyncio.get_running_loop())
    try:
        first = await storage.write(
            lambda txn: txn.stream_open("t", "l", "KEYS_ONLY", b"[]", 0))
        taken = await storage.write(lambda txn: [txn.stream_append(first, 1, 0, "local", b"{}")
                                                 for _ in range(4)])
        assert await storage.write(lambda txn: txn.stream_trim(first, 10, 3)) == 3
    finally:
        storage.close()
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("DELETE FROM log_heads")
    again = PostgresStorage(pg_dsn, region="local")
    again.start(asyncio.get_running_loop())
    try:
        second = await again.write(
            lambda txn: txn.stream_open("u", "l", "KEYS_ONLY", b"[]", 0))
        (pos,) = await again.write(lambda txn: [txn.stream_append(second, 1, 0, "local", b"{}")])
        assert second != first and pos > taken[-1]
    finally:
        again.close()


@in_a_loop
async def test_the_head_row_keeps_the_last_position_taken(pg_dsn: str) -> None:  # noqa: F811
    storage = PostgresStorage(pg_dsn, region="local")
    storage.start(asyncio.get_running_loop())
    try:
        sid = await storage.write(lambda txn: txn.stream_open("t", "l", "KEYS_ONLY", b"[]", 0))
        taken = await storage.write(
            lambda txn: [txn.stream_append(sid, 1, 0, "local", b"{}") for _ in range(5)])
    finally:
        storage.close()
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT stream_pos FROM log_heads WHERE origin = 'local'").fetchone()
    assert row is not None and row[0] == taken[-1]
