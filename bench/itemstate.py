"""What the per-item causal state costs the write path, end to end: PutItem, UpdateItem and
UpdateItem ADD throughput, and the bytes it adds to an item, against the build without it.

    .venv/bin/python -m bench.itemstate [--seconds 4] [--rounds 3] [--connections 16]
                                        [--without REF] [--in-memory] [--only add,update]

Two `atoll serve` processes, one at a time under load, each on durable SQLite in its own
temporary directory: `causal` runs this checkout; `whole-item` runs the same Python on
the sources of git ref REF (default `main`: the build whose rows keep no state), exported
with `git archive` into a temporary directory and put first on PYTHONPATH (or --without-src DIR). The export is
interpreted; to compare compiled builds, build both with mypyc in place and pass
--without-src and --with-src (this script compiles nothing).

wrk drives each workload against each server in alternating order, round by round, so
drift on a shared machine hits both alike: bench/lua/put.lua (PutItem, fresh keys),
put_over.lua (PutItem over 5,000 preloaded items), update.lua (SET two attributes, ADD a
counter, REMOVE one, under a condition), add.lua (ADD 1 to a counter). Prints ops/s and
p99 and the server's CPU time per operation (from /proc: on a shared machine wall-clock
rates follow the other load, CPU per operation much less) per round, the medians, the
throughput ratio causal / whole-item and the ratio of operations per server CPU second,
which the verdict uses (issue 26's target for PutItem and UpdateItem: within 10%, a
ratio of at least 0.90; issue 28's for ADD: within 15%, at least 0.85). Then the item size: the mean stored item bytes and the mean state
bytes beside them (NULL, the row form, counts 0) per table, read from the causal
server's SQLite file.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.gsi_put import _free_port
from bench.serve import cpu_s, serve
from bench.streams import _create, _load
from bench.workloads import Client
from bench.wrk import WrkResult, run_wrk

REPO = Path(__file__).resolve().parent.parent
PRELOAD_KEYS = 5_000
START_TIMEOUT_S = 30.0
BUILDS = ("whole-item", "causal")
WORKLOADS = (("put.lua", "PutItem, fresh keys", 0.90),
             ("put_over.lua", "PutItem over existing items", 0.90),
             ("update.lua", "UpdateItem SET/ADD/REMOVE under a condition", 0.90),
             ("add.lua", "UpdateItem ADD 1 to a counter", 0.85))


def _export(ref: str, into: Path) -> Path:
    """The sources of `ref` in `into` (git archive: the repository is not touched)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def _start(data_dir: str, port: int, in_memory: bool, src: Path | None
           ) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    return serve(port, ["--data-dir", data_dir, *(["--in-memory"] if in_memory else [])],
                 data_dir, START_TIMEOUT_S, env)


def _line(label: str, round_no: int, result: WrkResult, cpu_us: float) -> str:
    return (f"  round {round_no}  {label:10s} {result.ok_per_s:9.0f} ops/s   "
            f"p99 {result.latency_p99_ms:6.2f} ms   {cpu_us:6.0f} us server CPU/op   "
            f"errors {result.errors}")


def rounds(urls: dict[str, str], pids: dict[str, int], args: argparse.Namespace) -> bool:
    passed = True
    for script, title, target in WORKLOADS:
        if args.only and script.removesuffix(".lua") not in args.only.split(","):
            continue
        print(f"{title}: {args.connections} connections, {args.seconds} s x {args.rounds} "
              "rounds", flush=True)
        rates: dict[str, list[float]] = {b: [] for b in BUILDS}
        cpus: dict[str, list[float]] = {b: [] for b in BUILDS}
        for round_no in range(1, args.rounds + 1):
            for build in BUILDS if round_no % 2 else BUILDS[::-1]:
                cpu_before = cpu_s(pids[build])
                result = run_wrk(urls[build], script, duration_s=args.seconds,
                                 connections=args.connections, threads=2,
                                 env={"BENCH_TABLE": "bench", "BENCH_KEYS": str(PRELOAD_KEYS),
                                      "BENCH_RUN": f"{script}{build}{round_no}"})
                cpu_us = (cpu_s(pids[build]) - cpu_before) / max(result.ok, 1) * 1e6
                rates[build].append(result.ok_per_s)
                cpus[build].append(cpu_us)
                print(_line(build, round_no, result, cpu_us), flush=True)
        plain, causal = (statistics.median(rates[b]) for b in BUILDS)
        plain_cpu, causal_cpu = (statistics.median(cpus[b]) for b in BUILDS)
        ratio = causal / plain if plain else 0.0
        cpu_ratio = plain_cpu / causal_cpu if causal_cpu else 0.0
        verdict = "PASS" if cpu_ratio >= target else "MISS"
        passed = passed and verdict == "PASS"
        print(f"  median: whole-item {plain:.0f} ops/s ({plain_cpu:.0f} us CPU/op), causal "
              f"{causal:.0f} ops/s ({causal_cpu:.0f} us CPU/op); throughput ratio {ratio:.2f}, "
              f"per-CPU-second ratio {cpu_ratio:.2f} (target >= {target:.2f}): {verdict}",
              flush=True)
    return passed


def sizes(db: Path) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT COUNT(*), AVG(LENGTH(item)), AVG(COALESCE(LENGTH(state), 0)),"
            " SUM(state IS NOT NULL), MAX(COALESCE(LENGTH(state), 0)) FROM items").fetchone()
    finally:
        conn.close()
    count, item_bytes, state_bytes, with_state, largest = rows
    print(f"item size ({count} items after the runs): item {item_bytes:.0f} B on average; "
          f"state beside it {state_bytes:.0f} B on average ({with_state} items hold state "
          f"bytes, the others are in the row form: 0 B; largest {largest} B)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--without", default="main", help="git ref of the build without state")
    parser.add_argument("--without-src", default=None, metavar="DIR",
                        help="run the build without state from this src directory (a "
                             "compiled one, say) instead of exporting --without")
    parser.add_argument("--with-src", default=None, metavar="DIR",
                        help="run the causal build from this src directory instead of "
                             "this checkout")
    parser.add_argument("--in-memory", action="store_true", help="no fsync (tmpfs)")
    parser.add_argument("--only", default="", metavar="NAMES",
                        help="run only these workloads (comma-separated: put, put_over, "
                             "update, add)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="atoll-itemstate-bench-") as root:
        base = Path(root)
        src = Path(args.without_src) if args.without_src else _export(args.without, base)
        srcs = {"whole-item": src,
                "causal": Path(args.with_src) if args.with_src else None}
        procs: dict[str, subprocess.Popen[bytes]] = {}
        urls: dict[str, str] = {}
        try:
            for build in BUILDS:
                data = base / build
                data.mkdir()
                port = _free_port()
                procs[build] = _start(str(data), port, args.in_memory, srcs[build])
                urls[build] = f"http://127.0.0.1:{port}"
                client = Client(urls[build])
                _create(client, "bench", stream=False)
                _load(client, "bench", [f"item-{n:06d}" for n in range(PRELOAD_KEYS)])
            print(f"atoll, {'in memory' if args.in_memory else 'durable SQLite'}; whole-item "
                  f"= {args.without_src or args.without}, causal = "
                  f"{args.with_src or 'this checkout'}", flush=True)
            passed = rounds(urls, {b: p.pid for b, p in procs.items()}, args)
            if not args.in_memory:
                sizes(next((base / "causal").glob("*.db")))
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=30)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
