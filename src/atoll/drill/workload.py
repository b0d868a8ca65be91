"""The drill's workload: client threads making recorded requests.

Each `Worker` is one client thread with its own keys (40 per thread, plus one counter),
one request at a time, paced to its rate: 30% puts, 15% updates, 5% deletes, 5%
conditional puts, 10% counter increments (ADD), 25% gets, 10% queries, each writing a
value never used before. Every request becomes one `Operation` in the `Recorder`, with
its outcome as the client saw it: acknowledged, refused by its condition, failed (a
write whose outcome the client cannot know is `unknown`), and which region answered.
Owning its keys and writing fresh values is what lets the checker (checker.py) decide
exactly which acknowledged write each region must hold.

A failover client routes through `atoll.client`; a naive one (dns-empty) is a plain
boto3 client that looks its region up by name and reconnects every second.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

TABLES = ("drill_items", "drill_orders")
KEYS_PER_WORKER = 40
NAIVE_RECONNECT_S = 1.0
WRITE_KINDS = ("put", "update", "delete", "cput")
READ_KINDS = ("get", "query")


@dataclass
class Operation:
    """One request of the workload and its outcome, as the client saw it."""

    kind: str  # put | update | delete | cput (conditional put) | add | get | query
    table: str
    key: str
    value: str | None  # what a put/update/cput wrote (fresh); None for the rest
    client: str  # failover | naive
    worker: str
    t0: float = 0.0  # sent (time.monotonic())
    t1: float = 0.0  # answered or failed
    ok: bool = False  # acknowledged (a failed condition is an answer too)
    unknown: bool = False  # a write that failed: it may or may not have happened
    condition_failed: bool = False  # a cput whose item existed: nothing written
    read: str | None = None  # what a get found
    error: str | None = None  # the error code or exception name of a failure
    region: str | None = None  # the region that answered (failover clients)

    @property
    def is_read(self) -> bool:
        return self.kind in READ_KINDS


@dataclass
class Recorder:
    ops: list[Operation] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: Operation) -> None:
        with self.lock:
            self.ops.append(op)


class Worker(threading.Thread):
    """One client thread: its own keys, one request at a time, paced to `rate`/s."""

    def __init__(self, name: str, kind: str, make_client: Callable[[], Any], rate: float,
                 seed: int, recorder: Recorder, stop: threading.Event,
                 router_of: Callable[[Any], Any] | None = None,
                 tables: tuple[str, str] = TABLES) -> None:
        super().__init__(name=name, daemon=True)
        self.kind = kind
        self.make_client = make_client
        self.rate = rate
        self.random = random.Random(seed)
        self.recorder = recorder
        self.stop_event = stop
        self.router_of = router_of
        self.n = 0
        self.tables = tables

    def run(self) -> None:
        ddb = self.make_client()
        started = time.monotonic()
        recycle_at = started + NAIVE_RECONNECT_S
        while not self.stop_event.is_set():
            now = time.monotonic()
            if self.kind == "naive" and now >= recycle_at:
                ddb = self.make_client()  # new connections, new name lookups
                recycle_at = now + NAIVE_RECONNECT_S
            self.n += 1
            op, call = self._next(ddb)
            self._perform(ddb, op, call)
            delay = started + self.n / self.rate - time.monotonic()
            if delay > 0:
                self.stop_event.wait(delay)

    def _next(self, ddb: Any) -> tuple[Operation, Callable[[], Any]]:
        """The next request, drawn from the mix, and the call that makes it."""
        roll = self.random.random()
        table = self.tables[self.random.randrange(len(self.tables))]
        key = f"{self.name}-{self.random.randrange(KEYS_PER_WORKER)}"
        value = f"{self.name}-{self.n}"
        item_key = {"pk": {"S": key}}

        def op(kind: str, written: str | None = None, on: str = table,
               named: str = key) -> Operation:
            return Operation(kind, on, named, written, self.kind, self.name)

        if roll < 0.30:
            return op("put", value), lambda: ddb.put_item(
                TableName=table, Item={**item_key, "v": {"S": value}})
        if roll < 0.45:
            return op("update", value), lambda: ddb.update_item(
                TableName=table, Key=item_key, UpdateExpression="SET v = :v",
                ExpressionAttributeValues={":v": {"S": value}})
        if roll < 0.50:
            return op("delete"), lambda: ddb.delete_item(TableName=table, Key=item_key)
        if roll < 0.55:
            return op("cput", value), lambda: ddb.put_item(
                TableName=table, Item={**item_key, "v": {"S": value}},
                ConditionExpression="attribute_not_exists(pk)")
        if roll < 0.65:
            counter = f"{self.name}-counter"
            return op("add", on=self.tables[0], named=counter), lambda: ddb.update_item(
                TableName=self.tables[0], Key={"pk": {"S": counter}},
                UpdateExpression="ADD c :one", ExpressionAttributeValues={":one": {"N": "1"}})
        if roll < 0.90:
            return op("get"), lambda: ddb.get_item(TableName=table, Key=item_key)
        return op("query"), lambda: ddb.query(
            TableName=table, KeyConditionExpression="pk = :k",
            ExpressionAttributeValues={":k": {"S": key}})

    def _perform(self, ddb: Any, op: Operation, call: Callable[[], Any]) -> None:
        op.t0 = time.monotonic()
        try:
            answer = call()
            op.ok = True
            if op.kind == "get":
                item = answer.get("Item")
                op.read = item["v"]["S"] if item and "v" in item else None
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                op.ok = op.condition_failed = True
            else:
                op.error = code
                op.unknown = not op.is_read
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            op.error = type(exc).__name__
            op.unknown = not op.is_read
        op.t1 = time.monotonic()
        if self.router_of is not None:
            op.region = getattr(self.router_of(ddb).last_served, "region", None)
        self.recorder.add(op)
