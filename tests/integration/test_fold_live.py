"""A region leaves the topology and its counters are folded, on real processes (issue 28
item 6, atoll.replication.fold).

Three regions increment the same counters; once every region holds every increment,
ap-south is taken out of the topology (an operator's POST) and stopped. eu-west, the
lowest-named region left, folds ap-south's contributions into the counters' values in
bounded fold changes that replicate like any write: afterwards every remaining region
reads exactly the acknowledged increments, holds byte-identical rows (items and item
states), and no state counts ap-south apart any more; `/_atoll/status` says what the
fold did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from atoll.replication.itemstate import decode_state, unfolded_regions
from tests.support import (
    ClusterProcesses,
    NodeDatabase,
    client,
    create_table,
    node_json,
    node_post,
    wait_until,
)

REGIONS = ("us-east", "eu-west", "ap-south")
KEYS = 4
ADDS = 2  # per region and key


def _rows(cluster: ClusterProcesses, region: str, table: str) -> list[tuple[Any, ...]]:
    with NodeDatabase(cluster.nodes[region], region) as database:
        tid = database.one("SELECT tid FROM tables WHERE name = ?", (table,))[0]
        found = database._conn.execute("SELECT pk, sk, item, state FROM items WHERE tid = ?"
                                       " ORDER BY pk, sk", (tid,)).fetchall()
    return [tuple(bytes(v) if isinstance(v, (bytes, memoryview)) else v for v in row)
            for row in found]


def _counts_apart(rows: list[tuple[Any, ...]], live: tuple[str, ...]) -> list[str]:
    apart = []
    for _pk, _sk, item, state in rows:
        if state:
            held = decode_state(state, orjson.loads(item), {"pk"})
            apart += unfolded_regions(held, live)
    return apart


def test_a_departed_regions_counters_are_folded_and_stay_exact(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, REGIONS).start()
    try:
        ddbs = cluster.clients()
        table = create_table(ddbs["us-east"], "folded")
        assert wait_until(lambda: all(table in d.list_tables()["TableNames"]
                                      for d in ddbs.values()), 20)
        for region in REGIONS:
            for key in range(KEYS):
                for _ in range(ADDS):
                    ddbs[region].update_item(
                        TableName=table, Key={"pk": {"S": f"k{key}"}},
                        UpdateExpression="ADD c :one",
                        ExpressionAttributeValues={":one": {"N": "1"}})
        due = {"N": str(len(REGIONS) * ADDS)}

        def counters(region: str) -> list[Any]:
            return [ddbs[region].get_item(TableName=table, Key={"pk": {"S": f"k{k}"}},
                                          ConsistentRead=True).get("Item", {}).get("c")
                    for k in range(KEYS)]
        assert wait_until(lambda: all(counters(r) == [due] * KEYS for r in REGIONS), 30)
        before = _rows(cluster, "eu-west", table)
        assert len(_counts_apart(before, ("us-east", "eu-west"))) == KEYS

        plan = cluster.config.to_dict()
        plan["generation"] = cluster.config.generation + 1
        plan["regions"] = [r for r in plan["regions"] if r["id"] != "ap-south"]
        assert node_post(cluster.url("us-east"), "/_atoll/topology", plan)[0] == 200
        cluster.nodes["ap-south"].stop()

        def fold() -> dict[str, Any]:
            status = node_json(cluster.url("eu-west"), "/_atoll/status")
            return dict(status["replication"]["fold"])
        assert wait_until(lambda: fold()["folded_items"] == KEYS and fold()["state"] == "done",
                          30), fold()
        assert fold()["departed"] == ["ap-south"] and fold()["waiting_for"] == []
        assert fold()["fold_changes"] >= 1
        live = ("us-east", "eu-west")
        assert wait_until(lambda: _rows(cluster, "us-east", table)
                          == _rows(cluster, "eu-west", table), 20)
        for region in live:
            assert counters(region) == [due] * KEYS
            assert _counts_apart(_rows(cluster, region, table), live) == []
        east = node_json(cluster.url("us-east"), "/_atoll/status")["replication"]["fold"]
        assert east["state"] == "idle" and east["folded_items"] == 0  # one region folds
        assert client(cluster.url("eu-west")).scan(TableName=table)["Count"] == KEYS
    finally:
        cluster.stop()
