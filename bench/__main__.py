"""python -m bench: Atoll against named peers, with a fixed-response ceiling, in one run.

Order of a run: install the peers (pinned, idempotent) and wrk; start every selected
system on loopback; create the same table and preload the same data in each; then for
each workload, for each round, run wrk against each system in turn (the order rotates by
round, so no system always follows the same neighbour); stop everything; print the
table and the targets; write bench/results/<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.peers import PINS, External, System, SystemUnavailable, default_systems, ensure_wrk
from bench.workloads import KEYS, QUERY_ITEMS, WORKLOADS, Client, create_table, preload, wrk_env
from bench.wrk import WrkError, WrkResult, run_wrk

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The default run (8 workloads, 8 systems, 3 rounds of 3 s) estimates about 10.3 min.
BUDGET_LIMIT_S = 660.0
# Measured on the 2-core machine: wrk start/stop, plus starting servers and preloading.
PER_RUN_OVERHEAD_S = 0.7
FIXED_OVERHEAD_S = 40.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = [s.name for s in default_systems()]
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help=f"systems to run, comma-separated: {','.join(names)}"
                   " and any --target names (default: all)")
    p.add_argument("--ops", default=",".join(WORKLOADS),
                   help=f"workloads, comma-separated (default: {','.join(WORKLOADS)})")
    p.add_argument("--target", action="append", default=[], metavar="NAME=URL",
                   help="also run against a running DynamoDB-compatible endpoint (repeatable)")
    p.add_argument("--atoll-rev", default=None, metavar="REV",
                   help="run Atoll from this git revision's src/ (git archive) instead of the "
                   "working tree")
    p.add_argument("--duration", type=int, default=3,
                   help="whole seconds per wrk run (wrk takes no fractions; default 3)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per workload (default 3)")
    p.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--no-replication", action="store_true",
                   help="skip the multi-region figures (replication lag and catch-up)")
    args = p.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1 <= args.duration <= 120:
        p.error("--rounds must be 1..20 and --duration 1..120 s")
    if not 1 <= args.connections <= 1024 or not 1 <= args.threads <= args.connections:
        p.error("--connections must be 1..1024 and --threads 1..connections")
    unknown = [op for op in args.ops.split(",") if op not in WORKLOADS]
    if unknown:
        p.error(f"unknown --ops {unknown}; choose from {list(WORKLOADS)}")
    return args


def select_systems(args: argparse.Namespace) -> list[System]:
    systems: list[System] = default_systems(args.atoll_rev)
    for spec in args.target:
        name, sep, url = spec.partition("=")
        if not sep or not name or not url.startswith("http://"):
            sys.exit(f"--target wants NAME=http://host:port, not {spec!r}")
        # A target named like a built-in system stands in for it (e.g. atoll=URL to measure
        # an Atoll you started yourself), so the ratios and targets still apply.
        systems = [s for s in systems if s.name != name]
        systems.append(External(name, url.rstrip("/")))
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {s.name for s in systems}
        if unknown:
            sys.exit(f"--only: unknown systems {sorted(unknown)}; "
                     f"known: {[s.name for s in systems]}")
        systems = [s for s in systems if s.name in wanted]
    return systems


def runs_on(system: System, op: str) -> bool:
    """The fixed-response servers answer every workload alike; they run on a few only. The
    floor runs where it does the same SQLite work as the databases."""
    if system.kind == "floor":
        return WORKLOADS[op].floor
    return system.is_database or WORKLOADS[op].ceiling


def print_budget(systems: list[System], ops: list[str], args: argparse.Namespace) -> None:
    runs = sum(runs_on(s, op) for s in systems for op in ops) * args.rounds
    est = runs * (args.duration + PER_RUN_OVERHEAD_S) + FIXED_OVERHEAD_S
    print(f"budget: {len(ops)} workloads × {len(systems)} systems × {args.rounds} rounds × "
          f"{args.duration} s (fixed-response servers on "
          f"{','.join(op for op in ops if WORKLOADS[op].ceiling) or 'none'} only) = "
          f"{runs} wrk runs, about {est / 60:.1f} min in all "
          f"(wrk -t{args.threads} -c{args.connections})")
    if est > BUDGET_LIMIT_S:
        print(f"  warning: over the {BUDGET_LIMIT_S / 60:.0f}-minute budget; "
              "use --duration, --rounds, --ops or --only to trim")


def bring_up(systems: list[System], up: list[System]) -> list[System]:
    """Install, start and preload each system; the ones that fail are reported and dropped.
    Started systems are appended to `up` as they come, so the caller can stop them all."""
    for system in systems:
        try:
            system.install()
            t = time.monotonic()
            up.append(system)
            system.start()
            if system.is_database:
                client = Client(system.url)
                create_table(client)
                preload(client)
            print(f"  {system.label}: up at {system.url} "
                  f"(ready and preloaded in {time.monotonic() - t:.1f} s)", flush=True)
        except (SystemUnavailable, OSError, RuntimeError, TimeoutError) as exc:
            print(f"  SKIP {system.label}: {exc}", flush=True)
            system.stop()
            up.remove(system)
        except Exception as exc:  # a peer's odd answer must not end the whole run
            print(f"  SKIP {system.label}: {type(exc).__name__}: {exc}", flush=True)
            system.stop()
            up.remove(system)
    return up


def write_path(system: System) -> dict[str, Any] | None:
    """Atoll's own account of its recent write batches (/_atoll/status), or None."""
    try:
        with urllib.request.urlopen(system.url + "/_atoll/status", timeout=5) as response:
            status = json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    summary = status.get("write_path") if isinstance(status, dict) else None
    if not isinstance(summary, dict):
        return None
    return {**summary, "compiled": status.get("compiled")}


def measure(systems: list[System], ops: list[str], args: argparse.Namespace, run_id: str,
            paths: dict[str, dict[str, list[dict[str, Any]]]]
            ) -> dict[str, dict[str, list[WrkResult]]]:
    """Round-major: every round runs every workload, so each workload's rounds spread over
    the whole run and a ratio between two workloads of one system (UpdateItem/PutItem)
    compares rounds taken close together, as a ratio between systems does (within a
    round the systems take turns, in a rotating order). After each Atoll run, `paths`
    gets Atoll's stage times of its write batches from the run's last seconds."""
    raw: dict[str, dict[str, list[WrkResult]]] = {op: {} for op in ops}
    alive = list(systems)
    for rnd in range(args.rounds):
        for op in ops:
            workload = WORKLOADS[op]
            shift = rnd % max(len(alive), 1)
            order = alive[shift:] + alive[:shift]
            line = []
            notes = []
            for system in order:
                if not runs_on(system, op):
                    continue
                env = wrk_env(f"{run_id}{op}{rnd}")
                try:
                    cpu_before = system.cpu_seconds()
                    res = run_wrk(system.url + "/", workload.script, duration_s=args.duration,
                                  connections=args.connections, threads=args.threads, env=env)
                    cpu_after = system.cpu_seconds()
                    if cpu_before is not None and cpu_after is not None:
                        res = dataclasses.replace(res, server_cpu_s=cpu_after - cpu_before)
                    if system.kind == "atoll":
                        summary = write_path(system)
                        note = report.write_path_line(summary)
                        if summary is not None and note is not None:
                            paths[op].setdefault(system.name, []).append(summary)
                            notes.append(f"    {system.name} {note}")
                except WrkError as exc:
                    print(f"  {op} on {system.label}: {exc}", flush=True)
                    continue
                finally:
                    system.sample_rss()
                    system.settle()
                raw[op].setdefault(system.name, []).append(res)
                flag = f" ({res.errors} errors)" if res.errors else ""
                line.append(f"{system.name} {res.ok_per_s:,.0f}{flag}")
                if system.process is not None and system.process.poll() is not None:
                    print(f"  {system.label} died (exit {system.process.returncode}); "
                          f"dropped. Log: {getattr(system, 'log_path', '?')}", flush=True)
                    alive.remove(system)
            print(f"  {op:6} round {rnd + 1}/{args.rounds}: " + ", ".join(line), flush=True)
            for note in notes:
                print(note, flush=True)
    return raw


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT end the run through `finally`, so no server is left behind.
    (A shell starts background jobs with SIGINT ignored; restore it explicitly.)"""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    _stop_on_signals()
    started = datetime.now(UTC)
    t0 = time.monotonic()
    ops = args.ops.split(",")
    systems = select_systems(args)
    print_budget(systems, ops, args)
    print(f"load average before start: {os.getloadavg()} on {os.cpu_count()} CPUs")
    try:
        ensure_wrk()
    except SystemUnavailable as exc:
        print(f"cannot run without wrk: {exc}")
        return 2
    print("bringing up systems:", flush=True)
    up: list[System] = []
    try:
        up = bring_up(systems, up)
        if not up:
            print("no system could be started")
            return 1
        paths: dict[str, dict[str, list[dict[str, Any]]]] = {op: {} for op in ops}
        raw = measure(up, ops, args, run_id=f"{int(time.time()) % 100000}", paths=paths)
    finally:
        for system in up:
            system.stop()

    results: report.Results = {
        op: {s.name: report.Summary.of(per[s.name], WORKLOADS[op].items_per_request)
             for s in up if s.name in per}
        for op, per in raw.items()
    }
    labels = {s.name: s.label for s in up}
    titles = {op: WORKLOADS[op].title for op in ops}
    rss = {s.name: s.rss_peak_kib for s in up}
    ceilings = [s.name for s in up if s.kind == "ceiling"]
    found = report.targets(results, report.best_ceiling(results, ceilings))
    wall_s = time.monotonic() - t0
    report.print_report(results, labels, titles, rss, found)
    meta = {
        "started_utc": started.isoformat(timespec="seconds"), "wall_s": round(wall_s, 1),
        "config": {"ops": ops, "rounds": args.rounds, "duration_s": args.duration,
                   "connections": args.connections, "threads": args.threads,
                   "preloaded_items": KEYS, "query_partition_items": QUERY_ITEMS},
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
        "pins": PINS,
        "urls": {s.name: s.url for s in up},
        "atoll_write_path": {op: per for op, per in paths.items() if per},
    }
    if not args.no_replication and any(s.name.startswith("atoll") for s in up):
        from bench import replication
        print("multi-region: replication lag at 1,000 writes/s and catch-up after "
              "100,000 missed writes (3 durable regions)", flush=True)
        meta["replication"] = replication.run(rate=1000, duration_s=10, missed=100_000)
        meta["wall_s"] = round(time.monotonic() - t0, 1)
        wall_s = time.monotonic() - t0
    path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    report.write_json(path, report.to_json(results, labels, rss, found, meta))
    print(f"wall time {wall_s / 60:.1f} min; results written to {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); every server started was stopped", file=sys.stderr)
        sys.exit(130)
