"""Crash test: SIGKILL during a stream of transactional writes on a table with a GSI and
an LSI. After restart every transaction is entirely present or entirely absent, every
acknowledged one is present, and every index matches a full recomputation from its table.

Each writer runs transactions t = 0, 1, 2, ... in sequence; transaction t puts the items
(w, t-j) for j < ITEMS_PER_TXN, deletes the items of transaction t - DELETE_LAG, and bumps
the writer's ledger item (count = t + 1). So from the ledger's count C alone the exact set
of the writer's items is known: any partial transaction shows up as a difference.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.indexcheck import check_indexes, scan_all
from tests.support import ServerProcess, assert_database_intact, client, wait_until

WRITERS = 6
ITEMS_PER_TXN = 4
DELETE_LAG = 3
WRITE_WINDOW_S = 2.5  # at least, and until MIN_ACKED transactions were acknowledged
MIN_ACKED = 50
WORKLOAD_TIMEOUT_S = 60.0  # a loaded machine: seconds, not minutes
MAX_TXNS_PER_WRITER = 10_000
TABLE = "crash_txn"


def _create(ddb: Any) -> None:
    ddb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in
                              (("pk", "S"), ("sk", "S"), ("txn", "N"), ("pos", "N"))],
        GlobalSecondaryIndexes=[{
            "IndexName": "by_txn",
            "KeySchema": [{"AttributeName": "txn", "KeyType": "HASH"},
                          {"AttributeName": "pos", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["payload"]}}],
        LocalSecondaryIndexes=[{
            "IndexName": "by_pos",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "pos", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}])


def _item_key(writer: int, txn: int, j: int) -> dict[str, Any]:
    return {"pk": {"S": f"w{writer}"}, "sk": {"S": f"t{txn:06d}-{j}"}}


def _actions(writer: int, txn: int) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for j in range(ITEMS_PER_TXN):
        item = {**_item_key(writer, txn, j), "txn": {"N": str(txn * 100 + writer)},
                "pos": {"N": str(j)}, "payload": {"S": "p" * 200}}
        actions.append({"Put": {"TableName": TABLE, "Item": item}})
    if txn >= DELETE_LAG:
        actions += [{"Delete": {"TableName": TABLE, "Key": _item_key(writer, txn - DELETE_LAG, j)}}
                    for j in range(ITEMS_PER_TXN)]
    actions.append({"Update": {
        "TableName": TABLE, "Key": {"pk": {"S": f"w{writer}"}, "sk": {"S": "ledger"}},
        "UpdateExpression": "ADD #c :one", "ConditionExpression": "attribute_not_exists(#c) OR #c = :t",
        "ExpressionAttributeNames": {"#c": "count"},
        "ExpressionAttributeValues": {":one": {"N": "1"}, ":t": {"N": str(txn)}}}})
    return actions


def _writer(url: str, writer: int, acked: list[int], stop: threading.Event) -> None:
    ddb = client(url, connect_timeout=2, read_timeout=5)
    for txn in range(MAX_TXNS_PER_WRITER):
        if stop.is_set():
            return
        try:
            ddb.transact_write_items(TransactItems=_actions(writer, txn))
        except (ClientError, Exception):
            return  # the server died mid-request: not acknowledged, maybe committed
        acked.append(txn)


def _expected_keys(writer: int, count: int) -> set[str]:
    keys = set()
    for txn in range(count):
        if txn + DELETE_LAG < count:
            continue  # deleted by a later committed transaction
        keys |= {f"t{txn:06d}-{j}" for j in range(ITEMS_PER_TXN)}
    return keys | {"ledger"}


@pytest.mark.slow
def test_transactions_are_all_or_nothing_across_sigkill(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path).start()
    _create(client(server.url))
    acked: list[list[int]] = [[] for _ in range(WRITERS)]
    stop = threading.Event()
    threads = [threading.Thread(target=_writer, args=(server.url, w, acked[w], stop))
               for w in range(WRITERS)]
    for t in threads:
        t.start()
    time.sleep(WRITE_WINDOW_S)
    wait_until(lambda: sum(len(a) for a in acked) > MIN_ACKED, WORKLOAD_TIMEOUT_S)
    server.kill()  # SIGKILL with transactions in flight
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert sum(len(a) for a in acked) > MIN_ACKED, "the workload did not get going"

    assert_database_intact(tmp_path / "atoll-local.db")

    restarted = ServerProcess(data_dir=tmp_path).start()
    try:
        ddb = client(restarted.url)
        items = scan_all(ddb, TABLE)
        by_writer: dict[int, set[str]] = {w: set() for w in range(WRITERS)}
        ledgers: dict[int, int] = {}
        for item in items:
            writer = int(item["pk"]["S"][1:])
            by_writer[writer].add(item["sk"]["S"])
            if item["sk"]["S"] == "ledger":
                ledgers[writer] = int(item["count"]["N"])
        for writer in range(WRITERS):
            count = ledgers.get(writer, 0)
            acknowledged = len(acked[writer])
            assert count in (acknowledged, acknowledged + 1), (writer, count, acknowledged)
            expected = _expected_keys(writer, count) if count else set()
            assert by_writer[writer] == expected, (
                f"writer {writer}: a transaction is partially present "
                f"({sorted(by_writer[writer] ^ expected)[:8]})")
        compared = check_indexes(ddb, TABLE)
        assert compared > 0
    finally:
        restarted.stop()


BACKFILL_ITEMS = 5000
ACTIVE_TIMEOUT_S = 60.0


@pytest.mark.slow
def test_backfill_interrupted_by_sigkill_resumes_after_restart(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path).start()
    ddb = client(server.url)
    ddb.create_table(TableName="refill", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    for start in range(0, BACKFILL_ITEMS, 25):
        ddb.batch_write_item(RequestItems={"refill": [
            {"PutRequest": {"Item": {"pk": {"S": f"k{n}"}, "g": {"N": str(n % 11)}}}}
            for n in range(start, start + 25)]})
    ddb.update_table(
        TableName="refill", AttributeDefinitions=[{"AttributeName": "g", "AttributeType": "N"}],
        GlobalSecondaryIndexUpdates=[{"Create": {
            "IndexName": "by_g", "Projection": {"ProjectionType": "KEYS_ONLY"},
            "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}}])
    server.kill()  # most likely mid-backfill
    restarted = ServerProcess(data_dir=tmp_path).start()
    try:
        ddb = client(restarted.url)
        deadline = time.monotonic() + ACTIVE_TIMEOUT_S
        while True:
            (gsi,) = ddb.describe_table(TableName="refill")["Table"]["GlobalSecondaryIndexes"]
            if gsi["IndexStatus"] == "ACTIVE":
                break
            assert time.monotonic() < deadline, "backfill did not resume after restart"
            time.sleep(0.1)
        assert check_indexes(ddb, "refill") == BACKFILL_ITEMS
    finally:
        restarted.stop()
