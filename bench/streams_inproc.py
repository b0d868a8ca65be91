"""What a stream adds to a PutItem's CPU time, in process (no HTTP, no other process).

    .venv/bin/python -m bench.streams_inproc [--seconds 1.5] [--rounds 10] [--batch 32]
                                             [--views NEW_AND_OLD_IMAGES,KEYS_ONLY]

One durable SqliteStorage (WAL, fsync, in a temporary directory) under the engine and
the API's dispatcher, as a node runs them, with the cyclic garbage collector tuned as a
node tunes it once it is up (everything alive frozen, young collections after 20,000
allocations): left at Python's defaults, its collections charge a streamed PutItem
~1.4 us more than a node pays (perf, batches of 12; +0.1 us tuned). Tables with the same key schema: `plain` (no
stream) and one per view type asked for, each preloaded with 5,000 items. Each round
sends batches of --batch concurrent PutItems (one group commit each) to every table in
turn, the order reversed every other round, until --seconds have passed, and charges
each batch's process CPU time (every thread: the writer's COMMIT and checkpoints
included) to its table. Fresh keys (INSERT records) first, then the preloaded keys
(MODIFY records: NEW_AND_OLD_IMAGES stores both images).

Prints per table the median CPU per PutItem over the rounds and, for the streamed
tables, the median of the per-round differences to `plain` (what a record costs). The
batches of all tables alternate within each round, so a busy machine slows them alike:
the difference moves much less with the load than wall-clock throughput or the live
bench's ratios. A record costs more per PutItem in smaller group commits (its table's
last page and their parent are written once a commit): `bench.streams` prints the
writes per commit of a live server (10-14 with 32 connections), and --batch 12 measures
that regime.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from atoll.api.dispatch import Api
from atoll.engine import Engine
from atoll.storage import SqliteStorage
from bench.workloads import item

PRELOAD_KEYS = 5_000
BATCH = 25  # BatchWriteItem's limit, for the preload


async def _call(api: Api, op: str, request: dict[str, Any]) -> None:
    status, body = await api.handle(f"DynamoDB_20120810.{op}", orjson.dumps(request))
    if status != 200:
        raise RuntimeError(f"{op}: {body[:300]!r}")


async def _create(api: Api, name: str, view_type: str | None) -> None:
    request: dict[str, Any] = {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "S"}]}
    if view_type is not None:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view_type}
    await _call(api, "CreateTable", request)
    for first in range(0, PRELOAD_KEYS, BATCH):
        await _call(api, "BatchWriteItem", {"RequestItems": {name: [
            {"PutRequest": {"Item": item(f"item-{n:06d}", "0", n)}}
            for n in range(first, first + BATCH)]}})


async def _rounds(api: Api, tables: list[str], modify: bool,
                  args: argparse.Namespace) -> dict[str, list[float]]:
    """CPU us per PutItem, per table and round."""
    rng = random.Random(7)
    fresh = iter(range(10**9))
    per_round: dict[str, list[float]] = {table: [] for table in tables}
    for round_no in range(args.rounds):
        cpu_s = dict.fromkeys(tables, 0.0)
        puts = dict.fromkeys(tables, 0)
        deadline = time.perf_counter() + args.seconds
        while time.perf_counter() < deadline:
            for table in tables if round_no % 2 == 0 else tables[::-1]:
                keys = [f"item-{rng.randrange(PRELOAD_KEYS):06d}" if modify
                        else f"fresh-{next(fresh)}" for _ in range(args.batch)]
                bodies = [orjson.dumps({"TableName": table, "Item": item(
                    key, "0", rng.randrange(10**6))}) for key in keys]
                started_s = time.process_time()
                answers = await asyncio.gather(*(
                    api.handle("DynamoDB_20120810.PutItem", body) for body in bodies))
                cpu_s[table] += time.process_time() - started_s
                puts[table] += len(bodies)
                if any(status != 200 for status, _ in answers):
                    raise RuntimeError(f"PutItem failed: {answers[0][1][:300]!r}")
        for table in tables:
            per_round[table].append(cpu_s[table] * 1e6 / max(puts[table], 1))
    return per_round


def _report(title: str, per_round: dict[str, list[float]]) -> None:
    plain = per_round["plain"]
    print(f"{title}: plain {statistics.median(plain):.1f} CPU us/put")
    for table, cpus in per_round.items():
        if table == "plain":
            continue
        added = statistics.median(s - p for s, p in zip(cpus, plain, strict=True))
        print(f"  {table:20s} {statistics.median(cpus):6.1f} CPU us/put; the record adds "
              f"{added:+.1f} us (median of the rounds' differences; x"
              f"{1 + added / statistics.median(plain):.3f})", flush=True)


async def run(args: argparse.Namespace) -> None:
    views = [view for view in args.views.split(",") if view]
    tables = ["plain", *views]
    with tempfile.TemporaryDirectory(prefix="atoll-streams-inproc-") as data_dir:
        storage = SqliteStorage(str(Path(data_dir) / "bench.db"), durable=True)
        storage.start(asyncio.get_running_loop())
        try:
            api = Api(Engine(storage))
            for table in tables:
                await _create(api, table, None if table == "plain" else table)
            gc.collect()
            gc.freeze()
            gc.set_threshold(20_000, 50, 100)  # as atoll.node.node does once it is up
            print(f"in process, durable SQLite, batches of {args.batch}, {args.rounds} "
                  f"rounds of {args.seconds} s", flush=True)
            _report("PutItem, fresh keys (INSERT)", await _rounds(api, tables, False, args))
            _report("PutItem over existing items (MODIFY)",
                    await _rounds(api, tables, True, args))
        finally:
            storage.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--views", default="NEW_AND_OLD_IMAGES")
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
