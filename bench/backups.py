"""Backups and point-in-time recovery: what they cost.

    .venv/bin/python -m bench.backups [--items 1000000] [--seconds 5] [--rounds 3]

Starts one `atoll serve` (durable SQLite in a temporary directory, as deployed) and:
1. loads `--items` items (~200 bytes each) into table `bench` with wrk BatchWriteItem;
2. CreateBackup of it, idle: seconds from the request until the backup is AVAILABLE, its
   size, and the bytes per item; then again while wrk PutItem writes into the table, with
   the puts/s reached during the backup against a run without one;
3. RestoreTableFromBackup of it (unless --no-restore): seconds until ACTIVE;
4. PutItem throughput into a table with point-in-time recovery on against off, in the
   same run, alternating rounds (enabled before an "on" round and disabled after it, its
   first snapshot finished before wrk starts). The target: on within 10% of off.
Prints the figures; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.gsi_put import _free_port, _start
from bench.workloads import Client, create_table
from bench.wrk import WrkResult, run_wrk

TARGET_PITR_RATIO = 0.90
LOAD_CHUNK_S = 10
MAX_LOAD_CHUNKS = 200
POLL_S = 0.05


def _count(client: Client, table: str) -> int:
    return int(client.call("DescribeTable", {"TableName": table})["Table"]["ItemCount"])


def _load(url: str, client: Client, items: int) -> float:
    began = time.monotonic()
    for chunk in range(MAX_LOAD_CHUNKS):
        if _count(client, "bench") >= items:
            break
        run_wrk(url, "batch.lua", duration_s=LOAD_CHUNK_S, connections=16, threads=2,
                env={"BENCH_TABLE": "bench", "BENCH_RUN": f"load{chunk}"})
        print(f"  loaded {_count(client, 'bench'):,} items", flush=True)
    return time.monotonic() - began


def _backup(client: Client, name: str) -> tuple[float, int, str]:
    """(seconds until AVAILABLE, size in bytes, ARN) of one CreateBackup of `bench`."""
    began = time.monotonic()
    arn = client.call("CreateBackup", {"TableName": "bench",
                                       "BackupName": name})["BackupDetails"]["BackupArn"]
    while True:
        details = client.call("DescribeBackup", {"BackupArn": arn})["BackupDescription"][
            "BackupDetails"]
        if details["BackupStatus"] == "AVAILABLE":
            return time.monotonic() - began, int(details["BackupSizeBytes"]), arn
        time.sleep(POLL_S)


def _wait_active(client: Client, table: str) -> None:
    while client.call("DescribeTable", {"TableName": table})["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(POLL_S * 4)


def _put(url: str, table: str, seconds: int, connections: int, run: str) -> WrkResult:
    return run_wrk(url, "put.lua", duration_s=seconds, connections=connections, threads=2,
                   env={"BENCH_TABLE": table, "BENCH_RUN": run})


def _backups(url: str, client: Client, args: argparse.Namespace) -> None:
    items = _count(client, "bench")
    idle_s, size, arn = _backup(client, "idle")
    print(f"CreateBackup of {items:,} items, idle: AVAILABLE after {idle_s:.1f} s, "
          f"{size / 1e6:.1f} MB ({size / items:.0f} bytes/item, "
          f"{items / idle_s:,.0f} items/s)", flush=True)
    alone = _put(url, "writes", args.seconds, args.connections, "alone")
    print(f"PutItem without a backup running: {alone.ok_per_s:,.0f} ops/s "
          f"(p99 {alone.latency_p99_ms:.1f} ms)", flush=True)
    # a backup while wrk writes into the table being backed up
    import threading
    result: list[WrkResult] = []
    runner = threading.Thread(target=lambda: result.append(
        _put(url, "bench", max(args.seconds, int(idle_s) + 2), args.connections, "during")))
    runner.start()
    time.sleep(0.5)
    busy_s, busy_size, _arn = _backup(client, "busy")
    runner.join()
    during = result[0]
    print(f"CreateBackup under PutItem load: AVAILABLE after {busy_s:.1f} s "
          f"({busy_size / 1e6:.1f} MB); PutItem meanwhile {during.ok_per_s:,.0f} ops/s "
          f"(p99 {during.latency_p99_ms:.1f} ms, errors {during.errors}): "
          f"x{during.ok_per_s / alone.ok_per_s:.2f} of without", flush=True)
    if args.no_restore:
        return
    began = time.monotonic()
    client.call("RestoreTableFromBackup", {"TargetTableName": "restored", "BackupArn": arn})
    _wait_active(client, "restored")
    restore_s = time.monotonic() - began
    print(f"RestoreTableFromBackup of {items:,} items: ACTIVE after {restore_s:.1f} s "
          f"({items / restore_s:,.0f} items/s)", flush=True)


def _pitr(url: str, client: Client, args: argparse.Namespace) -> bool:
    rates: dict[str, list[float]] = {"off": [], "on": []}
    p99s: dict[str, list[float]] = {"off": [], "on": []}
    for round_no in range(1, args.rounds + 1):
        for mode in (("off", "on") if round_no % 2 else ("on", "off")):
            if mode == "on":
                client.call("UpdateContinuousBackups", {
                    "TableName": "writes",
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})
                time.sleep(args.settle)  # its first snapshot is written meanwhile
            result = _put(url, "writes", args.seconds, args.connections, f"{mode}{round_no}")
            if mode == "on":
                client.call("UpdateContinuousBackups", {
                    "TableName": "writes",
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": False}})
            rates[mode].append(result.ok_per_s)
            p99s[mode].append(result.latency_p99_ms)
            print(f"  round {round_no}  PITR {mode:3s} {result.ok_per_s:9,.0f} ops/s   "
                  f"p99 {result.latency_p99_ms:6.2f} ms   errors {result.errors}", flush=True)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    ratio = on / off if off else 0.0
    per_round = ", ".join(f"x{a / b:.2f}" for a, b in zip(rates["on"], rates["off"],
                                                          strict=True))
    print(f"median PutItem: PITR off {off:,.0f} ops/s (p99 {statistics.median(p99s['off']):.2f}"
          f" ms), on {on:,.0f} ops/s (p99 {statistics.median(p99s['on']):.2f} ms)")
    verdict = "PASS" if ratio >= TARGET_PITR_RATIO else "MISS"
    print(f"PITR on / off: {ratio:.2f} per round {per_round} (target >= "
          f"{TARGET_PITR_RATIO:.2f}): {verdict}")
    return verdict == "PASS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds between enabling PITR and measuring")
    parser.add_argument("--no-restore", action="store_true")
    parser.add_argument("--skip-backup", action="store_true")
    parser.add_argument("--skip-pitr", action="store_true")
    args = parser.parse_args(argv)
    passed = True
    with tempfile.TemporaryDirectory(prefix="atoll-backup-bench-") as data_dir:
        port = _free_port()
        proc = _start(data_dir, port, in_memory=False)
        url = f"http://127.0.0.1:{port}"
        client = Client(url)
        try:
            create_table(client)
            client.call("CreateTable", {
                "TableName": "writes", "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}]})
            if not args.skip_backup:
                print(f"loading {args.items:,} items into `bench` (wrk BatchWriteItem)...",
                      flush=True)
                load_s = _load(url, client, args.items)
                print(f"loaded {_count(client, 'bench'):,} items in {load_s:.0f} s", flush=True)
                _backups(url, client, args)
            if not args.skip_pitr:
                print(f"PutItem into `writes`, {args.connections} connections, {args.seconds} s "
                      f"x {args.rounds} rounds, PITR off and on alternating", flush=True)
                passed = _pitr(url, client, args)
            db = Path(data_dir) / "atoll-local.db"
            print(f"database {db.stat().st_size / 1e6:.0f} MB; backups "
                  f"{sum(p.stat().st_size for p in (Path(data_dir) / 'backups').rglob('*') if p.is_file()) / 1e6:.0f} MB")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
