"""The failover rules of atoll.client.routing, without a network: which requests may be
sent twice, the order regions are tried in, how health is judged, the topology cache
(never lowered, found by seed when no seed answers) and one request's way through the
regions (`Failover`) with a fake clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atoll.client.cache import TopologyCache
from atoll.client.routing import RECOVERY_PROBES, DiscoveryError, Outcome, Router
from atoll.client.safety import retry_safe
from atoll.topology.model import ClusterConfig, RegionConfig

REGIONS = ("us-east", "eu-west", "ap-south")


def topology(generation: int = 1, regions: tuple[str, ...] = REGIONS,
             cluster: str = "atoll-local") -> ClusterConfig:
    return ClusterConfig(cluster, tuple(
        RegionConfig(r, f"http://127.0.0.1:{8000 + i}", f"http://127.0.0.1:{9000 + i}")
        for i, r in enumerate(regions)), generation)


class Seeds:
    """A fake network: GET /_atoll/topology per seed (None: does not answer)."""

    def __init__(self, answers: dict[str, ClusterConfig | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def fetch(self, url: str, _timeout_s: float) -> Any:
        seed = url.removesuffix("/_atoll/topology")
        self.asked.append(seed)
        answer = self.answers.get(seed)
        if answer is None:
            raise ConnectionRefusedError(f"{seed} refused")
        return answer.to_dict()


def router(tmp_path: Path, answers: dict[str, ClusterConfig | None] | None = None,
           preference: tuple[str, ...] = REGIONS, **kwargs: Any) -> Router:
    seeds = Seeds(answers if answers is not None else {"http://seed-a": topology()})
    return Router(list(seeds.answers), preference, fetch=seeds.fetch, start=False,
                  cache_dir=tmp_path / "cache", **kwargs)


# --- which requests may be sent twice --------------------------------------------------
SAFE = [
    ("GetItem", {}), ("Query", {}), ("Scan", {}), ("BatchGetItem", {}),
    ("TransactGetItems", {}), ("DescribeTable", {}), ("ListTables", {}),
    ("PutItem", {"Item": {}}),
    ("DeleteItem", {"Key": {}}),
    ("PutItem", {"Item": {}, "ReturnValues": "NONE"}),
    ("UpdateItem", {"UpdateExpression": "SET a = :a, b = :b REMOVE c"}),
    ("BatchWriteItem", {}),
    ("TransactWriteItems", {"TransactItems": [
        {"Put": {"Item": {}}}, {"Delete": {"Key": {}}},
        {"Update": {"UpdateExpression": "SET a = :a"}}]}),
]
UNSAFE = [
    ("PutItem", {"ConditionExpression": "attribute_not_exists(pk)"}),  # fails the 2nd time
    ("PutItem", {"ReturnValues": "ALL_OLD"}),  # would return the 1st attempt's item
    ("DeleteItem", {"ConditionExpression": "n = :n"}),
    ("UpdateItem", {"UpdateExpression": "SET a = a + :one"}),
    ("UpdateItem", {"UpdateExpression": "SET a = :a - b"}),
    ("UpdateItem", {"UpdateExpression": "ADD c :one"}),
    ("UpdateItem", {"UpdateExpression": "DELETE s :x"}),
    ("UpdateItem", {"UpdateExpression": "SET l = list_append(l, :x)"}),
    ("UpdateItem", {"UpdateExpression": "SET a = :a", "ReturnValues": "UPDATED_OLD"}),
    ("UpdateItem", {"AttributeUpdates": {}}),
    ("TransactWriteItems", {"ClientRequestToken": "t"}),  # a token is per region
    ("TransactWriteItems", {"TransactItems": [
        {"Put": {"Item": {}}}, {"ConditionCheck": {"ConditionExpression": "x = :x"}}]}),
    ("TransactWriteItems", {"TransactItems": [{"Update": {"UpdateExpression": "ADD n :one"}}]}),
    ("CreateTable", {}), ("DeleteTable", {}), ("UpdateTable", {}),
]


@pytest.mark.parametrize(("operation", "request_"), SAFE)
def test_safe_to_send_again(operation: str, request_: dict[str, Any]) -> None:
    assert retry_safe(operation, request_)


@pytest.mark.parametrize(("operation", "request_"), UNSAFE)
def test_not_safe_to_send_again(operation: str, request_: dict[str, Any]) -> None:
    assert not retry_safe(operation, request_)


# --- order and health ------------------------------------------------------------------
def test_preferred_regions_first_then_the_rest_then_the_unhealthy(tmp_path: Path) -> None:
    r = router(tmp_path, preference=("eu-west",))
    assert [c[0] for c in r.candidates()] == ["eu-west", "us-east", "ap-south"]
    r.mark_failed("eu-west", "refused")
    assert [c[0] for c in r.candidates()] == ["us-east", "ap-south", "eu-west"]
    assert r.candidates()[0] == ("us-east", "http://127.0.0.1:8000")


def test_a_failed_region_needs_good_probes_in_a_row_to_come_back(tmp_path: Path) -> None:
    r = router(tmp_path)
    r.record_probe("us-east", "timed out", 500)
    assert r.candidates()[0][0] == "eu-west"
    for _ in range(RECOVERY_PROBES - 1):
        r.record_probe("us-east", None, 1.0)
    r.record_probe("us-east", "timed out", 500)  # flapping: the count starts again
    for _ in range(RECOVERY_PROBES - 1):
        r.record_probe("us-east", None, 1.0)
    assert r.candidates()[0][0] == "eu-west"
    r.record_probe("us-east", None, 1.0)
    assert r.candidates()[0][0] == "us-east"
    health = r.snapshot()["regions"]["us-east"]
    assert health["healthy"] and health["probe_failures"] == 2
    assert health["consecutive_failures"] == 0 and health["last_latency_ms"] == 1.0


def test_probes_go_to_each_region_and_are_timed(tmp_path: Path) -> None:
    asked: list[str] = []

    def probe(url: str, timeout_s: float) -> None:
        asked.append(url)
        if "8001" in url:
            raise TimeoutError("hung")

    r = router(tmp_path, probe=probe)
    r.probe_all()
    assert asked == [f"http://127.0.0.1:{p}/health" for p in (8000, 8001, 8002)]
    regions = r.snapshot()["regions"]
    assert not regions["eu-west"]["healthy"] and "hung" in regions["eu-west"]["last_error"]
    assert regions["us-east"]["healthy"] and regions["us-east"]["last_latency_ms"] is not None


# --- discovery and the cache -----------------------------------------------------------
def test_seeds_are_tried_in_order_and_the_topology_is_cached_by_cluster(tmp_path: Path) -> None:
    seeds = Seeds({"http://dead": None, "http://alive": topology(3)})
    r = Router(list(seeds.answers), fetch=seeds.fetch, start=False, cache_dir=tmp_path)
    assert seeds.asked == ["http://dead", "http://alive"]
    assert r.topology.generation == 3
    saved = json.loads((tmp_path / "atoll-local.json").read_text())
    assert saved["topology"]["generation"] == 3 and "http://alive" in saved["seeds"]


def test_total_discovery_failure_uses_the_last_good_topology(tmp_path: Path) -> None:
    router(tmp_path, {"http://seed-a": topology(4)})  # caches generation 4
    # restart: no seed answers (DNS gone, every seed down); found by its seed
    again = router(tmp_path, {"http://seed-a": None})
    assert again.topology.generation == 4
    with pytest.raises(DiscoveryError):
        router(tmp_path, {"http://another-cluster-seed": None})


def test_a_seed_with_an_older_generation_does_not_win_over_the_cache(tmp_path: Path) -> None:
    router(tmp_path, {"http://seed-a": topology(5)})
    stale = router(tmp_path, {"http://seed-a": topology(2, REGIONS[:1])})
    assert stale.topology.generation == 5 and len(stale.topology.regions) == 3
    cached = TopologyCache(["http://seed-a"], directory=tmp_path / "cache").load("atoll-local")
    assert cached is not None and cached.generation == 5


def test_the_cache_is_never_replaced_by_a_lower_generation(tmp_path: Path) -> None:
    cache = TopologyCache(["http://s"], tmp_path / "t.json")
    cache.save(topology(7))
    cache.save(topology(6, REGIONS[:1]))  # e.g. another process that knew less
    loaded = cache.load("atoll-local")
    assert loaded is not None and loaded.generation == 7 and len(loaded.regions) == 3
    assert not list(tmp_path.glob(".t.json*")), "no temporary file left behind"


def test_the_refresh_adopts_only_a_newer_topology_of_the_same_cluster(tmp_path: Path) -> None:
    answers: dict[str, ClusterConfig | None] = {"http://seed-a": topology(2)}
    seeds = Seeds(answers)
    r = Router(["http://seed-a"], fetch=seeds.fetch, start=False, cache_dir=tmp_path)
    for region in r.topology.regions:  # the regions themselves do not answer here
        answers[region.client_endpoint] = None
    answers["http://seed-a"] = topology(1, REGIONS[:1])
    assert not r.refresh_topology() and r.topology.generation == 2  # stale plan refused
    answers["http://seed-a"] = topology(9, cluster="another")
    assert not r.refresh_topology() and r.topology.cluster_id == "atoll-local"
    answers["http://seed-a"] = topology(3, ("us-east", "eu-west", "ap-south", "sa-east"))
    assert r.refresh_topology() and r.topology.generation == 3
    assert "sa-east" in r.snapshot()["regions"]
    assert json.loads((tmp_path / "atoll-local.json").read_text())["topology"]["generation"] == 3


# --- one request's way through the regions ---------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _body(request: dict[str, Any]) -> bytes:
    return json.dumps(request).encode()


def test_a_request_that_never_reached_a_region_always_goes_on(tmp_path: Path) -> None:
    r = router(tmp_path)
    trip = r.failover("UpdateItem", _body({"UpdateExpression": "ADD n :one"}))
    tried = []
    for region, _endpoint in trip:
        tried.append(region)
        if region != "ap-south":
            assert trip.failed(region, Outcome.NOT_SENT, "refused")
            continue
        trip.served(region)
        break
    assert tried == list(REGIONS)
    m = r.snapshot()
    assert m["failovers"] == 1 and m["retries"] == 2 and m["route"] == "ap-south"
    assert r.last_served.region == "ap-south"


@pytest.mark.parametrize("outcome", [Outcome.NO_ANSWER, Outcome.SERVER_ERROR, Outcome.ABANDONED])
def test_a_write_that_may_have_applied_is_not_sent_again_unless_safe(
        tmp_path: Path, outcome: Outcome) -> None:
    r = router(tmp_path)
    unsafe = r.failover("PutItem", _body({"ConditionExpression": "attribute_not_exists(pk)"}))
    assert not unsafe.failed("us-east", outcome, "reset")
    safe = r.failover("PutItem", _body({"Item": {}}))
    assert safe.failed("eu-west", outcome, "reset")
    read = r.failover("GetItem", b"not json at all")  # reads are safe whatever the body
    assert read.failed("ap-south", outcome, "reset")
    assert not r.failover("PutItem", b"{broken").failed("us-east", outcome, "reset")


def test_the_budget_bounds_the_attempts(tmp_path: Path) -> None:
    r = router(tmp_path)
    clock = Clock()
    trip = r.failover("GetItem", b"{}", budget_s=5.0, clock=clock)
    tried = []
    for region, _endpoint in trip:
        tried.append(region)
        assert trip.remaining_s() == pytest.approx(5.0 - 4.0 * (len(tried) - 1))
        clock.now += 4.0  # each attempt waits 4 s
        trip.failed(region, Outcome.NO_ANSWER, "timeout")
    assert tried == ["us-east", "eu-west"]  # the third would start after the budget
    trip.surfaced()
    assert r.snapshot()["errors_surfaced"] == 1 and r.last_served.region is None


def test_a_wait_is_abandoned_only_for_new_failures_and_safe_requests(tmp_path: Path) -> None:
    r = router(tmp_path)
    r.record_probe("us-east", "timed out", 500)  # unhealthy before: last resort
    read = r.failover("GetItem", b"{}")
    write = r.failover("UpdateItem", _body({"UpdateExpression": "ADD n :one"}))
    assert read.candidates[-1][0] == "us-east"
    for trip in (read, write):
        for region, _endpoint in trip:
            if region == "us-east":
                break
    assert not read.abandon("us-east")  # it was already failing when we chose it
    r.record_probe("us-east", "timed out", 500)  # fails again while we wait
    assert read.abandon("us-east")
    assert not write.abandon("us-east")  # may have applied: wait for the answer


# --- the proxy command -----------------------------------------------------------------
def test_the_proxy_command_refuses_to_start_without_any_topology(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from atoll.cli.main import cli

    result = CliRunner().invoke(cli, ["proxy", "--seed", "http://127.0.0.1:1",
                                      "--cache", str(tmp_path / "none.json")])
    assert result.exit_code == 1 and "no seed answered" in result.output
    result = CliRunner().invoke(cli, ["proxy", "--seed", "http://127.0.0.1:1",
                                      "--listen", "8100"])
    assert result.exit_code == 2 and "expected HOST:PORT" in result.output


def test_traffic_returns_only_once_the_region_has_caught_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("atoll.client.routing.CATCH_UP_WAIT_S", 0.05)
    vectors = {"http://127.0.0.1:8001": {"us-east": [5, 1], "eu-west": [90, 2]},
               "http://127.0.0.1:8000": {"us-east": [5, 1], "eu-west": [70, 2]}}
    seeds = Seeds({"http://seed-a": topology()})

    def fetch(url: str, timeout_s: float) -> Any:
        if url.endswith("/_atoll/status"):
            return {"replication": {"cursor_vector": vectors[url.removesuffix("/_atoll/status")]}}
        return seeds.fetch(url, timeout_s)

    r = Router(["http://seed-a"], REGIONS, fetch=fetch, probe=lambda _u, _t: None, start=False,
               cache_dir=tmp_path / "cache")
    r.record_probe("us-east", "refused", 1.0)
    r.mark_served("eu-west", "us-east")  # the route is eu-west now
    us_east = r.topology.region("us-east")
    assert r.catch_up_check(us_east) is not None  # 70 < 90 of eu-west's own changes
    for _ in range(RECOVERY_PROBES + 1):
        r.probe_region(us_east)
    assert r.candidates()[0][0] == "eu-west"
    vectors["http://127.0.0.1:8000"]["eu-west"] = [90, 2]  # it caught up
    assert r.catch_up_check(us_east) is None
    for _ in range(RECOVERY_PROBES):
        r.probe_region(us_east)
    assert r.candidates()[0][0] == "us-east"
