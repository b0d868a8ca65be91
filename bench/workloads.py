"""The workloads, and the small DynamoDB JSON client that prepares data for them.

Every system gets the same table (`bench`: hash key `pk` S, range key `sk` S) and the
same preloaded data, then the same wrk Lua scripts:

- `KEYS` items `item-000000`.. with sk "0" (GetItem, UpdateItem, the reads of mixed);
- `QUERY_ITEMS` items in partition "query" with sk `s-000000`.. (Query pages);
- Scan pages (Limit 100 after a random preloaded key) and BatchGetItem (100 preloaded
  keys) read both.
PutItem, BatchWriteItem and the writes of mixed use fresh keys (`put-<run>-<thread>-<n>`).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TABLE = "bench"
KEYS = 5000
QUERY_ITEMS = 1000
PAYLOAD = "x" * 120
BATCH_SIZE = 25
PRELOAD_WORKERS = 4
TABLE_ACTIVE_TIMEOUT_S = 30.0
UNPROCESSED_RETRIES = 20
# dynalite checks the shape of the SigV4 header; nobody here checks the signature.
AUTH = ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)


@dataclass(frozen=True)
class Workload:
    name: str          # the --ops name
    title: str         # the table's row label
    script: str        # bench/lua/<script>
    items_per_request: int = 1
    # Also run the fixed-response servers (the ceiling) on this workload? They answer
    # every request alike, so three request sizes suffice: small (get), medium (put) and
    # large (batch, ~8 KB); this keeps the default run within its time budget.
    ceiling: bool = False
    # Also run the floor (bench/floor_server.py)? On the workloads whose SQLite work it
    # does as Atoll does: not on UpdateItem (no expressions) nor the mixed one (get + put).
    floor: bool = True


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("put", "PutItem", "put.lua", ceiling=True),
    Workload("get", "GetItem", "get.lua", ceiling=True),
    Workload("query", "Query (Limit 10)", "query.lua"),
    Workload("update", "UpdateItem (SET/ADD/REMOVE + cond.)", "update.lua", floor=False),
    Workload("batch", "BatchWriteItem (25 items)", "batch.lua", items_per_request=25,
             ceiling=True),
    Workload("mixed", "Mixed 80% get / 20% put", "mixed.lua", floor=False),
    Workload("scan", "Scan (pages of 100 items)", "scan.lua", items_per_request=100),
    Workload("batchget", "BatchGetItem (100 keys)", "batchget.lua", items_per_request=100),
]}


class DynamoError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status
        self.body = body

    @property
    def error_type(self) -> str:
        try:
            return str(json.loads(self.body).get("__type", "")).rsplit("#", 1)[-1]
        except ValueError:
            return ""


class Client:
    """DynamoDB JSON 1.0 over one keep-alive connection per thread (stdlib only)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http://host:port URLs are supported, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def call(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/x-amz-json-1.0",
                   "X-Amz-Target": f"DynamoDB_20120810.{op}",
                   "X-Amz-Date": "20260101T000000Z", "Authorization": AUTH}
        data = json.dumps(body).encode()
        for attempt in range(2):  # one retry on a connection the server closed
            conn = self._conn()
            try:
                conn.request("POST", "/", body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                break
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 1:
                    raise
        if resp.will_close:
            conn.close()
            self._local.conn = None
        if resp.status != 200:
            raise DynamoError(resp.status, payload)
        return json.loads(payload) if payload else {}


def item(pk: str, sk: str, n: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(n)}, "t": {"S": "bench"},
            "payload": {"S": PAYLOAD}}


def create_table(client: Client) -> None:
    """Create the bench table (or reuse it) and wait until it is ACTIVE."""
    try:
        client.call("CreateTable", {
            "TableName": TABLE,
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}],
            "BillingMode": "PAY_PER_REQUEST",
        })
    except DynamoError as exc:
        if exc.error_type != "ResourceInUseException":
            raise
    deadline = time.monotonic() + TABLE_ACTIVE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = client.call("DescribeTable", {"TableName": TABLE})["Table"]["TableStatus"]
        if status == "ACTIVE":
            return
        time.sleep(0.1)
    raise TimeoutError(f"table {TABLE} not ACTIVE after {TABLE_ACTIVE_TIMEOUT_S:g} s")


def _write_batch(client: Client, items: list[dict[str, Any]]) -> None:
    pending: list[dict[str, Any]] = [{"PutRequest": {"Item": it}} for it in items]
    for _ in range(UNPROCESSED_RETRIES):
        out = client.call("BatchWriteItem", {"RequestItems": {TABLE: pending}})
        pending = out.get("UnprocessedItems", {}).get(TABLE, [])
        if not pending:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{len(pending)} items still unprocessed after {UNPROCESSED_RETRIES} tries")


def preload(client: Client, keys: int = KEYS, query_items: int = QUERY_ITEMS) -> None:
    """Write the items GetItem, UpdateItem, mixed and Query read (idempotent)."""
    items = [item(f"item-{i:06d}", "0", i) for i in range(keys)]
    items += [item("query", f"s-{i:06d}", i) for i in range(query_items)]
    batches = [items[i:i + BATCH_SIZE] for i in range(0, len(items), BATCH_SIZE)]
    with ThreadPoolExecutor(PRELOAD_WORKERS) as pool:
        for _ in pool.map(lambda b: _write_batch(client, b), batches):
            pass
    # A spot check, so a server that acknowledges writes it does not keep fails here.
    got = client.call("GetItem", {"TableName": TABLE, "ConsistentRead": True,
                                  "Key": {"pk": {"S": f"item-{keys - 1:06d}"}, "sk": {"S": "0"}}})
    if "Item" not in got:
        raise RuntimeError("preloaded item not found after preload")


def wrk_env(run_tag: str) -> dict[str, str]:
    """What the Lua scripts need to know about the data (see bench/lua/common.lua)."""
    return {"BENCH_TABLE": TABLE, "BENCH_KEYS": str(KEYS),
            "BENCH_QUERY_ITEMS": str(QUERY_ITEMS), "BENCH_RUN": run_tag}
