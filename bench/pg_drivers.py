"""python -m bench.pg_drivers: psycopg 3 against asyncpg for the PostgreSQL storage's calls.

The storage calls the driver synchronously: reads on the event-loop thread (one call,
one answer, no await possible inside the engine's synchronous read path), write batches
on a writer thread. So each driver is measured as the storage would call it:
- psycopg 3: its synchronous Connection (prepared statements after 5 uses, binary
  parameters), and its pipeline mode for the batch (statements sent without waiting for
  each answer; the job-like batch still waits for each lookup).
- asyncpg: an async-only driver. From synchronous code each call needs an event loop
  of its own, driven with run_until_complete (the writer thread would own one); its
  native figure (awaits inside one coroutine, the loop entered once) is given too, as
  the floor of what asyncpg could reach if the storage were asynchronous.
Operations, on a table shaped like `items` with 10,000 rows, over loopback TCP and the
unix socket: a key lookup; a 10-row range read; a batch of 100 upserts then COMMIT
(fsync on); a job-like batch of 100 x (lookup, upsert, changelog insert) then COMMIT.
Each figure is the median of ROUNDS rounds, in microseconds per operation (per batch).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
from tests.pg import PostgresServer

ROWS = 10_000
ROUNDS = 5
LOOKUPS = 2_000
RANGES = 1_000
BATCHES = 20
BATCH_ROWS = 100

SCHEMA = (
    "CREATE TABLE items (tid bigint, h bigint, pk bytea, sk bytea, item bytea NOT NULL,"
    " size bigint NOT NULL, hlc bigint NOT NULL, origin text NOT NULL, crc bigint NOT NULL,"
    " PRIMARY KEY (tid, h, pk, sk))",
    "CREATE TABLE changelog (origin text, origin_seq bigint, hlc bigint NOT NULL,"
    " body bytea NOT NULL, crc bigint NOT NULL, PRIMARY KEY (origin, origin_seq))",
)
LOOKUP = "SELECT item, size, crc FROM items WHERE tid=%s AND h=%s AND pk=%s AND sk=%s"
RANGE = ("SELECT sk, item, size, crc FROM items WHERE tid=%s AND h=%s AND pk=%s AND sk>=%s"
         " ORDER BY sk LIMIT 10")
UPSERT = ("INSERT INTO items (tid, h, pk, sk, item, size, hlc, origin, crc)"
          " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (tid, h, pk, sk) DO UPDATE SET"
          " item=EXCLUDED.item, size=EXCLUDED.size, hlc=EXCLUDED.hlc, origin=EXCLUDED.origin,"
          " crc=EXCLUDED.crc")
LOG = "INSERT INTO changelog (origin, origin_seq, hlc, body, crc) VALUES (%s,%s,%s,%s,%s)"
ITEM = b'{"pk":{"S":"user-00001"},"sk":{"S":"k"},"v":{"S":"' + b"x" * 100 + b'"}}'


def dollar(sql: str) -> str:
    """psycopg's %s placeholders as asyncpg's $1, $2, ..."""
    parts = sql.split("%s")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def key(i: int) -> tuple[int, int, bytes, bytes]:
    """Rows in 1,000 partitions of 10 items: (tid, h, pk, sk)."""
    part = i // 10
    return 1, zlib.crc32(b"p%d" % part), b"p%d" % part, b"s%03d" % (i % 10)


def row(i: int, hlc: int) -> tuple[Any, ...]:
    return (*key(i), ITEM, len(ITEM), hlc, "r", zlib.crc32(ITEM))


def load(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        for statement in SCHEMA:
            conn.execute(statement)
        with conn.cursor() as cur:
            cur.executemany(UPSERT, [row(i, 1) for i in range(ROWS)])
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE items")


class Seq:
    """Changelog sequences, unique across rounds and drivers."""
    next = 1

    @classmethod
    def take(cls) -> int:
        cls.next += 1
        return cls.next


# --- psycopg ---------------------------------------------------------------------------
def psycopg_ops(dsn: str) -> dict[str, Callable[[], float]]:
    conn = psycopg.connect(dsn, prepare_threshold=0)

    def lookups() -> float:
        t = time.perf_counter()
        cur = conn.cursor()
        for i in range(LOOKUPS):
            cur.execute(LOOKUP, key(i * 7 % ROWS)).fetchone()
        conn.commit()
        return (time.perf_counter() - t) / LOOKUPS

    def ranges() -> float:
        t = time.perf_counter()
        cur = conn.cursor()
        for i in range(RANGES):
            tid, h, pk, _sk = key(i * 70 % ROWS)
            assert len(cur.execute(RANGE, (tid, h, pk, b"")).fetchall()) == 10
        conn.commit()
        return (time.perf_counter() - t) / RANGES

    def batches(pipeline: bool) -> Callable[[], float]:
        def run() -> float:
            t = time.perf_counter()
            for b in range(BATCHES):
                cur = conn.cursor()
                if pipeline:
                    with conn.pipeline():
                        for i in range(BATCH_ROWS):
                            cur.execute(UPSERT, row(b * BATCH_ROWS + i, 2))
                else:
                    for i in range(BATCH_ROWS):
                        cur.execute(UPSERT, row(b * BATCH_ROWS + i, 2))
                conn.commit()
            return (time.perf_counter() - t) / BATCHES
        return run

    def jobs(pipeline: bool) -> Callable[[], float]:
        def run() -> float:
            t = time.perf_counter()
            for b in range(BATCHES):
                cur = conn.cursor()
                if pipeline:
                    with conn.pipeline():
                        for i in range(BATCH_ROWS):
                            n = b * BATCH_ROWS + i
                            cur.execute(LOOKUP, key(n)).fetchone()  # waits for this answer
                            cur.execute(UPSERT, row(n, 3))  # sent; answered with the next
                            cur.execute(LOG, ("r", Seq.take(), 3, ITEM, 0))
                else:
                    for i in range(BATCH_ROWS):
                        n = b * BATCH_ROWS + i
                        cur.execute(LOOKUP, key(n)).fetchone()
                        cur.execute(UPSERT, row(n, 3))
                        cur.execute(LOG, ("r", Seq.take(), 3, ITEM, 0))
                conn.commit()
            return (time.perf_counter() - t) / BATCHES
        return run

    return {"lookup": lookups, "range10": ranges, "batch100": batches(False),
            "batch100 pipeline": batches(True), "jobs100": jobs(False),
            "jobs100 pipeline": jobs(True)}


# --- asyncpg ---------------------------------------------------------------------------
def asyncpg_ops(dsn: str, native: bool) -> tuple[dict[str, Callable[[], float]], Any]:
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(dsn))
    lookup, rng, upsert, log = dollar(LOOKUP), dollar(RANGE), dollar(UPSERT), dollar(LOG)

    def call(make: Callable[[], Awaitable[Any]]) -> Any:
        return loop.run_until_complete(make())

    async def a_lookups() -> float:
        t = time.perf_counter()
        for i in range(LOOKUPS):
            await conn.fetchrow(lookup, *key(i * 7 % ROWS))
        return (time.perf_counter() - t) / LOOKUPS

    def s_lookups() -> float:
        t = time.perf_counter()
        for i in range(LOOKUPS):
            k = key(i * 7 % ROWS)
            call(lambda k=k: conn.fetchrow(lookup, *k))
        return (time.perf_counter() - t) / LOOKUPS

    async def a_ranges() -> float:
        t = time.perf_counter()
        for i in range(RANGES):
            tid, h, pk, _sk = key(i * 70 % ROWS)
            assert len(await conn.fetch(rng, tid, h, pk, b"")) == 10
        return (time.perf_counter() - t) / RANGES

    def s_ranges() -> float:
        t = time.perf_counter()
        for i in range(RANGES):
            tid, h, pk, _sk = key(i * 70 % ROWS)
            assert len(call(lambda a=(tid, h, pk, b""): conn.fetch(rng, *a))) == 10
        return (time.perf_counter() - t) / RANGES

    async def a_batches(many: bool) -> float:
        t = time.perf_counter()
        for b in range(BATCHES):
            async with conn.transaction():
                rows = [row(b * BATCH_ROWS + i, 2) for i in range(BATCH_ROWS)]
                if many:
                    await conn.executemany(upsert, rows)
                else:
                    for r in rows:
                        await conn.execute(upsert, *r)
        return (time.perf_counter() - t) / BATCHES

    def s_batches() -> float:
        t = time.perf_counter()
        for b in range(BATCHES):
            tx = conn.transaction()
            call(tx.start)
            for i in range(BATCH_ROWS):
                r = row(b * BATCH_ROWS + i, 2)
                call(lambda r=r: conn.execute(upsert, *r))
            call(tx.commit)
        return (time.perf_counter() - t) / BATCHES

    async def a_jobs() -> float:
        t = time.perf_counter()
        for b in range(BATCHES):
            async with conn.transaction():
                for i in range(BATCH_ROWS):
                    n = b * BATCH_ROWS + i
                    await conn.fetchrow(lookup, *key(n))
                    await conn.execute(upsert, *row(n, 3))
                    await conn.execute(log, "r", Seq.take(), 3, ITEM, 0)
        return (time.perf_counter() - t) / BATCHES

    def s_jobs() -> float:
        t = time.perf_counter()
        for b in range(BATCHES):
            tx = conn.transaction()
            call(tx.start)
            for i in range(BATCH_ROWS):
                n = b * BATCH_ROWS + i
                call(lambda n=n: conn.fetchrow(lookup, *key(n)))
                call(lambda n=n: conn.execute(upsert, *row(n, 3)))
                call(lambda: conn.execute(log, "r", Seq.take(), 3, ITEM, 0))
            call(tx.commit)
        return (time.perf_counter() - t) / BATCHES

    if native:
        ops: dict[str, Callable[[], float]] = {
            "lookup": lambda: call(a_lookups), "range10": lambda: call(a_ranges),
            "batch100": lambda: call(lambda: a_batches(False)),
            "batch100 executemany": lambda: call(lambda: a_batches(True)),
            "jobs100": lambda: call(a_jobs)}
    else:
        ops = {"lookup": s_lookups, "range10": s_ranges, "batch100": s_batches,
               "jobs100": s_jobs}
    return ops, (loop, conn)


def measure(ops: dict[str, Callable[[], float]]) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(ROUNDS):
        for name, op in ops.items():
            samples[name].append(op())
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_drivers", description=__doc__)
    parser.parse_args(argv)
    server = PostgresServer().start()
    try:
        load(server.dsn)
        results: dict[tuple[str, str], dict[str, float]] = {}
        for transport, dsn in (("tcp", server.dsn), ("unix", server.socket_dsn)):
            results[("psycopg sync", transport)] = measure(psycopg_ops(dsn))
            for native, label in ((False, "asyncpg from sync"), (True, "asyncpg native")):
                ops, (loop, conn) = asyncpg_ops(dsn, native)
                try:
                    results[(label, transport)] = measure(ops)
                finally:
                    loop.run_until_complete(conn.close())
                    loop.close()
        names = sorted({n for r in results.values() for n in r}, key=lambda n: (
            ["lookup", "range10", "batch100", "batch100 pipeline", "batch100 executemany",
             "jobs100", "jobs100 pipeline"].index(n)))
        print(f"PostgreSQL {server.bin.parent.name}, psycopg {psycopg.__version__}, "
              f"asyncpg {asyncpg.__version__}; us per op (batches: per batch), median of "
              f"{ROUNDS}; cpus={os.cpu_count()}")
        print(f"{'driver':<20} {'via':<5} " + " ".join(f"{n:>21}" for n in names))
        for (label, transport), figures in results.items():
            print(f"{label:<20} {transport:<5} " + " ".join(
                f"{figures[n]:>21.1f}" if n in figures else f"{'-':>21}" for n in names))
    finally:
        server.close()


if __name__ == "__main__":
    main()
