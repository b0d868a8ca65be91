"""Replication benchmark: lag under steady load, and catch-up speed.

    .venv/bin/python -m bench.replication [--rate 1000] [--duration 20] [--missed 100000]

1. Lag: a 3-region cluster (separate processes, durable SQLite) takes a steady
   `--rate` writes/s spread over the three regions (one paced client process per
   region). Each region records, for every change it applies from a peer, the time from
   the origin's timestamp to the apply (`/_atoll/status` lag samples). Printed: p50/p99
   per region and overall, plus a client-side check (time until a write acknowledged in
   one region is readable in another, sampled).
2. Catch-up: one region is stopped; `--missed` writes go to another region (wrk); the
   stopped region restarts and the time until its cursor reaches the writer's last
   sequence gives records/s.
The cluster runs as deployed: `--auth required` (every request signed with the admin
key the first region makes) and mutual TLS between regions (a CA and region
certificates made for the run). `--plain` runs it with both off instead, for the side
by side figure. With auth on, the catch-up writes are PutItems of fresh items from 8
threads, each signed (wrk sends one fixed request, and fresh keys cannot be signed
beforehand); with `--plain`, wrk as before. Either way one changelog record per item.
Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from atoll.topology.config import ClusterConfig, RegionConfig

Key = tuple[str, str] | None  # (key id, secret); None: auth off

REGIONS = ("us-east", "eu-west", "ap-south")
WRITERS_PER_REGION = 4
LUA_PUT = Path(__file__).parent / "lua" / "replication_put.lua"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signed(key: Key, method: str, url: str, data: bytes, headers: dict[str, str]
            ) -> dict[str, str]:
    """`headers` plus SigV4's for this request (unchanged without a key)."""
    if key is None:
        return headers
    request = AWSRequest(method=method, url=url, data=data, headers=headers)
    SigV4Auth(Credentials(*key), "dynamodb", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def _get(url: str, key: Key = None) -> Any:
    request = urllib.request.Request(url, headers=_signed(key, "GET", url, b"", {}))
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _post(url: str, target: str, body: dict[str, Any], key: Key = None) -> dict[str, Any]:
    data = json.dumps(body).encode()
    headers = _signed(key, "POST", url + "/", data, {
        "X-Amz-Target": f"DynamoDB_20120810.{target}",
        "Content-Type": "application/x-amz-json-1.0"})
    request = urllib.request.Request(url + "/", data=data, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


class Cluster:
    def __init__(self, root: Path, secure: bool = True) -> None:
        self.root = root
        self.secure = secure
        peer_scheme = "https" if secure else "http"
        self.config = ClusterConfig("atoll-bench", tuple(
            RegionConfig(r, f"http://127.0.0.1:{_free_port()}",
                         f"{peer_scheme}://127.0.0.1:{_free_port()}")
            for r in REGIONS))
        self.config_path = root / "cluster.toml"
        self.config_path.write_text(self.config.to_toml())
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.credentials_path = root / "credentials"
        self.key: Key = None
        if secure:
            _make_certs(root / "certs", self.config)

    def url(self, region: str) -> str:
        return self.config.region(region).client_endpoint

    def start(self, region: str) -> None:
        log = open(self.root / f"{region}.log", "ab")
        args = [sys.executable, "-m", "atoll", "serve", "--config", str(self.config_path),
                "--region", region, "--data-dir", str(self.root / region)]
        if self.secure:
            args += ["--certs", str(self.root / "certs"), "--auth", "required"]
            if region == REGIONS[0]:  # the others receive the key by replication
                args += ["--admin-credentials", str(self.credentials_path)]
        else:
            args += ["--auth", "off"]
        self.procs[region] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.secure and self.key is None and self.credentials_path.exists():
                    values = dict(line.split(" = ", 1) for line in
                                  self.credentials_path.read_text().splitlines() if " = " in line)
                    self.key = values["aws_access_key_id"], values["aws_secret_access_key"]
                _get(self.url(region) + "/_atoll/status", self.key)
                return
            except (OSError, KeyError):  # not up, or the key has not reached it yet
                time.sleep(0.1)
        raise RuntimeError(f"{region} did not start")

    def stop(self, region: str) -> None:
        proc = self.procs.pop(region)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for region in list(self.procs):
            self.stop(region)


def _make_certs(directory: Path, config: ClusterConfig) -> None:
    import datetime

    from atoll.auth.certs import ClusterFiles, init_cluster, issue_region_cert

    files = ClusterFiles(directory)
    now = datetime.datetime.now(datetime.UTC)
    init_cluster(files, config.cluster_id, now)
    for region in config.regions:
        issue_region_cert(files, region.id, ["127.0.0.1", "localhost"], now)


def _paced_writer(url: str, region: str, rate: float, duration_s: float, out: Any,
                  key: Key = None) -> None:
    import http.client
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    interval = 1.0 / rate
    start = time.monotonic()
    n = 0
    errors = 0
    while time.monotonic() - start < duration_s and n < rate * duration_s + 1:
        due = start + n * interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({"TableName": "bench", "Item": {
            "pk": {"S": f"{region}-{n}"}, "v": {"S": "x" * 150}}}).encode()
        headers = _signed(key, "POST", url + "/", body, {
            "X-Amz-Target": "DynamoDB_20120810.PutItem",
            "Content-Type": "application/x-amz-json-1.0"})
        try:
            conn.request("POST", "/", body, headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
        except OSError:
            errors += 1
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        n += 1
    out.put((region, n, errors))


def _visibility_probe(cluster: Cluster, samples: int) -> list[float]:
    """Client-side: put in one region, poll another until it is readable (ms)."""
    results = []
    for i in range(samples):
        src, dst = REGIONS[i % 3], REGIONS[(i + 1) % 3]
        key = {"pk": {"S": f"probe-{i}"}}
        _post(cluster.url(src), "PutItem", {"TableName": "bench", "Item": {**key, "v": {"N": "1"}}},
              cluster.key)
        start = time.monotonic()
        while time.monotonic() - start < 10:
            if "Item" in _post(cluster.url(dst), "GetItem", {"TableName": "bench", "Key": key},
                               cluster.key):
                break
            time.sleep(0.001)
        results.append((time.monotonic() - start) * 1000)
        time.sleep(0.02)
    return results


def measure_lag(cluster: Cluster, rate: int, duration_s: float) -> dict[str, Any]:
    queue: Any = multiprocessing.Queue()
    # several paced connections per region: one synchronous client cannot issue a
    # durable write every 3 ms on its own
    writers = [multiprocessing.Process(target=_paced_writer, args=(
        cluster.url(r), f"{r}-{i}", rate / len(REGIONS) / WRITERS_PER_REGION, duration_s, queue,
        cluster.key))
        for r in REGIONS for i in range(WRITERS_PER_REGION)]
    for w in writers:
        w.start()
    time.sleep(duration_s / 2)
    probe_ms = _visibility_probe(cluster, 40)
    for w in writers:
        w.join(timeout=duration_s + 60)
    sent = [queue.get(timeout=10) for _ in writers]
    time.sleep(1.0)
    per_region = {}
    for region in REGIONS:
        status = _get(cluster.url(region) + "/_atoll/status", cluster.key)
        per_region[region] = status["replication"]["lag_ms"]
    return {"rate_per_s": rate, "duration_s": duration_s,
            "auth_and_mutual_tls": cluster.secure,
            "writes_sent": sum(n for _r, n, _e in sent), "errors": sum(e for _r, _n, e in sent),
            "server_lag_ms": per_region,
            "client_visibility_ms": {"p50": statistics.median(probe_ms),
                                     "p99": sorted(probe_ms)[int(len(probe_ms) * 0.99) - 1],
                                     "samples": len(probe_ms)}}


def measure_catch_up(cluster: Cluster, missed: int) -> dict[str, Any]:
    writer, laggard = "us-east", "ap-south"
    cluster.stop(laggard)
    status_url = cluster.url(writer) + "/_atoll/status"
    start_seq = _get(status_url, cluster.key)["replication"]["cursors"].get(writer, 0)
    wrk = shutil.which("wrk")
    if wrk is None and cluster.key is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    deadline = time.monotonic() + 300
    seq = start_seq
    rounds = 0
    while seq - start_seq < missed and time.monotonic() < deadline:
        if cluster.key is None:
            assert wrk is not None
            subprocess.run([wrk, "-t2", "-c32", "-d5s", "-s", str(LUA_PUT), cluster.url(writer)],
                           check=True, capture_output=True)
        else:
            _signed_puts(cluster.url(writer), cluster.key, rounds, missed - (seq - start_seq))
        rounds += 1
        seq = _get(status_url, cluster.key)["replication"]["cursors"][writer]
    records = seq - start_seq
    started = time.monotonic()
    cluster.start(laggard)
    serving_s = time.monotonic() - started
    caught_up_s = None
    first: tuple[float, int] | None = None  # (when, cursor) at the first applied batch
    while time.monotonic() - started < 600:
        try:
            cursors = _get(cluster.url(laggard) + "/_atoll/status",
                           cluster.key)["replication"]["cursors"]
        except OSError:  # restarting
            time.sleep(0.05)
            continue
        at = cursors.get(writer, 0)
        if first is None and at > start_seq:
            first = (time.monotonic(), at)
        if at >= seq:
            caught_up_s = time.monotonic() - started
            break
        time.sleep(0.05)
    applying = None
    if caught_up_s is not None and first is not None and seq > first[1]:
        applying = (seq - first[1]) / max(1e-6, started + caught_up_s - first[0])
    return {"missed_records": records, "catch_up_s": caught_up_s,
            "records_per_s": records / caught_up_s if caught_up_s else None,
            "process_start_s": round(serving_s, 3),
            "records_per_s_applying": applying,
            "note": "records_per_s includes the returning process's start-up; "
                    "records_per_s_applying counts from its first applied batch"}


def _signed_puts(url: str, key: Key, round_: int, wanted: int) -> None:
    """`wanted` fresh ~200-byte items (at most 20,000 a call), one signed PutItem each (one
    changelog record each, as wrk's puts make) from 8 threads with a connection each."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    count = min(wanted, 20_000)
    threads = 8
    host, port = url.removeprefix("http://").split(":")

    def write(first: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            for n in range(first, count, threads):
                body = json.dumps({"TableName": "bench", "Item": {
                    "pk": {"S": f"missed-{round_}-{n}"}, "v": {"S": "x" * 150}}}).encode()
                conn.request("POST", "/", body, _signed(key, "POST", url + "/", body, {
                    "X-Amz-Target": "DynamoDB_20120810.PutItem",
                    "Content-Type": "application/x-amz-json-1.0"}))
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"PutItem answered {response.status}")
        finally:
            conn.close()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, range(threads)))


def run(rate: int, duration_s: float, missed: int, secure: bool = True) -> dict[str, Any]:
    """Start a fresh 3-region cluster, measure lag then catch-up, stop it."""
    root = Path(tempfile.mkdtemp(prefix="atoll-bench-repl-"))
    cluster = Cluster(root, secure)
    try:
        for region in REGIONS:
            cluster.start(region)
        _post(cluster.url("us-east"), "CreateTable", {
            "TableName": "bench", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]},
            cluster.key)
        time.sleep(1.0)
        lag = measure_lag(cluster, rate, duration_s)
        print(json.dumps({"lag": lag}, indent=2), flush=True)
        catch_up = measure_catch_up(cluster, missed)
        print(json.dumps({"catch_up": catch_up}, indent=2), flush=True)
        return {"lag": lag, "catch_up": catch_up}
    finally:
        cluster.stop_all()
        if os.environ.get("ATOLL_BENCH_KEEP") is None:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--missed", type=int, default=100_000)
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--plain", action="store_true",
                        help="auth off and plain HTTP between regions (for comparison)")
    args = parser.parse_args()
    figures = run(args.rate, args.duration, args.missed, secure=not args.plain)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
