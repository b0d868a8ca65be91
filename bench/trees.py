"""What keeping the hash trees costs the write path: PutItem with trees and without.

    .venv/bin/python -m bench.trees [--seconds 5] [--rounds 3] [--connections 32]
                                    [--in-memory]

Starts two `atoll serve` processes from the same build, durable SQLite in temporary
directories (as deployed): `trees` keeps the per-table hash trees verify compares
(DESIGN.md decision 7: every write updates its key's bucket in its own transaction),
`no-trees` is started with `--no-trees` and keeps none. Each gets table `bench` with
5,000 preloaded items. wrk then loads one server at a time, alternating which goes
first in each round so drift on a shared machine hits both alike, with two scripts:
bench/lua/put.lua (fresh keys: the tree gains a leaf) and bench/lua/put_over.lua
(PutItem over the preloaded keys: the tree's leaf is replaced, the old row read).

Printed per round: ops/s, p99 and the server's CPU microseconds per PutItem (from
/proc; on a shared machine wall-clock rates follow the neighbours' load, CPU per
operation much less). Then the medians and the ratios trees / no-trees for throughput
and CPU per PutItem. Target (issue 27): throughput within 15% of the build without
trees, a ratio of at least 0.85. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from bench.gsi_put import _free_port
from bench.serve import cpu_s, serve
from bench.workloads import Client, item
from bench.wrk import run_wrk

TARGET_RATIO = 0.85
PRELOAD_KEYS = 5_000
BATCH = 25
WRITERS = 4
START_TIMEOUT_S = 30.0
REPO = Path(__file__).resolve().parent.parent
BUILDS = ("trees", "no-trees")
SCRIPTS = (("put.lua", "PutItem, fresh keys"),
           ("put_over.lua", "PutItem over existing items"))


def start(data_dir: str, port: int, trees: bool, in_memory: bool) -> subprocess.Popen[bytes]:
    return serve(port, ["--data-dir", data_dir, *([] if trees else ["--no-trees"]),
                        *(["--in-memory"] if in_memory else [])], str(REPO), START_TIMEOUT_S)


def prepare(client: Client) -> None:
    """Table `bench` (pk S, sk S) with PRELOAD_KEYS items item-%06d / "0"."""
    client.call("CreateTable", {
        "TableName": "bench", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "S"}]})
    keys = [f"item-{n:06d}" for n in range(PRELOAD_KEYS)]

    def write(batch: list[str]) -> None:
        pending = [{"PutRequest": {"Item": item(k, "0", n)}} for n, k in enumerate(batch)]
        for _ in range(20):
            out = client.call("BatchWriteItem", {"RequestItems": {"bench": pending}})
            pending = out.get("UnprocessedItems", {}).get("bench", [])
            if not pending:
                return
        raise RuntimeError("BatchWriteItem left items unprocessed")

    with ThreadPoolExecutor(WRITERS) as pool:
        for _ in pool.map(write, [keys[i:i + BATCH] for i in range(0, len(keys), BATCH)]):
            pass


def rounds(servers: dict[str, tuple[str, int]], args: argparse.Namespace) -> bool:
    """Every script, `args.rounds` alternating rounds; prints lines and ratios."""
    passed = True
    for script, title in SCRIPTS:
        print(f"{title}: {args.connections} connections, {args.seconds} s x {args.rounds} "
              "rounds", flush=True)
        rates: dict[str, list[float]] = {b: [] for b in BUILDS}
        cpu_us: dict[str, list[float]] = {b: [] for b in BUILDS}
        for round_no in range(1, args.rounds + 1):
            for build in BUILDS if round_no % 2 else BUILDS[::-1]:
                url, pid = servers[build]
                before = cpu_s(pid)
                result = run_wrk(url, script, duration_s=args.seconds,
                                 connections=args.connections, threads=2,
                                 env={"BENCH_TABLE": "bench", "BENCH_KEYS": str(PRELOAD_KEYS),
                                      "BENCH_RUN": f"{script}{build}{round_no}"})
                per_op = (cpu_s(pid) - before) * 1e6 / max(result.ok, 1)
                rates[build].append(result.ok_per_s)
                cpu_us[build].append(per_op)
                print(f"  round {round_no}  {build:8s} {result.ok_per_s:8.0f} ops/s   p99 "
                      f"{result.latency_p99_ms:6.2f} ms   server CPU {per_op:5.0f} us/op   "
                      f"errors {result.errors}", flush=True)
        with_trees, without = (statistics.median(rates[b]) for b in BUILDS)
        cpu_with, cpu_without = (statistics.median(cpu_us[b]) for b in BUILDS)
        ratio = with_trees / without if without else 0.0
        verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
        passed = passed and verdict == "PASS"
        print(f"  median: trees {with_trees:.0f} ops/s ({cpu_with:.0f} us CPU/op), no trees "
              f"{without:.0f} ops/s ({cpu_without:.0f} us CPU/op)")
        print(f"  throughput trees / no trees: {ratio:.2f} (target >= {TARGET_RATIO:.2f}): "
              f"{verdict};  CPU per PutItem trees / no trees: "
              f"{cpu_with / cpu_without if cpu_without else 0.0:.2f}", flush=True)
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--in-memory", action="store_true", help="no fsync (tmpfs)")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        servers: dict[str, tuple[str, int]] = {}
        for build in BUILDS:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(
                prefix=f"atoll-trees-bench-{build}-"))
            port = _free_port()
            proc = start(data_dir, port, build == "trees", args.in_memory)
            stack.callback(proc.wait, 30)
            stack.callback(proc.terminate)
            url = f"http://127.0.0.1:{port}"
            prepare(Client(url))
            servers[build] = (url, proc.pid)
        print(f"atoll, {'in memory' if args.in_memory else 'durable SQLite'}: "
              f"{len(SCRIPTS)} scripts, builds {' and '.join(BUILDS)}", flush=True)
        passed = rounds(servers, args)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
