"""What the compaction sweep and the fold of a departed region do to the requests a
region serves meanwhile, on real processes (atoll.replication.fold runs on the node).

Run (from the repository, with the build to measure):
    python -m bench.sweep_live [--items 200000] [--counters 20000] [--rate 200]

Three regions, auth off, plain HTTP between them: ap-south (the lowest name: it folds
and sweeps, and serves the foreground client), eu-west and us-east. Built: with eu-west
down, ap-south puts `--items` items (BatchWriteItem) and us-east increments a counter on
the first `--counters` of them; then, with ap-south and us-east stopped (SIGSTOP),
eu-west puts the same keys: every item is two concurrent puts, one of which loses
(hidden entries the compaction sweep removes once everyone acknowledged them). Then the
regions are let go and the measurement starts: a foreground client (its own process,
one keep-alive connection) sends GetItem of a stored key and PutItem of a new key in
turn, `--rate` requests a second, to ap-south, while ap-south catches up with eu-west,
compacts every item, sweeps again (every `--interval-ms`: `[replication]
compact_interval_ms`), and, once us-east is taken out of the topology and stopped, folds
us-east's counters. A probe task on ap-south's loop (bench/probed_serve.py) records how
late its 5 ms sleeps wake up.

Printed, per kind of window (what ap-south's /_atoll/status, polled every 0.5 s, said
it was doing; everything before its first compaction counts as catch-up): the foreground requests' p50/p99/max latency, the loop's worst lateness
and how many probe samples were later than 20 ms, ap-south's CPU seconds per wall
second, the seconds its walk ran per wall second (a build that reports `ran_s`), and
the sweep's and the fold's items per second. Load on a shared machine moves
every figure: compare windows of the same run (the quiet ones are the baseline).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FOLDER, PARTED, LEAVER = "ap-south", "eu-west", "us-east"
REGIONS = (FOLDER, PARTED, LEAVER)
TABLE = "big"
PAD = "x" * 100
TARGET = "DynamoDB_20120810."
QUIET_MS = 86_400_000  # compact_interval_ms while catching up first: one sweep at start
REQUEST_TIMEOUT_S = 10.0  # a foreground request still unanswered then counts as failed


class Api:
    """One keep-alive connection to a node's client port (auth off: nothing signed)."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)

    def call(self, op: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.conn.request("POST", "/", json.dumps(body), {
            "X-Amz-Target": TARGET + op, "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/r/dynamodb/aws4_request"})
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def get(self, path: str) -> Any:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        return json.loads(response.read())


def _key(index: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{index:07d}"}}


def _batches(url: str, first: int, last: int, value: str) -> None:
    api = Api(url)
    for start in range(first, last, 25):
        writes = [{"PutRequest": {"Item": {**_key(i), "v": {"S": value}, "pad": {"S": PAD}}}}
                  for i in range(start, min(start + 25, last))]
        for _attempt in range(50):
            status, answer = api.call("BatchWriteItem", {"RequestItems": {TABLE: writes}})
            unprocessed = answer.get("UnprocessedItems", {}).get(TABLE, []) if status == 200 \
                else writes
            if not unprocessed:
                break
            writes = unprocessed
            time.sleep(0.05)
        else:
            raise RuntimeError(f"BatchWriteItem kept failing: {status} {answer}")


def _counters(url: str, first: int, last: int) -> None:
    api = Api(url)
    for index in range(first, last):
        status, answer = api.call("UpdateItem", {
            "TableName": TABLE, "Key": _key(index), "UpdateExpression": "ADD c :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}}})
        if status != 200:
            raise RuntimeError(f"UpdateItem failed: {status} {answer}")


def _parallel(target: Any, url: str, count: int, threads: int, *args: Any) -> None:
    step = -(-count // threads)
    workers = [threading.Thread(target=target, args=(url, s, min(s + step, count), *args))
               for s in range(0, count, step)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def foreground(url: str, out: str, rate: float, keys: int, stop_file: str,
               max_s: float) -> None:
    """GetItem and PutItem in turn at `rate` a second until `stop_file` exists; one line
    per request: wall time sent, op, latency ms, HTTP status."""
    api = Api(url, REQUEST_TIMEOUT_S)
    period = 1.0 / rate
    next_at = time.monotonic()
    started = time.monotonic()
    index = 0
    with open(out, "w") as log:
        while time.monotonic() - started < max_s and not os.path.exists(stop_file):
            index += 1
            if index % 2:
                op, body = "GetItem", {"TableName": TABLE, "Key": _key(index * 7919 % keys)}
            else:
                op, body = "PutItem", {"TableName": TABLE, "Item": {
                    "pk": {"S": f"fg{index:08d}"}, "v": {"S": "fg"}, "pad": {"S": PAD}}}
            sent = time.time()
            begun = time.perf_counter()
            try:
                status = api.call(op, body)[0]
            except (OSError, http.client.HTTPException):  # a timeout: counted, reconnected
                status, api = 0, Api(url, REQUEST_TIMEOUT_S)
            log.write(f"{sent:.4f} {op} {(time.perf_counter() - begun) * 1000:.3f} {status}\n")
            next_at += period
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_at = time.monotonic()  # behind: no burst to catch up


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(api: Api) -> dict[str, Any]:
    replication = api.get("/_atoll/status")["replication"]
    return {"fold": replication["fold"],
            "applied": sum(p["applied"] for p in replication["peers"].values())}


def _wait(what: str, predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def _cursors(api: Api) -> dict[str, Any]:
    return dict(api.get("/_atoll/status")["replication"]["cursors"])


def build(cluster: Any, items: int, counters: int, threads: int) -> None:
    """Every item put concurrently by ap-south and eu-west; us-east's counters on the
    first `counters` items (seen by ap-south, not by eu-west's put)."""
    urls = {region: cluster.url(region) for region in REGIONS}
    status, answer = Api(urls[FOLDER]).call("CreateTable", {
        "TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]})
    if status != 200:
        raise RuntimeError(f"CreateTable: {status} {answer}")
    _wait("the table everywhere", lambda: all(
        TABLE in Api(u).call("ListTables", {})[1].get("TableNames", []) for u in urls.values()),
        60)
    cluster.nodes[PARTED].stop(signal.SIGKILL)
    started = time.monotonic()
    _parallel(_batches, urls[FOLDER], items, threads, "a")
    _parallel(_counters, urls[LEAVER], counters, threads)
    folder, leaver = Api(urls[FOLDER]), Api(urls[LEAVER])

    def same() -> bool:
        mine, theirs = _cursors(folder), _cursors(leaver)
        return all(mine.get(o) == theirs.get(o) for o in (FOLDER, LEAVER))
    _wait("ap-south and us-east to hold each other's writes", same, 600)
    for region in (FOLDER, LEAVER):
        os.kill(cluster.nodes[region].proc.pid, signal.SIGSTOP)
    cluster.nodes[PARTED].start()
    _parallel(_batches, urls[PARTED], items, threads, "b")
    print(f"built in {time.monotonic() - started:.0f} s: {items} items put in ap-south and "
          f"(concurrently) in eu-west, {counters} counters incremented in us-east", flush=True)


class Poller(threading.Thread):
    """ap-south's fold statistics, replication applies and CPU time every 0.5 s."""

    def __init__(self, url: str, pid: int) -> None:
        super().__init__(daemon=True)
        self.api, self.pid = Api(url), pid
        self.samples: list[tuple[float, dict[str, Any], int, float]] = []
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            try:
                status = _status(self.api)
                self.samples.append((time.time(), status["fold"], status["applied"],
                                     _cpu_s(self.pid)))
            except (OSError, http.client.HTTPException):
                self.api = Api(f"http://{self.api.conn.host}:{self.api.conn.port}")
            time.sleep(0.5)

    def last(self) -> dict[str, Any]:
        return self.samples[-1][1] if self.samples else {}


def measure(cluster: Any, items: int, counters: int, rate: float, root: Path,
            interval_ms: int) -> tuple[list[Any], Path, Path]:
    """Heal, then foreground traffic through compaction, a later sweep and the fold;
    returns the poller's samples and the request and lag logs. With `interval_ms`, the
    regions first catch up with sweeps held off (`QUIET_MS`), then ap-south restarts
    sweeping every `interval_ms` and the measurement starts; without it, it starts at
    once, through the catch-up."""
    folder_node = cluster.nodes[FOLDER]
    out, stop_file = root / "foreground.log", root / "stop"
    for region in (FOLDER, LEAVER):
        os.kill(cluster.nodes[region].proc.pid, signal.SIGCONT)
    if interval_ms:  # caught up first, then ap-south restarted with sweeps allowed
        apis = [Api(cluster.url(region)) for region in REGIONS]
        started = time.monotonic()

        def caught_up() -> bool:
            held = [_cursors(api) for api in apis]
            return all(h == held[0] for h in held) and len(held[0]) == 3
        _wait("every region to hold every write", caught_up, 3600)
        print(f"caught up in {time.monotonic() - started:.0f} s", flush=True)
        text = cluster.config_path.read_text()
        cluster.config_path.write_text(text.replace(f"compact_interval_ms = {QUIET_MS}",
                                                    f"compact_interval_ms = {interval_ms}"))
        try:
            folder_node.stop(timeout_s=30)
        except subprocess.TimeoutExpired:  # a busy node slow to stop: a crash restart then
            print("ap-south did not stop in 30 s: killed", flush=True)
            folder_node.kill()
        folder_node.start()
    poller = Poller(cluster.url(FOLDER), folder_node.proc.pid)
    poller.start()
    client = subprocess.Popen([sys.executable, "-m", "bench.sweep_live", "--foreground",
                               cluster.url(FOLDER), str(out), str(rate), str(items),
                               str(stop_file)])
    try:
        _wait("the compaction of every item", lambda: poller.last().get(
            "compacted_items", 0) >= items and poller.last()["state"] != "scanning", 1800)
        passes = poller.last()["passes"]
        _wait("one more sweep and a quiet while", lambda: poller.last()["passes"] > passes
              and poller.last()["state"] != "scanning", 600)
        time.sleep(5)
        plan = cluster.config.to_dict()
        plan["generation"] = cluster.config.generation + 1
        plan["regions"] = [r for r in plan["regions"] if r["id"] != LEAVER]
        api = Api(cluster.url(FOLDER))
        api.conn.request("POST", "/_atoll/topology", json.dumps(plan),
                         {"Content-Type": "application/json"})
        response = api.conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"topology: {response.status} {response.read()!r}")
        response.read()
        cluster.nodes[LEAVER].stop()
        _wait("the fold", lambda: poller.last().get("folded_items", 0) >= counters
              and poller.last()["state"] != "scanning", 1800)
        time.sleep(10)
    finally:
        stop_file.touch()
        client.wait(timeout=30)
        poller.stopping = True
        poller.join(timeout=5)
    (root / "samples.json").write_text(json.dumps(poller.samples))
    return poller.samples, out, root / f"lag-{FOLDER}.jsonl"


def _label(before: dict[str, Any], after: dict[str, Any], applied: int) -> str:
    if after["folded_items"] > before["folded_items"]:
        return "fold"
    if after["compacted_items"] > before["compacted_items"]:
        return "compaction"
    if applied > 100:
        return "catch-up"
    if "scanning" in (before["state"], after["state"]) \
            or after["scanned_rows"] > before["scanned_rows"]:
        return "sweep (nothing to compact)"
    return "quiet"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def report(samples: list[Any], requests_path: Path, lag_path: Path) -> dict[str, Any]:
    windows = []  # (start, end, label, cpu_s, folded, compacted, walk_s)
    compacting = False  # before the first compaction: catching up (or a restart)
    for (t0, f0, a0, c0), (t1, f1, a1, c1) in zip(samples, samples[1:]):
        label = _label(f0, f1, a1 - a0)
        compacting = compacting or label == "compaction"
        windows.append((t0, t1, label if compacting else "catch-up", c1 - c0,
                        f1["folded_items"] - f0["folded_items"],
                        f1["compacted_items"] - f0["compacted_items"],
                        f1.get("ran_s", 0.0) - f0.get("ran_s", 0.0)))
    starts = [w[0] for w in windows]

    def label_at(t: float) -> str | None:
        import bisect
        i = bisect.bisect_right(starts, t) - 1
        return windows[i][2] if 0 <= i < len(windows) and t < windows[i][1] else None

    by: dict[str, dict[str, Any]] = {}
    for start, end, label, cpu_s, folded, compacted, walk_s in windows:
        entry = by.setdefault(label, {"wall_s": 0.0, "cpu_s": 0.0, "items": 0, "walk_s": 0.0,
                                      "get": [], "put": [], "lag_max": 0.0, "lag_n": 0,
                                      "lag_over": 0, "errors": 0,
                                      "gc2_n": 0, "gc2_max": 0.0})
        entry["wall_s"] += end - start
        entry["cpu_s"] += cpu_s
        entry["items"] += folded + compacted
        entry["walk_s"] += walk_s
    for line in requests_path.read_text().splitlines():
        sent, op, latency, status = line.split()
        at = label_at(float(sent))
        if at is not None:
            by[at]["get" if op == "GetItem" else "put"].append(float(latency))
            by[at]["errors"] += status != "200"
    for line in lag_path.read_text().splitlines():
        record = json.loads(line)
        at = label_at(record["t"] - 0.25)
        if at is not None:
            entry = by[at]
            entry["lag_max"] = max(entry["lag_max"], record["max_ms"])
            entry["lag_n"] += record["n"]
            entry["lag_over"] += record["over_20ms"]
            entry["gc2_n"] += record.get("gc2_n", 0)
            entry["gc2_max"] = max(entry["gc2_max"], record.get("gc2_max_ms", 0.0))
    summary = {}
    for label, e in by.items():
        both = e["get"] + e["put"]
        summary[label] = {
            "wall_s": round(e["wall_s"], 1), "requests": len(both), "errors": e["errors"],
            "p50_ms": round(_pct(both, 0.5), 2), "p99_ms": round(_pct(both, 0.99), 2),
            "max_ms": round(max(both, default=float("nan")), 2),
            "get_p99_ms": round(_pct(e["get"], 0.99), 2),
            "put_p99_ms": round(_pct(e["put"], 0.99), 2),
            "lag_max_ms": e["lag_max"], "lag_over_20ms": e["lag_over"],
            "lag_samples": e["lag_n"], "gc2_n": e["gc2_n"], "gc2_max_ms": e["gc2_max"],
            "cpu_per_wall": round(e["cpu_s"] / e["wall_s"], 2) if e["wall_s"] else 0,
            "walk_per_wall": round(e["walk_s"] / e["wall_s"], 2) if e["wall_s"] else 0,
            "items_per_s": round(e["items"] / e["wall_s"]) if e["wall_s"] else 0}
    return summary


def _print(summary: dict[str, Any]) -> None:
    print(f"{'ap-south doing':28} {'wall s':>7} {'reqs':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'get p99':>8} {'put p99':>8} {'loop max':>9} {'>20ms':>6} "
          f"{'cpu/s':>6} {'walk/s':>6} {'items/s':>8} {'full gc':>7} {'gc max':>7}")
    for label in ("quiet", "catch-up", "compaction", "sweep (nothing to compact)", "fold"):
        s = summary.get(label)
        if s is None:
            continue
        print(f"{label:28} {s['wall_s']:7.1f} {s['requests']:6d} {s['p50_ms']:7.2f} "
              f"{s['p99_ms']:7.2f} {s['max_ms']:7.1f} {s['get_p99_ms']:8.2f} "
              f"{s['put_p99_ms']:8.2f} {s['lag_max_ms']:9.1f} {s['lag_over_20ms']:6d} "
              f"{s['cpu_per_wall']:6.2f} {s['walk_per_wall']:6.2f} {s['items_per_s']:8d} "
              f"{s['gc2_n']:7d} {s['gc2_max_ms']:7.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--counters", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--interval-ms", type=int, default=20_000)
    parser.add_argument("--catch-up-first", action="store_true",
                        help="measure from a restart of ap-south once every region holds "
                             "every write (no catch-up in the figures)")
    parser.add_argument("--json", help="also write the summary here")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--foreground", nargs=5, metavar=("URL", "OUT", "RATE", "KEYS", "STOP"))
    parser.add_argument("--report", metavar="DIR", help="only print the summary of a kept run")
    args = parser.parse_args(argv)
    if args.report:
        kept = Path(args.report)
        _print(report(json.loads((kept / "samples.json").read_text()),
                      kept / "foreground.log", kept / f"lag-{FOLDER}.jsonl"))
        return 0
    if args.foreground:
        url, out, rate, keys, stop = args.foreground
        foreground(url, out, float(rate), int(keys), stop, 3600)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import tests.support
    from tests.support import ClusterProcesses

    tests.support.START_TIMEOUT_S = 120.0  # a restart over 200k items on a busy machine

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    root = Path(tempfile.mkdtemp(prefix="atoll-sweep-", dir=base))
    cluster = ClusterProcesses(root, REGIONS, secure=False)
    with cluster.config_path.open("a") as config:
        first_ms = QUIET_MS if args.catch_up_first else args.interval_ms
        config.write(f"\n[replication]\ncompact_interval_ms = {first_ms}\n")
    os.environ["ATOLL_LAG_FILE"] = str(root / "lag-{region}.jsonl")
    for node in cluster.nodes.values():
        node.args[0:3] = [sys.executable, "-m", "bench.probed_serve"]
    try:
        cluster.start()
        build(cluster, args.items, args.counters, args.threads)
        samples, requests_path, lag_path = measure(
            cluster, args.items, args.counters, args.rate, root,
            args.interval_ms if args.catch_up_first else 0)
    finally:
        for node in cluster.nodes.values():
            try:
                node.stop(timeout_s=30)
            except subprocess.TimeoutExpired:
                node.kill()
    summary = report(samples, requests_path, lag_path)
    print(f"{args.items} items, {args.counters} counters, foreground {args.rate:.0f} req/s "
          f"(GetItem and PutItem in turn) to ap-south, sweep every {args.interval_ms} ms")
    _print(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print("data:", root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
