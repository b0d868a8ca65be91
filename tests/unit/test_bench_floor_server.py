"""bench/floor_server.py's statements: the floor answers as DynamoDB would shape it, from
what was written (its throughput is only worth comparing if it does the reads)."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root holds bench/

from bench.floor_server import FloorStore  # noqa: E402
from bench.workloads import item  # noqa: E402


def _store(tmp_path: Path) -> FloorStore:
    store = FloorStore(str(tmp_path / "floor.sqlite"))
    writes = [{"PutRequest": {"Item": item(f"item-{i:06d}", "0", i)}} for i in range(20)]
    writes += [{"PutRequest": {"Item": item("query", f"s-{i:06d}", i)}} for i in range(30)]
    store.batch_write_item({"RequestItems": {"bench": writes}})
    return store


def _key(i: int) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"item-{i:06d}"}, "sk": {"S": "0"}}


def test_get_item_answers_the_stored_item_or_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert orjson.loads(store.get_item({"Key": _key(7)})) == {"Item": item("item-000007", "0", 7)}
    assert orjson.loads(store.get_item({"Key": _key(99)})) == {}


def test_query_reads_a_range_of_limit_rows_in_sort_key_order(tmp_path: Path) -> None:
    store = _store(tmp_path)
    page = orjson.loads(store.query({"Limit": 10, "ExpressionAttributeValues": {
        ":pk": {"S": "query"}, ":from": {"S": "s-000005"}}}))
    assert [i["sk"]["S"] for i in page["Items"]] == [f"s-{i:06d}" for i in range(5, 15)]
    assert page["Count"] == page["ScannedCount"] == 10
    assert page["LastEvaluatedKey"] == {"pk": {"S": "query"}, "sk": {"S": "s-000014"}}
    last = orjson.loads(store.query({"Limit": 10, "ExpressionAttributeValues": {
        ":pk": {"S": "query"}, ":from": {"S": "s-000025"}}}))
    assert last["Count"] == 5 and "LastEvaluatedKey" not in last


def test_scan_pages_follow_the_start_key(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = orjson.loads(store.scan({"Limit": 30}))
    second = orjson.loads(store.scan({"Limit": 30, "ExclusiveStartKey": first["LastEvaluatedKey"]}))
    keys = [(i["pk"]["S"], i["sk"]["S"]) for i in first["Items"] + second["Items"]]
    assert len(keys) == len(set(keys)) == 50 and keys == sorted(keys)


def test_batch_get_item_answers_the_keys_found(tmp_path: Path) -> None:
    store = _store(tmp_path)
    answer = orjson.loads(store.batch_get_item(
        {"RequestItems": {"bench": {"Keys": [_key(1), _key(99), _key(3)]}}}))
    assert answer["UnprocessedKeys"] == {}
    assert [i["n"]["N"] for i in answer["Responses"]["bench"]] == ["1", "3"]


def test_writes_are_read_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put_item({"Item": item("new", "0", 5)})
    assert orjson.loads(store.get_item({"Key": {"pk": {"S": "new"}, "sk": {"S": "0"}}}))["Item"] \
        == item("new", "0", 5)
