"""What authentication and TLS cost a request: GetItem and PutItem with SigV4
verification, with HTTPS, with both, against the same with both off, in one run.

    .venv/bin/python -m bench.auth [--seconds 5] [--rounds 3] [--connections 32]

Starts four `atoll serve` nodes (durable SQLite in a temporary directory, as deployed),
identical but for: `off` (--auth off, HTTP), `sigv4` (--auth required, HTTP), `https`
(--auth off, HTTPS on the client port) and `sigv4+https`. Each holds one table with one
~200-byte item. wrk (bench/lua/signed.lua) sends one request over and over, signed
beforehand with botocore's SigV4 signer (the same request is valid for DynamoDB's
5-minute window, and each copy is verified in full: the signature and the body's
SHA-256 are computed for every request; only the derived signing key is cached, as it
is for any client). The nodes are measured in turn, round after round, so drift on a
shared machine hits them alike.

Printed per operation and node: ok/s, p99, and the server's CPU time per request
(user + system from /proc: on a shared machine a wall-clock rate follows the load,
CPU per request much less); then, against `off`, the throughput ratio and the CPU
microseconds each feature adds per request. Target (issue 25): SigV4 verification
costs at most 20% of GetItem throughput. wrk keeps its connections open, so the HTTPS
rows show the cost of encrypting requests and answers, not of handshakes.
Then where a verified request's time goes, in this process on one core (no network,
no event loop): the verification steps the api runs per request — SigV4 verification
of the request as the HTTP layer holds it (atoll.auth.sigv4, with its caches warm, as
in a running node; the verifier alone on a SignedRequest is shown too), the role check,
the internal-table check — in microseconds of CPU time each, for the same GetItem as
wrk sends; then each phase of one verification alone (header dict, Authorization
parse, scope, date and window, signed headers, key, body SHA-256, canonical request,
string to sign, signing key, HMAC, compare). `--breakdown-only` prints just that.
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from bench.gsi_put import _free_port
from bench.serve import cpu_s, stop, wait_healthy
from bench.wrk import run_wrk

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
TARGET_SIGV4_COST = 0.20  # of GetItem throughput
THREADS = 2
TABLE = "bench"
ITEM = {"pk": {"S": "item-000001"}, "n": {"N": "42"}, "t": {"S": "bench"},
        "payload": {"S": "x" * 120}}
OPERATIONS = {
    "GetItem": {"TableName": TABLE, "Key": {"pk": ITEM["pk"]}, "ConsistentRead": True},
    "PutItem": {"TableName": TABLE, "Item": ITEM},
}
NODES = ("off", "sigv4", "https", "sigv4+https")
BREAKDOWN_REPEAT = 20_000


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    https: bool
    key: tuple[str, str] | None
    ca_file: str
    rates: dict[str, list[float]] = field(default_factory=dict)
    p99s: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.port}"


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    from atoll.auth.certs import ClusterFiles, init_cluster, issue_region_cert

    files = ClusterFiles(directory)
    now = datetime.datetime.now(datetime.UTC)
    init_cluster(files, "atoll-bench", now)
    issue_region_cert(files, "local", ["127.0.0.1", "localhost"], now)
    return files.ca_cert, files.region_cert("local"), files.region_key("local")


def start(name: str, root: Path, certs: tuple[Path, Path, Path]) -> Node:
    ca, cert, key = certs
    port = _free_port()
    auth = "required" if name.startswith("sigv4") else "off"
    https = name.endswith("https")
    credentials = root / f"{name}.credentials"
    args = [sys.executable, "-m", "atoll", "serve", "--port", str(port),
            "--data-dir", str(root / name), "--auth", auth]
    if auth == "required":
        args += ["--admin-credentials", str(credentials)]
    if https:
        args += ["--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    node = Node(name, port, proc, https, None, str(ca))
    context = None
    if https:
        import ssl
        context = ssl.create_default_context(cafile=str(ca))
    wait_healthy(proc, node.url, START_TIMEOUT_S, f"atoll serve ({name})", context)
    if auth == "required":
        values = dict(line.split(" = ", 1) for line in credentials.read_text().splitlines()
                      if " = " in line)
        node.key = values["aws_access_key_id"], values["aws_secret_access_key"]
    return node


def prepare(node: Node) -> None:
    key_id, secret = node.key or ("bench", "bench")
    ddb = boto3.client("dynamodb", endpoint_url=node.url, region_name="us-east-1",
                       aws_access_key_id=key_id, aws_secret_access_key=secret,
                       verify=node.ca_file, config=Config(retries={"max_attempts": 3}))
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    ddb.put_item(TableName=TABLE, Item=ITEM)


def request_env(node: Node, operation: str) -> dict[str, str]:
    """signed.lua's environment: the request, signed now with the node's key (or, auth
    off, with no Authorization header at all: what an auth-off node is sent)."""
    body = json.dumps(OPERATIONS[operation], separators=(",", ":"))
    target = f"DynamoDB_20120810.{operation}"
    headers = ""
    if node.key is not None:
        request = AWSRequest(method="POST", url=node.url + "/", data=body.encode(), headers={
            "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
        SigV4Auth(Credentials(*node.key), "dynamodb", "us-east-1").add_auth(request)
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items()
                            if k.lower() in ("authorization", "x-amz-date"))
    return {"BENCH_TARGET": target, "BENCH_BODY": body, "BENCH_HEADERS": headers}


def measure(node: Node, operation: str, seconds: int, connections: int) -> None:
    before = cpu_s(node.proc.pid)
    result = run_wrk(node.url, "signed.lua", duration_s=seconds, connections=connections,
                     threads=THREADS, env=request_env(node, operation))
    used_s = cpu_s(node.proc.pid) - before
    if result.ok == 0 or result.ok < 0.99 * result.requests:
        raise RuntimeError(f"{node.name} {operation}: {result.ok} of {result.requests} "
                           f"answered 2xx; {result.status} {result.error_samples[:1]}")
    node.rates.setdefault(operation, []).append(result.ok / result.duration_s)
    node.p99s.setdefault(operation, []).append(result.latency_p99_ms)
    node.cpu_us.setdefault(operation, []).append(used_s / result.ok * 1e6)


def report(nodes: dict[str, Node]) -> bool:
    passed = True
    base = nodes["off"]
    for operation in OPERATIONS:
        print(f"\n{operation} (medians of {len(base.rates[operation])} rounds)")
        print(f"  {'node':12s} {'ok/s':>9s} {'p99 ms':>8s} {'server CPU us/req':>18s} "
              f"{'vs off':>8s} {'+CPU us/req':>12s}")
        base_rate = statistics.median(base.rates[operation])
        base_cpu = statistics.median(base.cpu_us[operation])
        for node in nodes.values():
            rate = statistics.median(node.rates[operation])
            cpu = statistics.median(node.cpu_us[operation])
            print(f"  {node.name:12s} {rate:9.0f} {statistics.median(node.p99s[operation]):8.2f} "
                  f"{cpu:18.1f} {rate / base_rate:8.3f} {cpu - base_cpu:+12.1f}")
        sigv4 = nodes["sigv4"]
        cost = 1 - statistics.median(sigv4.rates[operation]) / base_rate
        cpu_cost = 1 - base_cpu / statistics.median(sigv4.cpu_us[operation])
        line = (f"  SigV4 verification: {cost:.1%} of {operation} throughput, "
                f"{cpu_cost:.1%} of the server's CPU per request")
        if operation == "GetItem":
            verdict = "PASS" if cost <= TARGET_SIGV4_COST else "MISS"
            passed = verdict == "PASS"
            line += f"   target <= {TARGET_SIGV4_COST:.0%} of throughput: {verdict}"
        print(line, flush=True)
    return passed


def _signed_get_item(key: Any) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The same GetItem as wrk sends, signed now by botocore with `key`, as the HTTP
    layer holds it (headers as received, the body)."""
    body = json.dumps(OPERATIONS["GetItem"], separators=(",", ":")).encode()
    request = AWSRequest(method="POST", url="http://127.0.0.1:8000/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem",
        "User-Agent": "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux lang/python#3.11",
        "Content-Length": str(len(body))})
    SigV4Auth(Credentials(key.key_id, key.secret.reveal()), "dynamodb",
              "us-east-1").add_auth(request)
    head = [(b"Host", b"127.0.0.1:8000")] + [
        (k.encode(), v.encode() if isinstance(v, str) else v) for k, v in request.headers.items()]
    return head, body


def _cpu_us(step: Any, repeat: int) -> float:
    step()
    started = time.process_time()
    for _ in range(repeat):
        step()
    return (time.process_time() - started) / repeat * 1e6


def breakdown(repeat: int = BREAKDOWN_REPEAT) -> None:
    """CPU microseconds per request of each step the api runs to admit a signed GetItem,
    then of each phase of the verification (the verifier's own steps, called one by
    one on the same request, with its caches warm as in a running node)."""
    from atoll.api.access import REQUIRED, AccessControl, check_not_internal
    from atoll.auth import sigv4
    from atoll.auth.keys import ROLE_READ_WRITE, create_key

    now_ms = int(time.time() * 1000)
    key = create_key(ROLE_READ_WRITE, now_ms)
    head, body = _signed_get_item(key)
    verifier = sigv4.SigV4Verifier(lambda key_id: key if key_id == key.key_id else None)
    access = AccessControl(REQUIRED, verifier, "local", lambda: now_ms)
    text = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in head]
    signed = sigv4.SignedRequest.from_target("POST", "/", text, body)
    decoded = json.loads(body)
    compiled = sigv4.__file__ is not None and not sigv4.__file__.endswith(".py")
    steps = (
        ("SigV4 verification", lambda: verifier.verify(signed, now_ms)),
        ("authenticate (the api's call)", lambda: access.authenticate(b"POST", b"/", head, body,
                                                                      "GetItem")),
        ("role and table check", lambda: access.authorize(key, "GetItem", decoded)),
        ("internal-table check", lambda: check_not_internal("GetItem", decoded)),
    )
    print(f"\nWhere a verified GetItem's time goes (this process, one core, {repeat} runs "
          f"each, CPU us per request; atoll.auth.sigv4 compiled: {compiled}):")
    total = 0.0
    for name, step in steps:
        cost_us = _cpu_us(step, repeat)
        if not name.startswith("SigV4"):  # (authenticate verifies: counted there)
            total += cost_us
        print(f"  {name:30s} {cost_us:6.1f}")
    print(f"  {'per request, in all':30s} {total:6.1f}", flush=True)
    phases(verifier, key, head, body, now_ms, repeat)


def phases(verifier: Any, key: Any, head: list[tuple[bytes, bytes]], body: bytes, now_ms: int,
           repeat: int) -> None:
    """CPU microseconds of each phase of one verification, each timed alone (each
    includes a Python call of its own: the first row). Rows marked "first sight only"
    run for an Authorization head the verifier has not seen yet; a remembered head
    costs the "remembered" row instead (the sum counts that one)."""
    from atoll.auth import sigv4
    from atoll.auth.canonical import canonical_request

    v = verifier
    fields = {name.lower(): value for name, value in head}
    none: frozenset[bytes] = frozenset()
    raw = sigv4._authorization_header(fields, none, b"")
    _, credential, signed_headers, signature = sigv4.authorization_parts(raw)
    scope = v._credential_scope(credential)
    stamp, iso, date_header = v._request_time(fields, none, scope.key_id)
    signed = v._header_list(signed_headers, scope.key_id)
    values = sigv4._signed_values(signed, fields, none, date_header, scope.key_id, v._values)
    body_hash = hashlib.sha256(body).hexdigest().encode()
    canonical = canonical_request(b"POST", b"/", b"", signed, values, body_hash)
    digest = hashlib.sha256(canonical).hexdigest()
    to_sign = f"{sigv4.ALGORITHM}\n{iso}\n{scope.text}\n{digest}".encode()
    signing_key = v._signing_key(key, scope.date, scope.region, scope.service)
    expected = sigv4.signature_of(signing_key, to_sign)
    rows = (
        ("(an empty call: each row's own overhead)", lambda: None),
        ("header dict (names lower-cased)", lambda: {n.lower(): x for n, x in head}),
        ("Authorization parsed (first sight only)", lambda: sigv4.authorization_parts(
            sigv4._authorization_header(fields, none, b""))),
        ("Authorization head, remembered", lambda: v._remembered_head(
            fields[b"authorization"], fields, none, b"")),
        ("credential scope (first sight only)", lambda: v._credential_scope(credential)),
        ("X-Amz-Date and skew window", lambda: sigv4._check_window(
            v._request_time(fields, none, scope.key_id)[0], now_ms, v.skew_ms, None)),
        ("signed headers: rules, values", lambda: sigv4._signed_values(
            v._header_list(signed_headers, None), fields, none, date_header, None, v._values)),
        ("signature syntax (first sight only)", lambda: sigv4._SIGNATURE_RE.match(signature)),
        ("key lookup, state, token", lambda: v._usable_key(scope.key_id, fields, none, now_ms)),
        ("body SHA-256", lambda: hashlib.sha256(body).hexdigest().encode()),
        ("canonical request (one join)", lambda: canonical_request(
            b"POST", b"/", b"", signed, values, body_hash)),
        ("string to sign (its SHA-256)", lambda: f"{sigv4.ALGORITHM}\n{iso}\n{scope.text}\n"
                                                f"{hashlib.sha256(canonical).hexdigest()}"
                                                .encode()),
        ("signing key (remembered)", lambda: v._signing_key(key, scope.date, scope.region,
                                                             scope.service)),
        ("HMAC-SHA256 of the string to sign", lambda: sigv4.signature_of(signing_key, to_sign)),
        ("constant-time compare", lambda: hmac.compare_digest(expected, signature)),
        ("verify_wire, in all", lambda: v.verify_wire(b"POST", b"/", head, body, now_ms)),
    )
    print("\nOne verification, phase by phase (CPU us, each timed alone):")
    total = 0.0
    for name, step in rows:
        cost_us = _cpu_us(step, repeat)
        if not name.startswith(("(", "verify_wire")) and "first sight" not in name:
            total += cost_us
        print(f"  {name:42s} {cost_us:6.2f}")
    print(f"  {'the phases, summed':42s} {total:6.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--breakdown-only", action="store_true")
    args = parser.parse_args(argv)
    if args.breakdown_only:
        breakdown()
        return 0
    with tempfile.TemporaryDirectory(prefix="atoll-auth-bench-") as directory:
        root = Path(directory)
        certs = make_certs(root / "certs")
        nodes: dict[str, Node] = {}
        try:
            for name in NODES:
                nodes[name] = start(name, root, certs)
                prepare(nodes[name])
            print(f"{len(NODES)} nodes, {args.rounds} rounds of {args.seconds} s per "
                  f"operation and node, {args.connections} connections "
                  f"(compiled: {_compiled(nodes['off'])})", flush=True)
            for round_ in range(args.rounds):
                for operation in OPERATIONS:
                    for node in nodes.values():
                        measure(node, operation, args.seconds, args.connections)
                print(f"round {round_ + 1}: " + ", ".join(
                    f"{n.name} {n.rates['GetItem'][-1]:.0f}/{n.rates['PutItem'][-1]:.0f}"
                    for n in nodes.values()) + " GetItem/PutItem ok/s", flush=True)
            passed = report(nodes)
            breakdown()
            return 0 if passed else 1
        finally:
            stop(node.proc for node in nodes.values())


def _compiled(node: Node) -> Any:
    try:
        with urllib.request.urlopen(node.url + "/_atoll/status", timeout=5) as answer:
            return json.loads(answer.read()).get("compiled")
    except OSError:
        return "unknown"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
