"""Per-item causal merge on live regions (issues 26 item 1 and 28), through boto3.

Two real `atoll serve` regions whose peer links run through the drill's fault proxies,
so they can be partitioned: writes made on both sides of a partition are truly
concurrent. After healing, both regions must hold the same item, with every concurrent
increment counted, set members merged add-wins, updates of different attributes both
kept, and only real losses in the conflict logs. The tests share one cluster, each on
its own table. (Clock skew: test_causal_clocks_live.py, under faketime, with the clock
offset detection.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from atoll.drill.cluster import DrillCluster
from tests.support import CREDENTIALS, client, create_table, free_port, node_json, wait_until

EAST, WEST = "us-east", "eu-west"
CONVERGE_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillCluster]:
    cluster = DrillCluster(tmp_path_factory.mktemp("causal-merge"), 2, seed=1, ports=free_port)
    try:
        cluster.start_all()
        assert cluster.credentials is not None  # the admin key, for every region's clients
        for region in cluster.ids:
            CREDENTIALS[cluster.url(region)] = cluster.credentials
        yield cluster
    finally:
        cluster.close()


def _clients(cluster: DrillCluster) -> dict[str, Any]:
    return {r: client(cluster.url(r), connect_timeout=2, read_timeout=5) for r in (EAST, WEST)}


def _table(ddbs: dict[str, Any], name: str) -> None:
    create_table(ddbs[EAST], name)
    assert wait_until(lambda: name in ddbs[WEST].list_tables()["TableNames"], 20)


def _item(ddb: Any, table: str, key: str) -> Any:
    return ddb.get_item(TableName=table, Key={"pk": {"S": key}},
                        ConsistentRead=True).get("Item")


def _converged(ddbs: dict[str, Any], table: str, key: str) -> Any:
    """The item once both regions hold the same one (fails the test otherwise)."""
    assert wait_until(lambda: _item(ddbs[EAST], table, key) == _item(ddbs[WEST], table, key),
                      CONVERGE_TIMEOUT_S), (_item(ddbs[EAST], table, key),
                                            _item(ddbs[WEST], table, key))
    return _item(ddbs[EAST], table, key)


def _replicated(ddbs: dict[str, Any], table: str, key: str, want: Any) -> None:
    assert wait_until(lambda: all(_item(d, table, key) == want for d in ddbs.values()),
                      CONVERGE_TIMEOUT_S), {r: _item(d, table, key) for r, d in ddbs.items()}


def _conflicts(cluster: DrillCluster, region: str, table: str) -> list[dict[str, Any]]:
    """The region's conflict records of `table`."""
    answer = node_json(cluster.url(region), "/_atoll/conflicts")
    records = answer["conflicts"] if isinstance(answer, dict) else answer
    return [record for record in records if record["table"] == table]


def _partition(cluster: DrillCluster) -> None:
    cluster.rules.partition(EAST, [WEST])
    cluster.network.apply()


def _heal(cluster: DrillCluster) -> None:
    cluster.rules.clear()
    cluster.network.apply()


def _update(ddb: Any, table: str, key: str, expression: str, values: dict[str, Any]) -> None:
    ddb.update_item(TableName=table, Key={"pk": {"S": key}}, UpdateExpression=expression,
                    ExpressionAttributeValues=values)


@pytest.mark.slow
def test_concurrent_counters_sets_and_attributes_all_survive_a_partition(
        cluster: DrillCluster) -> None:
    ddbs = _clients(cluster)
    _table(ddbs, "merged")
    ddbs[EAST].put_item(TableName="merged", Item={
        "pk": {"S": "k"}, "n": {"N": "10"}, "tags": {"SS": ["x"]}, "a": {"S": "0"},
        "b": {"S": "0"}, "c": {"S": "0"}})
    start = _item(ddbs[EAST], "merged", "k")
    _replicated(ddbs, "merged", "k", start)
    _partition(cluster)
    one = {":one": {"N": "1"}}
    for _ in range(50):
        _update(ddbs[EAST], "merged", "k", "ADD n :one", one)
    for _ in range(30):  # the same counter, concurrently, in the other region
        _update(ddbs[WEST], "merged", "k", "SET n = n + :one", one)
    _update(ddbs[EAST], "merged", "k", "SET a = :v", {":v": {"S": "east"}})
    _update(ddbs[WEST], "merged", "k", "SET b = :v", {":v": {"S": "west"}})
    _update(ddbs[EAST], "merged", "k", "DELETE tags :x", {":x": {"SS": ["x"]}})
    _update(ddbs[EAST], "merged", "k", "ADD tags :e", {":e": {"SS": ["e"]}})
    _update(ddbs[WEST], "merged", "k", "ADD tags :xw", {":xw": {"SS": ["x", "w"]}})
    _update(ddbs[EAST], "merged", "k", "SET c = :v", {":v": {"S": "first"}})
    _update(ddbs[WEST], "merged", "k", "SET c = :v", {":v": {"S": "second"}})  # a later hlc
    assert _item(ddbs[EAST], "merged", "k")["n"] == {"N": "60"}
    assert _item(ddbs[WEST], "merged", "k")["n"] == {"N": "40"}
    _heal(cluster)
    item = _converged(ddbs, "merged", "k")
    assert item["n"] == {"N": "90"}  # every increment of both regions counted
    assert item["a"] == {"S": "east"} and item["b"] == {"S": "west"}
    assert sorted(item["tags"]["SS"]) == ["e", "w", "x"]  # a concurrent ADD beats DELETE
    assert item["c"] == {"S": "second"}  # concurrent writes of one attribute: the later
    for region in (EAST, WEST):  # only c's loss is a conflict, logged once per region
        records = _conflicts(cluster, region, "merged")
        assert [(r["kind"], r["attribute"], r["loser"]["item"]) for r in records] == [
            ("attribute", "c", {"S": "first"})], records


@pytest.mark.slow
def test_a_table_tagged_for_the_whole_item_rule_keeps_one_concurrent_update(
        cluster: DrillCluster) -> None:
    ddbs = _clients(cluster)
    ddbs[EAST].create_table(
        TableName="whole", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST", Tags=[{"Key": "atoll:merge", "Value": "item"}])
    assert wait_until(lambda: "whole" in ddbs[WEST].list_tables()["TableNames"], 20)
    with pytest.raises(ddbs[EAST].exceptions.ClientError, match="atoll:merge"):
        ddbs[EAST].tag_resource(ResourceArn=ddbs[EAST].describe_table(
            TableName="whole")["Table"]["TableArn"],
            Tags=[{"Key": "atoll:merge", "Value": "sometimes"}])
    ddbs[EAST].put_item(TableName="whole", Item={"pk": {"S": "k"}, "n": {"N": "1"}})
    _replicated(ddbs, "whole", "k", {"pk": {"S": "k"}, "n": {"N": "1"}})
    _partition(cluster)
    _update(ddbs[EAST], "whole", "k", "SET a = :v ADD n :one",
            {":v": {"S": "east"}, ":one": {"N": "1"}})
    _update(ddbs[WEST], "whole", "k", "SET b = :v ADD n :one",  # later: the whole-item winner
            {":v": {"S": "west"}, ":one": {"N": "1"}})
    _heal(cluster)
    assert _converged(ddbs, "whole", "k") == {"pk": {"S": "k"}, "n": {"N": "2"},
                                              "b": {"S": "west"}}
    for region in (EAST, WEST):  # east's whole item lost, and says so
        records = _conflicts(cluster, region, "whole")
        assert [(r["kind"], r["loser"]["item"]) for r in records] == [
            ("item", {"pk": {"S": "k"}, "n": {"N": "2"}, "a": {"S": "east"}})], records
