"""Sequential writers never make a conflict, through crashes and a partition (issue 26's
acceptance: the conflict log holds only real losses).

Three real regions (peer links through the drill's fault proxies) under a steady load:
per region, client threads each own a set of keys and write them one write after the
other (puts, SET and ADD updates, deletes) through their own region, so every write of a
key follows the previous one. Meanwhile regions are SIGKILLed and restarted in turn (3
times under `make test`, each region once; 30 with ATOLL_LIVE_ACCEPTANCE=1, issue 26's
acceptance), then one is cut off from the others and healed. Afterwards every region holds the
same items, each key shows its owner's last acknowledged write, and no region's
conflict log holds a single record: nothing was concurrent, so nothing was lost.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from atoll.drill.cluster import DrillCluster
from tests.support import (
    CREDENTIALS,
    NO_RETRIES,
    client,
    create_table,
    free_port,
    node_json,
    scan_all,
    wait_until,
)

THREADS_PER_REGION = 2
KEYS_PER_THREAD = 12
KILL_CYCLES = 30 if os.environ.get("ATOLL_LIVE_ACCEPTANCE") == "1" else 3
DOWN_S = 0.3
PARTITION_S = 3.0
CONVERGE_TIMEOUT_S = 60.0
MAX_OPS_PER_THREAD = 100_000  # bounded: the threads stop when told, long before this

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # 30 restarts on a busy machine


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[DrillCluster]:
    cluster = DrillCluster(tmp_path, 3, seed=4, ports=free_port)
    try:
        cluster.start_all()
        assert cluster.credentials is not None  # the admin key, for every region's clients
        for region in cluster.ids:
            CREDENTIALS[cluster.url(region)] = cluster.credentials
        create_table(client(cluster.url(cluster.ids[0])), "seq")
        assert wait_until(lambda: all("seq" in client(cluster.url(r)).list_tables()[
            "TableNames"] for r in cluster.ids), 20)
        yield cluster
    finally:
        cluster.close()


class Writer(threading.Thread):
    """One client writing its own keys in turn, each write after the previous answer."""

    def __init__(self, url: str, name: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        # one attempt per call: a retry's refusal would hide a made write (see NO_RETRIES)
        self.ddb = client(url, connect_timeout=1, read_timeout=5, retries=NO_RETRIES)
        self.name_prefix = name
        self.stop = stop
        self.last: dict[str, Any] = {}  # key -> the item its last acked write left
        self.unsure: set[str] = set()  # keys whose last write's outcome is unknown
        self.acked = 0

    def run(self) -> None:
        for n in range(MAX_OPS_PER_THREAD):
            if self.stop.is_set():
                return
            key = f"{self.name_prefix}-{n % KEYS_PER_THREAD}"
            try:
                after, whole = self._write(key, n)
            except EndpointConnectionError:
                time.sleep(0.05)  # never reached the node: nothing done
                continue
            except ClientError as exc:
                if exc.response["ResponseMetadata"]["HTTPStatusCode"] >= 500:
                    self.unsure.add(key)  # a server error: the write may have been made
                time.sleep(0.05)  # else refused (4xx): nothing done
                continue
            except Exception:  # the answer was lost: the write may or may not be there
                self.unsure.add(key)
                time.sleep(0.05)
                continue
            self.last[key] = after
            if whole:  # the item is known again whatever the unknown write did
                self.unsure.discard(key)
            self.acked += 1

    def _write(self, key: str, n: int) -> tuple[Any, bool]:
        """Write the key; the item it leaves, and whether that is known whole (a SET
        after a write of unknown outcome leaves an item only partly known)."""
        pk = {"pk": {"S": key}}
        kind = (n // KEYS_PER_THREAD) % 4
        before = self.last.get(key)
        if kind == 0 or (before is None and kind != 3):
            item = {**pk, "v": {"S": f"put {n}"}}
            self.ddb.put_item(TableName="seq", Item=item)
            return item, True
        if kind == 1:
            self.ddb.update_item(TableName="seq", Key=pk, UpdateExpression="SET v = :v",
                                 ExpressionAttributeValues={":v": {"S": f"set {n}"}})
            return {**(before or pk), "v": {"S": f"set {n}"}}, False
        if kind == 2:
            answer = self.ddb.update_item(
                TableName="seq", Key=pk, UpdateExpression="ADD c :one",
                ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
            return answer["Attributes"], True
        self.ddb.delete_item(TableName="seq", Key=pk)
        return None, True


def _conflicts(cluster: DrillCluster, region: str) -> list[Any]:
    answer = node_json(cluster.url(region), "/_atoll/conflicts")
    return list(answer["conflicts"] if isinstance(answer, dict) else answer)


def test_sequential_writers_make_no_conflict_through_sigkills_and_a_partition(
        cluster: DrillCluster) -> None:
    stop = threading.Event()
    writers = [Writer(cluster.url(region), f"{region}-{t}", stop)
               for region in cluster.ids for t in range(THREADS_PER_REGION)]
    for writer in writers:
        writer.start()
    try:
        for cycle in range(KILL_CYCLES):
            victim = cluster.ids[cycle % len(cluster.ids)]
            time.sleep(0.2)
            cluster.kill(victim)
            time.sleep(DOWN_S)
            cluster.start(victim)
            print(f"cycle {cycle}: {victim} restarted, "
                  f"{sum(w.acked for w in writers)} writes acknowledged", flush=True)
        cut = cluster.ids[0]
        cluster.rules.partition(cut, list(cluster.ids[1:]))
        cluster.network.apply()
        time.sleep(PARTITION_S)
        cluster.rules.clear()
        cluster.network.apply()
        time.sleep(1.0)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
    assert not any(writer.is_alive() for writer in writers)
    assert sum(writer.acked for writer in writers) > 20 * KILL_CYCLES  # the load was real

    def contents() -> dict[str, Any]:
        return {region: scan_all(client(cluster.url(region)), "seq") for region in cluster.ids}

    print("converging", flush=True)
    assert wait_until(lambda: len({repr(sorted(c.items())) for c in contents().values()}) == 1,
                      CONVERGE_TIMEOUT_S), "regions did not converge"
    final = contents()[cluster.ids[0]]
    for writer in writers:  # each key shows its owner's last acknowledged write
        for key, item in writer.last.items():
            if key not in writer.unsure:
                assert final.get(key) == item, (key, final.get(key), item)
    for region in cluster.ids:
        assert _conflicts(cluster, region) == [], region
