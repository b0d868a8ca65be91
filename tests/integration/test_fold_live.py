"""A region leaves the topology and its counters are folded, on real processes (issue 28
item 6, atoll.replication.fold).

Three regions increment the same counters; once every region holds every increment,
ap-south is taken out of the topology (an operator's POST) and stopped. eu-west, the
lowest-named region left, folds ap-south's contributions into the counters' values in
bounded fold changes that replicate like any write: afterwards every remaining region
reads exactly the acknowledged increments, holds byte-identical rows (items and item
states), and no state counts ap-south apart any more; `/_atoll/status` says what the
fold did. Two regions also put one more item at the same moment (concurrent puts, one
of which loses): once every region acknowledged everything, eu-west's compaction sweep
(every 300 ms here: `[replication] compact_interval_ms`) leaves every state compact,
the same bytes in both regions and no larger than before.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import orjson

from atoll.replication.itemstate import decode_state, unfolded_regions
from atoll.replication.itemstate.compact import compact
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
    cluster = ClusterProcesses(tmp_path, REGIONS)
    with cluster.config_path.open("a") as config:
        config.write("\n[replication]\ncompact_interval_ms = 300\n")
    cluster.start()
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
        before = [row for row in _rows(cluster, "eu-west", table) if row[0] != b"raced"]

        # concurrent puts of one item: eu-west is down (killed: nothing of us-east's put can
        # wait in its socket buffers) while us-east puts, us-east paused while eu-west puts;
        # ap-south is paused throughout (it could relay us-east's put to eu-west) and until
        # the merged item's state is read: nothing is stable without its acknowledgement,
        # so no sweep can have compacted the item before.
        east, south = (cluster.nodes[r].proc for r in ("us-east", "ap-south"))
        assert east is not None and south is not None
        south.send_signal(signal.SIGSTOP)
        cluster.nodes["eu-west"].kill()
        ddbs["us-east"].put_item(TableName=table, Item={"pk": {"S": "raced"}, "by": {"S": "e"}})
        east.send_signal(signal.SIGSTOP)
        cluster.nodes["eu-west"].start()
        ddbs["eu-west"].put_item(TableName=table, Item={"pk": {"S": "raced"}, "by": {"S": "w"}})
        east.send_signal(signal.SIGCONT)

        def raced_rows(region: str) -> list[tuple[Any, ...]]:
            return [row for row in _rows(cluster, region, table) if row[0] == b"raced"]
        # each region held its own put: equal rows mean both joined the other's
        assert wait_until(lambda: raced_rows("eu-west") == raced_rows("us-east") != [], 20)
        raced_before = [len(row[3] or b"") for row in raced_rows("eu-west")]
        south.send_signal(signal.SIGCONT)
        assert wait_until(lambda: _rows(cluster, "us-east", table)
                          == _rows(cluster, "eu-west", table), 20)
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
        assert client(cluster.url("eu-west")).scan(TableName=table)["Count"] == KEYS + 1

        def uncompacted(region: str) -> list[bytes]:
            return [pk for pk, _sk, item, state in _rows(cluster, region, table) if state
                    and compact(decode_state(state, orjson.loads(item), {"pk"}))
                    != decode_state(state, orjson.loads(item), {"pk"})]
        assert wait_until(lambda: not uncompacted("eu-west") and not uncompacted("us-east")
                          and _rows(cluster, "us-east", table)
                          == _rows(cluster, "eu-west", table), 30), uncompacted("eu-west")
        raced = [len(row[3] or b"") for row in raced_rows("eu-west")]
        print("compacted:", fold()["compacted_items"], "items; the raced item's state bytes:",
              raced_before, "->", raced)
        assert fold()["compacted_items"] >= 1 and raced[0] < raced_before[0]
        for region in live:
            assert counters(region) == [due] * KEYS
    finally:
        cluster.stop()
