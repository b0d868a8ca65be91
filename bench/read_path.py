"""python -m bench.read_path: the read path's cost per request, in process, beside the floor.

No HTTP and no load generator: Atoll's `Api.answer` (what the HTTP server calls) on an SqliteStorage (not durable,
so no fsync) and the floor's statements (bench/floor_server.py's FloorStore) on their
own SQLite files, the same preload as the bench (5,000 items and a 1,000-item query
partition, all of them also in a GSI on (t, n)), then each read operation's requests in
turn for `--seconds`, alternating Atoll and the floor for `--rounds` rounds. Prints the
median µs of CPU time per request of each (the process's CPU time, so that waiting for
a core on a shared machine does not count) and Atoll ÷ floor in requests per CPU second. With `--profile
OP` it runs only Atoll on that operation under cProfile and prints the top functions by
own time instead (what the performance log records before and after a change). With
`--only OP` it runs only Atoll on that operation for `--seconds`, for a profiler outside
the process: `perf record --call-graph dwarf -- python -m bench.read_path --only Query
--seconds 20` sees the compiled build's C frames, which cProfile cannot.

What it cannot show: the HTTP server, the parser and the socket writes (the same code
for both in the bench), and the second core wrk takes. The wrk bench (`python -m bench
--only atoll,floor-sqlite`) is the figure that counts; this says where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from atoll.api.dispatch import Api
from atoll.engine import Engine
from atoll.storage import SqliteStorage
from bench.floor_server import FloorStore
from bench.workloads import BATCH_SIZE, KEYS, QUERY_ITEMS, TABLE, item

OPS = ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "QueryGSI")
# What the floor runs for each: the same statements (a GSI query and a TransactGetItems
# are a range read and key lookups to it).
FLOOR_OPS = {"QueryGSI": "Query", "TransactGetItems": "BatchGetItem"}
REQUESTS_PER_BODY_SET = 256
TRANSACT_KEYS = 10


def _key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"item-{i % KEYS:06d}"}, "sk": {"S": "0"}}


def bodies(op: str, rng: random.Random) -> list[dict[str, Any]]:
    """Requests like the bench's Lua scripts send (GetItem, Query, Scan, BatchGetItem),
    plus TransactGetItems of 10 keys and a Query of Limit 10 on the GSI."""
    out = []
    for _ in range(REQUESTS_PER_BODY_SET):
        i = rng.randrange(KEYS)
        if op == "GetItem":
            out.append({"TableName": TABLE, "Key": _key(i), "ConsistentRead": True})
        elif op == "Query":
            start = rng.randrange(QUERY_ITEMS - 10)
            out.append({"TableName": TABLE, "Limit": 10,
                        "KeyConditionExpression": "pk = :pk AND sk >= :from",
                        "ExpressionAttributeValues": {":pk": {"S": "query"},
                                                      ":from": {"S": f"s-{start:06d}"}}})
        elif op == "QueryGSI":
            out.append({"TableName": TABLE, "IndexName": "by_n", "Limit": 10,
                        "KeyConditionExpression": "t = :t AND n >= :from",
                        "ExpressionAttributeValues": {":t": {"S": "bench"},
                                                      ":from": {"N": str(i)}}})
        elif op == "Scan":
            out.append({"TableName": TABLE, "Limit": 100, "ExclusiveStartKey": _key(i)})
        elif op == "BatchGetItem":
            out.append({"RequestItems": {TABLE: {"Keys": [_key(i + 37 * j) for j in range(100)]}}})
        elif op == "TransactGetItems":
            out.append({"TransactItems": [{"Get": {"TableName": TABLE, "Key": _key(i + 37 * j)}}
                                          for j in range(TRANSACT_KEYS)]})
    return out


def floor_body(op: str, body: dict[str, Any]) -> dict[str, Any]:
    """The floor's request for the same reads (it knows no index and no transaction)."""
    if op == "QueryGSI":
        start = int(body["ExpressionAttributeValues"][":from"]["N"]) % (QUERY_ITEMS - 10)
        return {"Limit": 10, "ExpressionAttributeValues": {":pk": {"S": "query"},
                                                            ":from": {"S": f"s-{start:06d}"}}}
    if op == "TransactGetItems":
        return {"RequestItems": {TABLE: {"Keys": [g["Get"]["Key"] for g in body["TransactItems"]]}}}
    return body


async def atoll_api(path: str) -> tuple[Api, SqliteStorage]:
    storage = SqliteStorage(path, durable=False)
    engine = Engine(storage)
    storage.start(asyncio.get_running_loop())
    api = Api(engine)
    await _call(api, "CreateTable", {
        "TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t}
                                 for n, t in (("pk", "S"), ("sk", "S"), ("t", "S"), ("n", "N"))],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [{
            "IndexName": "by_n", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "t", "KeyType": "HASH"},
                          {"AttributeName": "n", "KeyType": "RANGE"}]}]})
    for batch in _preload_batches():
        await _call(api, "BatchWriteItem",
                    {"RequestItems": {TABLE: [{"PutRequest": {"Item": it}} for it in batch]}})
    return api, storage


def _preload_batches() -> list[list[dict[str, Any]]]:
    items = [item(f"item-{i:06d}", "0", i) for i in range(KEYS)]
    items += [item("query", f"s-{i:06d}", i) for i in range(QUERY_ITEMS)]
    return [items[i:i + BATCH_SIZE] for i in range(0, len(items), BATCH_SIZE)]


async def _call(api: Api, op: str, request: dict[str, Any]) -> bytes:
    status, body = await api.handle(f"DynamoDB_20120810.{op}", orjson.dumps(request))
    if status != 200:
        raise RuntimeError(f"{op}: {status} {body[:300]!r}")
    return body


def floor_store(path: str) -> FloorStore:
    store = FloorStore(path)
    for batch in _preload_batches():
        store.batch_write_item({"RequestItems": {TABLE: [{"PutRequest": {"Item": it}}
                                                         for it in batch]}})
    return store


def _run_for(seconds: float, step: Callable[[int], None]) -> float:
    """Call step(n) for n = 0, 1, ... for about `seconds` of wall-clock time; µs of this
    process's CPU time per call (on a shared machine, time spent waiting for a core is
    not the code's: CPU time is the steadier figure)."""
    n = 0
    deadline = time.perf_counter() + seconds
    t0 = time.process_time()
    while True:
        for _ in range(64):
            step(n)
            n += 1
        if time.perf_counter() >= deadline:
            break
    return (time.process_time() - t0) * 1e6 / n


def atoll_step(api: Api, op: str, encoded: list[bytes]) -> Callable[[int], None]:
    target = f"DynamoDB_20120810.{'Query' if op == 'QueryGSI' else op}"

    def step(n: int) -> None:
        # As the server calls it: a read that needs no wait is answered at once; anything
        # else would be a coroutine, stepped by hand as the server does.
        answer = api.answer(target, encoded[n % len(encoded)])
        if isinstance(answer, tuple):
            if answer[0] != 200:
                raise RuntimeError(f"{op}: {answer!r}")
            return
        try:
            answer.send(None)
        except StopIteration as done:
            if done.value[0] != 200:
                raise RuntimeError(f"{op}: {done.value!r}") from None
        else:
            answer.close()
            raise RuntimeError(f"{op} suspended")
    return step


def floor_step(store: FloorStore, op: str, encoded: list[bytes]) -> Callable[[int], None]:
    handler = store.handlers[FLOOR_OPS.get(op, op)]

    def step(n: int) -> None:
        handler(orjson.loads(encoded[n % len(encoded)]))
    return step


async def main_async(args: argparse.Namespace) -> int:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="atoll-read-path-") as tmp:
        api, storage = await atoll_api(str(Path(tmp) / "atoll.db"))
        store = floor_store(str(Path(tmp) / "floor.sqlite"))
        try:
            ops = args.ops.split(",")
            requests = {op: bodies(op, rng) for op in ops}
            mine = {op: [orjson.dumps(b) for b in requests[op]] for op in ops}
            theirs = {op: [orjson.dumps(floor_body(op, b)) for b in requests[op]] for op in ops}
            if args.only:
                us = _run_for(args.seconds, atoll_step(api, args.only, mine[args.only]))
                print(f"{args.only}: {us:.1f} µs per request")
                return 0
            if args.profile:
                op = args.profile
                step = atoll_step(api, op, mine[op])
                profiler = cProfile.Profile(time.process_time)  # CPU time: see _run_for
                profiler.enable()
                us = _run_for(args.seconds, step)
                profiler.disable()
                print(f"{op}: {us:.1f} µs per request under cProfile")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
                return 0
            atoll_us: dict[str, list[float]] = {op: [] for op in ops}
            floor_us: dict[str, list[float]] = {op: [] for op in ops}
            for _ in range(args.rounds):
                for op in ops:
                    atoll_us[op].append(_run_for(args.seconds, atoll_step(api, op, mine[op])))
                    floor_us[op].append(_run_for(args.seconds, floor_step(store, op, theirs[op])))
            print(f"{'operation':18} {'atoll µs':>9} {'floor µs':>9} {'atoll ÷ floor':>14}")
            for op in ops:
                a, f = statistics.median(atoll_us[op]), statistics.median(floor_us[op])
                print(f"{op:18} {a:9.1f} {f:9.1f} {f / a:13.0%}")
        finally:
            storage.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.read_path", description=__doc__.split("\n")[0])
    p.add_argument("--ops", default=",".join(OPS), help=f"comma-separated, of {','.join(OPS)}")
    p.add_argument("--seconds", type=float, default=1.0, help="per operation and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", choices=OPS, default=None, help="cProfile one operation")
    p.add_argument("--top", type=int, default=25, help="functions printed with --profile")
    p.add_argument("--only", choices=OPS, default=None,
                   help="run only Atoll's requests of one operation (for perf record)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if not 0.1 <= args.seconds <= 30 or not 1 <= args.rounds <= 20:
        p.error("--seconds must be 0.1..30 and --rounds 1..20")
    if args.only is not None:
        args.ops = args.only
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
