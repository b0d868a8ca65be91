"""python -m bench.postgres: a region on PostgreSQL with 1, 2 and 4 nodes, beside SQLite.

One run, one machine: a throwaway PostgreSQL server (tests/pg.py: Debian's binaries,
fsync and synchronous_commit on), then for each configuration — the SQLite region (one
`atoll serve`), and the PostgreSQL region with 1, 2 and 4 `atoll serve --storage` nodes
(a fresh schema each) — create and preload the bench table (bench/workloads.py) and run
wrk for each workload. With several nodes, one wrk process per node shares the
connections, and their requests per second add up. Beside each figure: the CPU used by
each Atoll node, by PostgreSQL (the postmaster and its backends) and by wrk, in percent
of one core over the run, and what limits the point: the machine (its 2 cores all
busy), one process's core, or neither (then the region's write lock: batches of all
nodes run one at a time, each waiting on PostgreSQL's round trips and WAL flush).
For the write workloads a second line says where the first node's write batches spent
their time (its /_atoll/status write path, sampled in the middle of the run): writes per
batch, the oldest job's wait for its batch, the batch's run under the region's write
lock (its jobs and their statements) and its COMMIT, as medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.pg import PostgresServer, fresh_schema_dsn
from tests.support import free_port

from bench.peers import _descendants, cpu_seconds, ensure_wrk
from bench.workloads import TABLE, WORKLOADS, Client, create_table, preload, wrk_env
from bench.wrk import WrkResult, run_wrk

REPO = Path(__file__).resolve().parent.parent
OPS = ("get", "put", "update", "query")
READY_TIMEOUT_S = 30.0
MACHINE_CORES = os.cpu_count() or 2


@dataclass
class Point:
    config: str
    op: str
    ok_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu: dict[str, float] = field(default_factory=dict)  # process -> % of one core
    write_path: dict[str, Any] | None = None  # node0's /_atoll/status write path, mid-run

    def limit(self) -> str:
        """What bounds this point: the machine's cores (ours and anyone else's
        processes), one process's core, or waiting (no core was full)."""
        if self.cpu.get("machine", 0) >= 90 * MACHINE_CORES:
            return "machine CPU (all cores busy)"
        ours = {k: v for k, v in self.cpu.items() if k != "machine"}
        busiest, share = max(ours.items(), key=lambda kv: kv[1])
        if share >= 85:
            return f"{busiest} CPU (one core)"
        if self.config == "sqlite":
            return "waiting (the WAL's fsync, the GIL)"
        return ("waiting: round trips under the region's write lock" if self.op in
                ("put", "update") else "waiting: round trips to PostgreSQL")


class Nodes:
    """`atoll serve` processes of one configuration."""

    def __init__(self, count: int, storage_url: str | None, root: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        python = str(REPO / ".venv" / "bin" / "python")
        for n in range(count):
            port = free_port()
            cmd = [python, "-m", "atoll", "serve", "--port", str(port),
                   "--data-dir", str(root / f"node{n}")]
            if storage_url is not None:
                cmd += ["--storage", storage_url]
            log = open(root / f"node{n}.log", "wb")
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                               cwd=REPO))
            self.urls.append(f"http://127.0.0.1:{port}")
        for url in self.urls:
            _wait_healthy(url)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def measure(config: str, nodes: Nodes, pg: PostgresServer | None, op: str, args: argparse.Namespace
            ) -> Point:
    """Run one workload through every node at once; CPU of each process over the run."""
    groups = {f"node{n}": _descendants(p.pid) for n, p in enumerate(nodes.procs)}
    if pg is not None:
        groups["postgres"] = pg.pids()
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    machine_before = _machine_busy_s()
    connections = max(1, args.connections // len(nodes.urls))
    tag = f"{int(time.time())}{op}"
    started = time.monotonic()
    with ThreadPoolExecutor(len(nodes.urls) + 1) as pool:  # one wrk process per node, at once
        sampled = pool.submit(_write_path, nodes.urls[0], 0.6 * args.duration)
        results: list[WrkResult] = list(pool.map(lambda n: run_wrk(
            nodes.urls[n] + "/", WORKLOADS[op].script, duration_s=args.duration,
            connections=connections, threads=1, env=wrk_env(f"{tag}{n}")),
            range(len(nodes.urls))))
        write_path = sampled.result()
    elapsed = time.monotonic() - started
    wrk_cpu = _children_cpu_s()
    cpu = {name: round(100 * (cpu_seconds(pids) - before[name]) / elapsed, 1)
           for name, pids in groups.items()}
    cpu["wrk"] = round(100 * wrk_cpu / elapsed, 1)
    cpu["machine"] = round(100 * (_machine_busy_s() - machine_before) / elapsed, 1)
    return Point(config, op, sum(r.ok_per_s for r in results),
                 max(r.latency_p50_ms for r in results), max(r.latency_p99_ms for r in results),
                 sum(r.errors for r in results), cpu,
                 write_path if op in ("put", "update") else None)


def _write_path(url: str, after_s: float) -> dict[str, Any] | None:
    """The node's write path summary (storage/writepath.py) `after_s` into the run."""
    time.sleep(after_s)
    try:
        with urllib.request.urlopen(url + "/_atoll/status", timeout=2) as response:
            return json.loads(response.read()).get("write_path")  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (every process, every core): /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


_children_seen = [0.0]


def _children_cpu_s() -> float:
    """CPU of this process's reaped children (the wrk runs) since the last call."""
    usage = os.times()
    total = usage.children_user + usage.children_system
    delta, _children_seen[0] = total - _children_seen[0], total
    return delta


def run_config(config: str, count: int, storage_url: str | None, pg: PostgresServer | None,
               root: Path, args: argparse.Namespace) -> list[Point]:
    root.mkdir(parents=True, exist_ok=True)
    nodes = Nodes(count, storage_url, root)
    try:
        first = Client(nodes.urls[0])
        create_table(first)
        preload(first)
        for url in nodes.urls[1:]:  # every node sees the table before the load
            deadline = time.monotonic() + READY_TIMEOUT_S
            while time.monotonic() < deadline:
                try:
                    Client(url).call("DescribeTable", {"TableName": TABLE})
                    break
                except Exception:  # noqa: BLE001 - not there yet
                    time.sleep(0.1)
        points = []
        for op in args.ops:
            _children_cpu_s()
            point = measure(config, nodes, pg, op, args)
            print(_row(point), flush=True)
            points.append(point)
        return points
    finally:
        nodes.stop()


def _row(p: Point) -> str:
    cpu = " ".join(f"{k}={v:.0f}%" for k, v in p.cpu.items())
    row = (f"{p.config:<14} {WORKLOADS[p.op].title[:18]:<18} {p.ok_per_s:>9.0f}/s "
           f"p50 {p.p50_ms:>6.2f} ms p99 {p.p99_ms:>7.2f} ms err {p.errors:<4} "
           f"cpu {cpu} | {p.limit()}")
    if p.write_path and p.write_path.get("batches"):
        stages = p.write_path.get("stages_ms", {})
        spans = " ".join(f"{name} {stages[name]['p50']:.2f}" for name in
                         ("wait", "run", "commit", "fsync", "total") if name in stages)
        row += (f"\n{'':<14} node0 batches: {p.write_path['writes_per_batch'].get('p50')} "
                f"writes (p50), ms p50: {spans}")
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="1,2,4", help="PostgreSQL node counts (default 1,2,4)")
    parser.add_argument("--ops", default=",".join(OPS), help=f"workloads (default {','.join(OPS)})")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections in all")
    args = parser.parse_args(argv)
    args.ops = args.ops.split(",")
    counts = [int(n) for n in args.nodes.split(",")]
    if any(op not in WORKLOADS for op in args.ops) or not all(1 <= n <= 8 for n in counts):
        parser.error("unknown workload or a node count outside 1..8")
    ensure_wrk()
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"atoll-bench-pg-{os.getpid()}"
    pg = PostgresServer().start()
    points: list[Point] = []
    try:
        print(f"PostgreSQL {pg.bin.parent.name} (fsync on), {MACHINE_CORES} cores, "
              f"{args.duration} s per run, {args.connections} connections", flush=True)
        points += run_config("sqlite", 1, None, None, root / "sqlite", args)
        for count in counts:
            dsn = fresh_schema_dsn(pg, f"bench{count}")
            points += run_config(f"postgres x{count}", count, dsn, pg, root / f"pg{count}", args)
    finally:
        pg.close()
    sqlite_put = next((p.ok_per_s for p in points if p.config == "sqlite" and p.op == "put"), 0)
    pg_put = next((p.ok_per_s for p in points if p.config == "postgres x1" and p.op == "put"), 0)
    if sqlite_put and pg_put:
        ratio = pg_put / sqlite_put
        print(f"target: one node on PostgreSQL reaches >= 0.5 x the SQLite region's PutItem: "
              f"{ratio:.2f} ({'met' if ratio >= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
