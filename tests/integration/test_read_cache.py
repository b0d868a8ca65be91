"""The node's read cache never serves anything but the last acknowledged state:
read-your-writes under concurrent writers, deletes, table drops and replicated writes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.support import ClusterProcesses, client, create_table, wait_until


def test_reads_follow_acknowledged_writes_under_concurrency(ddb: Any, table_name: str,
                                                            server: Any) -> None:
    create_table(ddb, table_name)
    key = {"pk": {"S": "hot"}}
    ddb.put_item(TableName=table_name, Item={**key, "n": {"N": "0"}})
    errors: list[str] = []

    def writer(worker: int) -> None:
        mine = client(server.url)
        for n in range(1, 60):
            mine.put_item(TableName=table_name,
                          Item={"pk": {"S": f"w{worker}"}, "n": {"N": str(n)}})
            got = mine.get_item(TableName=table_name, Key={"pk": {"S": f"w{worker}"}})
            if got["Item"]["n"]["N"] != str(n):
                errors.append(f"worker {worker} wrote {n} and read {got['Item']['n']['N']}")
            updated = mine.update_item(TableName=table_name, Key=key, UpdateExpression="ADD n :one",
                                       ExpressionAttributeValues={":one": {"N": "1"}},
                                       ReturnValues="UPDATED_NEW")["Attributes"]["n"]["N"]
            seen = mine.get_item(TableName=table_name, Key=key)["Item"]["n"]["N"]
            if int(seen) < int(updated):
                errors.append(f"counter went back: updated to {updated}, then read {seen}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert ddb.get_item(TableName=table_name, Key=key)["Item"]["n"]["N"] == str(4 * 59)


def test_deletes_and_dropped_tables_are_not_served_from_cache(ddb: Any, table_name: str) -> None:
    create_table(ddb, table_name)
    key = {"pk": {"S": "gone"}}
    ddb.put_item(TableName=table_name, Item={**key, "v": {"S": "old"}})
    assert ddb.get_item(TableName=table_name, Key=key)["Item"]["v"]["S"] == "old"
    ddb.delete_item(TableName=table_name, Key=key)
    assert "Item" not in ddb.get_item(TableName=table_name, Key=key)
    ddb.put_item(TableName=table_name, Item={**key, "v": {"S": "again"}})
    assert ddb.get_item(TableName=table_name, Key=key)["Item"]["v"]["S"] == "again"
    ddb.delete_table(TableName=table_name)
    create_table(ddb, table_name)
    assert "Item" not in ddb.get_item(TableName=table_name, Key=key)


def test_replicated_writes_replace_cached_items(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, ("us-east", "eu-west")).start()
    try:
        east, west = client(cluster.url("us-east")), client(cluster.url("eu-west"))
        create_table(east, "cached")
        assert wait_until(lambda: "cached" in west.list_tables()["TableNames"], 10)
        key = {"pk": {"S": "k"}}
        west.put_item(TableName="cached", Item={**key, "v": {"S": "west"}})
        assert west.get_item(TableName="cached", Key=key)["Item"]["v"]["S"] == "west"  # cached
        assert wait_until(lambda: "Item" in east.get_item(TableName="cached", Key=key), 10)
        east.put_item(TableName="cached", Item={**key, "v": {"S": "east"}})
        assert wait_until(lambda: west.get_item(TableName="cached", Key=key)["Item"]["v"]["S"]
                          == "east", 10)
        east.delete_item(TableName="cached", Key=key)
        assert wait_until(lambda: "Item" not in west.get_item(TableName="cached", Key=key), 10)
    finally:
        cluster.stop()
