"""PutItem throughput with two GSIs vs without: the cost of index maintenance.

    .venv/bin/python -m bench.gsi_put [--seconds 5] [--rounds 3] [--connections 32]

Starts one `atoll serve` (durable SQLite in a temporary directory, as deployed), creates
two tables with the same key schema — `plain`, and `indexed` with two GSIs that every
written item lands in (one ALL projection on (t, n), one KEYS_ONLY on n) — then runs
wrk with bench/lua/put.lua against each, alternating A/B for several rounds so drift
hits both equally. Prints ops/s and latency per round, the medians, and the ratio
indexed/plain (the target is at least 60%).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.serve import serve
from bench.workloads import Client
from bench.wrk import WrkResult, run_wrk

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.60
START_TIMEOUT_S = 20.0
TABLES = ("plain", "indexed")


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data_dir: str, port: int, in_memory: bool) -> subprocess.Popen[bytes]:
    return serve(port, ["--data-dir", data_dir, *(["--in-memory"] if in_memory else [])],
                 str(REPO), START_TIMEOUT_S)


def _create_tables(client: Client) -> None:
    keys = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}],
            "BillingMode": "PAY_PER_REQUEST"}
    defs = [{"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"}]
    client.call("CreateTable", {"TableName": "plain", "AttributeDefinitions": defs, **keys})
    client.call("CreateTable", {
        "TableName": "indexed", **keys,
        "AttributeDefinitions": defs + [{"AttributeName": "t", "AttributeType": "S"},
                                        {"AttributeName": "n", "AttributeType": "N"}],
        "GlobalSecondaryIndexes": [
            {"IndexName": "by_t_n", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "t", "KeyType": "HASH"},
                           {"AttributeName": "n", "KeyType": "RANGE"}]},
            {"IndexName": "by_n", "Projection": {"ProjectionType": "KEYS_ONLY"},
             "KeySchema": [{"AttributeName": "n", "KeyType": "HASH"}]},
        ]})


def _line(table: str, round_no: int, result: WrkResult) -> str:
    return (f"  round {round_no}  {table:8s} {result.ok_per_s:9.0f} ops/s   "
            f"p50 {result.latency_p50_ms:6.2f} ms   p99 {result.latency_p99_ms:6.2f} ms   "
            f"errors {result.errors}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--in-memory", action="store_true",
                        help="no fsync (tmpfs): isolates the CPU cost of index maintenance")
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {t: [] for t in TABLES}
    p99s: dict[str, list[float]] = {t: [] for t in TABLES}
    with tempfile.TemporaryDirectory(prefix="atoll-gsi-bench-") as data_dir:
        port = _free_port()
        proc = _start(data_dir, port, args.in_memory)
        url = f"http://127.0.0.1:{port}"
        try:
            _create_tables(Client(url))
            storage = "in memory" if args.in_memory else "durable SQLite (synchronous=FULL)"
            print(f"PutItem, {args.connections} connections, {args.seconds} s x {args.rounds} "
                  f"rounds, {storage}")
            for round_no in range(1, args.rounds + 1):
                order = TABLES if round_no % 2 else TABLES[::-1]
                for table in order:
                    result = run_wrk(url, "put.lua", duration_s=args.seconds,
                                     connections=args.connections, threads=2,
                                     env={"BENCH_TABLE": table,
                                          "BENCH_RUN": f"{table}{round_no}"})
                    rates[table].append(result.ok_per_s)
                    p99s[table].append(result.latency_p99_ms)
                    print(_line(table, round_no, result), flush=True)
            counts = {t: Client(url).call("DescribeTable", {"TableName": t})["Table"]
                      for t in TABLES}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    plain = statistics.median(rates["plain"])
    indexed = statistics.median(rates["indexed"])
    ratio = indexed / plain if plain else 0.0
    gsis = counts["indexed"]["GlobalSecondaryIndexes"]
    print(f"median: plain {plain:.0f} ops/s (p99 {statistics.median(p99s['plain']):.2f} ms), "
          f"2 GSIs {indexed:.0f} ops/s (p99 {statistics.median(p99s['indexed']):.2f} ms)")
    print(f"items: plain {counts['plain']['ItemCount']}, indexed "
          f"{counts['indexed']['ItemCount']}, index entries "
          f"{', '.join(str(g['ItemCount']) for g in gsis)}")
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print(f"ratio 2 GSIs / none: {ratio:.0%} (target >= {TARGET_RATIO:.0%}): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
