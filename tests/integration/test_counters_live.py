"""Concurrent increments from every region all count (issue 28's live acceptance).

Three real regions (peer links through the drill's fault proxies), client threads in
every region each doing `ADD c :1` on the same item through their own region (boto3,
one attempt per call: botocore's `max_attempts` counts retries, so NO_RETRIES), while
one region is SIGKILLed and restarted in the middle, or cut off from the others and
healed. `make test` runs 4 threads x 60 increments per region (every fault still lands
mid-run); ATOLL_LIVE_ACCEPTANCE=1 runs issue 28's 10 x 300. Both tests share one
cluster (its start is most of a small run's time), each on its own counter. Afterwards
every region's counter is exactly the number of acknowledged increments. An increment
whose request failed before it reached the node (connection refused: the region was
down) or that the node refused with a 4xx did nothing; one whose answer was lost when
the node died, or that was answered with a 5xx (a server error does not say the write
was not made), has an unknown outcome, so with a SIGKILL the counter lies between the
acknowledged increments and those plus the unknown ones (the test prints them, and the
5xx answers apart).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from atoll.drill.cluster import DrillCluster
from tests.support import CREDENTIALS, NO_RETRIES, client, create_table, free_port, wait_until

ACCEPTANCE = os.environ.get("ATOLL_LIVE_ACCEPTANCE") == "1"
THREADS_PER_REGION = 10 if ACCEPTANCE else 4
ADDS_PER_THREAD = 300 if ACCEPTANCE else 60
CONVERGE_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 240.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a busy machine: minutes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillCluster]:
    cluster = DrillCluster(tmp_path_factory.mktemp("counters"), 3, seed=3, ports=free_port)
    try:
        cluster.start_all()
        assert cluster.credentials is not None  # the admin key, for every region's clients
        for region in cluster.ids:
            CREDENTIALS[cluster.url(region)] = cluster.credentials
        ddb = client(cluster.url(cluster.ids[0]))
        create_table(ddb, "counters")
        assert wait_until(lambda: all("counters" in client(cluster.url(r)).list_tables()[
            "TableNames"] for r in cluster.ids), 20)
        yield cluster
    finally:
        cluster.close()


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked = self.unknown = self.refused = self.attempts = 0
        self.server_errors: dict[str, int] = {}  # 5xx answers (counted unknown) by message
        self.kinds: dict[str, int] = {}  # refusals and unknown outcomes by exception class
        self.by_region: dict[str, dict[str, int]] = {}  # outcomes by the region asked

    def add(self, field: str, server_error: str = "", kind: str = "", region: str = "") -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)
            self.attempts += 1
            outcomes = self.by_region.setdefault(region, {})
            outcomes[field] = outcomes.get(field, 0) + 1
            if server_error:
                self.server_errors[server_error] = self.server_errors.get(server_error, 0) + 1
            if kind:
                self.kinds[f"{field} {kind}"] = self.kinds.get(f"{field} {kind}", 0) + 1


def _key(name: str) -> dict[str, Any]:
    return {"pk": {"S": name}}


def _adder(url: str, tally: Tally, region: str, key: dict[str, Any]) -> None:
    # one attempt per call: a retry would re-send an increment whose answer was lost
    # with its node, and the retry's refusal would count a made increment as refused
    ddb = client(url, connect_timeout=1, read_timeout=10, retries=NO_RETRIES)
    for _ in range(ADDS_PER_THREAD):
        try:
            ddb.update_item(TableName="counters", Key=key, UpdateExpression="ADD c :one",
                            ExpressionAttributeValues={":one": {"N": "1"}})
        except EndpointConnectionError as exc:  # never reached a node: nothing was done
            tally.add("refused", kind=type(exc.kwargs.get("error")).__name__, region=region)
            time.sleep(0.05)
        except ClientError as exc:  # a server error: the write may have been made
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            assert status >= 500, exc  # an ADD 1 is never refused as a bad request
            tally.add("unknown", f"{status} {exc.response['Error'].get('Message', '')}"[:120],
                      region=region)
            time.sleep(0.05)
        except Exception as exc:  # sent, and the answer lost (the node died): unknown
            tally.add("unknown", kind=type(exc).__name__, region=region)
            time.sleep(0.05)
        else:
            tally.add("acked", region=region)


def _run(cluster: DrillCluster, key: dict[str, Any], fault: Callable[[], None],
         heal: Callable[[], None]) -> Tally:
    """All adders at once on the counter `key`; `fault` once a third of the attempts are
    made, `heal` at two thirds."""
    tally = Tally()
    threads = [threading.Thread(target=_adder, args=(cluster.url(region), tally, region, key),
                                daemon=True)
               for region in cluster.ids for _ in range(THREADS_PER_REGION)]
    for thread in threads:
        thread.start()
    total = len(threads) * ADDS_PER_THREAD
    assert wait_until(lambda: tally.attempts >= total // 3, RUN_TIMEOUT_S)
    fault()
    assert wait_until(lambda: tally.attempts >= 2 * total // 3, RUN_TIMEOUT_S)
    heal()
    for thread in threads:
        thread.join(RUN_TIMEOUT_S)
        assert not thread.is_alive()
    assert tally.attempts == total
    return tally


def _counters(cluster: DrillCluster, key: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for region in cluster.ids:
        item = client(cluster.url(region)).get_item(TableName="counters", Key=key,
                                                      ConsistentRead=True).get("Item") or {}
        values[region] = int(item["c"]["N"]) if "c" in item else None
    return values


def _settled(cluster: DrillCluster, key: dict[str, Any], tally: Tally) -> int:
    """The counter once every region shows the same value; it must be what was acked
    (plus at most the unknown outcomes)."""
    assert wait_until(lambda: len(set(_counters(cluster, key).values())) == 1
                      and None not in _counters(cluster, key).values(), CONVERGE_TIMEOUT_S), \
        _counters(cluster, key)
    value = next(iter(_counters(cluster, key).values()))
    print(f"counter {value}: acknowledged {tally.acked}, unknown {tally.unknown} (of which "
          f"5xx answers {tally.server_errors}), refused {tally.refused}; by kind {tally.kinds}; "
          f"by region {tally.by_region}")
    assert tally.acked <= value <= tally.acked + tally.unknown
    return value


def test_every_acknowledged_increment_counts_across_a_sigkill_and_restart(
        cluster: DrillCluster) -> None:
    victim, key = cluster.ids[1], _key("across-a-sigkill")
    tally = _run(cluster, key, lambda: cluster.kill(victim), lambda: cluster.start(victim))
    _settled(cluster, key, tally)
    assert tally.refused > 0  # the region was really down for a while


def test_every_acknowledged_increment_counts_across_a_partition(cluster: DrillCluster) -> None:
    cut, key = cluster.ids[2], _key("across-a-partition")

    def partition() -> None:
        cluster.rules.partition(cut, [r for r in cluster.ids if r != cut])
        cluster.network.apply()

    def heal() -> None:
        cluster.rules.clear()
        cluster.network.apply()

    tally = _run(cluster, key, partition, heal)
    assert tally.unknown == tally.refused == 0  # every region took every write
    assert _settled(cluster, key, tally) == tally.acked == len(cluster.ids) * (
        THREADS_PER_REGION * ADDS_PER_THREAD)
