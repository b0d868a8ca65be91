"""The topology model and its compare-and-set rule (DESIGN.md decision 8): a stale or
empty plan can never be applied, and no region is ever left without an endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.errors import ValidationError
from atoll.topology import (
    Accept,
    ClusterConfig,
    RegionConfig,
    Reject,
    TopologyError,
    decide,
    topology_from_dict,
)
from atoll.topology.config import parse_cluster_config, parse_topology_text


def wire(generation: int = 3, cluster_id: str = "atoll-local", **region_overrides: Any
         ) -> dict[str, Any]:
    east = {"id": "us-east", "name": None, "client_endpoints": ["http://127.0.0.1:8000"],
            "peer_endpoints": ["http://127.0.0.1:9000"]}
    west = {"id": "eu-west", "name": "dynamodb.eu-west.atoll.test",
            "client_endpoints": ["http://127.0.0.1:8001", "http://10.0.0.2:8001"],
            "peer_endpoints": ["http://127.0.0.1:9001"]}
    east.update(region_overrides)
    return {"cluster_id": cluster_id, "generation": generation, "regions": [east, west]}


def topo(generation: int = 3, **kw: Any) -> ClusterConfig:
    return topology_from_dict(wire(generation, **kw))


# --- decoding and the wire form -----------------------------------------------------------

def test_wire_form_round_trips() -> None:
    t = topo()
    assert t.problems() == []
    assert t.to_dict() == wire()
    assert topology_from_dict(t.to_dict()) == t
    west = t.region("eu-west")
    assert west.client_endpoint == "http://127.0.0.1:8001"  # the first one is preferred
    assert west.client_address == ("127.0.0.1", 8001)
    assert west.name == "dynamodb.eu-west.atoll.test"


def test_old_single_endpoint_config_is_still_accepted() -> None:
    config = parse_cluster_config({"cluster_id": "c", "generation": 2, "regions": [
        {"id": "a", "client_endpoint": "http://127.0.0.1:1", "peer_endpoint": "http://127.0.0.1:2"},
        {"id": "b", "client_endpoint": "http://127.0.0.1:3",
         "peer_endpoints": ["http://127.0.0.1:4", "http://127.0.0.1:5"]}]})
    assert config.region("a").client_endpoints == ("http://127.0.0.1:1",)
    assert config.region("b").peer_endpoints == ("http://127.0.0.1:4", "http://127.0.0.1:5")
    # positional construction with single strings, as older callers do
    assert RegionConfig("a", "http://127.0.0.1:1", "http://127.0.0.1:2") == config.region("a")


def test_toml_round_trips_with_names_and_endpoint_lists() -> None:
    t = topo()
    again = parse_topology_text(t.to_toml(), "cluster.toml")
    assert again == t
    assert parse_topology_text(t.to_toml()) == t  # told apart from JSON by content
    import orjson
    assert parse_topology_text(orjson.dumps(t.to_dict()).decode()) == t


@pytest.mark.parametrize("data", [
    [], "x", {"generation": 1, "regions": []},  # no cluster_id
    {"cluster_id": "c", "generation": "2", "regions": []},
    {"cluster_id": "c", "generation": True, "regions": []},
    {"cluster_id": "c", "regions": {"id": "a"}},
    {"cluster_id": "c", "regions": ["a"]},
    {"cluster_id": "c", "regions": [{"id": 7}]},
    {"cluster_id": "c", "regions": [{"id": "a", "client_endpoints": "http://h:1"}]},
    {"cluster_id": "c", "regions": [{"id": "a", "client_endpoints": [1]}]},
    {"cluster_id": "c", "regions": [{"id": "a", "name": 5}]},
])
def test_malformed_shapes_do_not_decode(data: Any) -> None:
    with pytest.raises(TopologyError):
        topology_from_dict(data)


def test_toml_config_errors_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="no regions"):
        parse_cluster_config({"cluster_id": "c", "generation": 1, "regions": []})
    with pytest.raises(ValidationError, match="duplicate region id"):
        parse_cluster_config(wire(**{"id": "eu-west"}))


# --- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "problem"), [
    ({"cluster_id": "atoll-local", "generation": 4, "regions": []}, "no regions"),
    (wire(client_endpoints=[]), "us-east has no client endpoint"),
    (wire(peer_endpoints=[]), "us-east has no peer endpoint"),
    (wire(client_endpoints=["dynamodb.us-east.atoll.test"]), "http://HOST:PORT"),
    (wire(client_endpoints=["http://127.0.0.1"]), "http://HOST:PORT"),
    (wire(client_endpoints=["http://127.0.0.1:99999"]), "http://HOST:PORT"),
    (wire(client_endpoints=["https://127.0.0.1:8000/x"]), "http://HOST:PORT"),
    (wire(client_endpoints=["http://127.0.0.1:8001"]), "listed by regions"),
    (wire(peer_endpoints=["http://127.0.0.1:9000", "http://127.0.0.1:9000"]), "duplicate peer"),
    (wire(id="eu-west"), "duplicate region id"),
    (wire(id="US East"), "bad region id"),
    (wire(name="not a name!"), "bad DNS name"),
    (wire(generation=0), "generation must be a positive integer"),
    (wire(generation=-3), "generation must be a positive integer"),
    (wire(generation=2**63), "generation must be a positive integer"),
    (wire(cluster_id=""), "cluster_id"),
])
def test_invalid_topologies_name_their_problem(data: dict[str, Any], problem: str) -> None:
    problems = topology_from_dict(data).problems()
    assert any(problem in p for p in problems), problems


# --- the compare-and-set rule ---------------------------------------------------------------

def test_higher_valid_generation_is_accepted() -> None:
    outcome = decide(topo(3), topo(4, client_endpoints=["http://127.0.0.1:8100"]))
    assert isinstance(outcome, Accept) and outcome.changed
    assert outcome.topology.generation == 4


def test_first_topology_is_accepted_when_valid() -> None:
    assert isinstance(decide(None, topo(1)), Accept)
    assert isinstance(decide(None, topo(1, client_endpoints=[])), Reject)


@pytest.mark.parametrize(("current", "proposed", "kind"), [
    (topo(4), topo(3), "stale"),                                       # the delayed plan
    (topo(4), topo(4, client_endpoints=["http://127.0.0.1:8100"]), "conflict"),
    (topo(4), topo(5, cluster_id="someone-else"), "other_cluster"),
    (topo(4), topo(5, client_endpoints=[]), "invalid"),                # the cleanup
    (topo(4), topology_from_dict({"cluster_id": "atoll-local", "generation": 9,
                                  "regions": []}), "invalid"),
    (topo(4), topology_from_dict({"cluster_id": "atoll-local", "generation": 1,
                                  "regions": []}), "invalid"),          # invalid beats stale
])
def test_stale_foreign_conflicting_and_invalid_plans_are_refused(
        current: ClusterConfig, proposed: ClusterConfig, kind: str) -> None:
    outcome = decide(current, proposed)
    assert isinstance(outcome, Reject), outcome
    assert outcome.kind == kind
    assert outcome.reason


def test_the_same_topology_again_is_a_no_op() -> None:
    outcome = decide(topo(4), topo(4))
    assert isinstance(outcome, Accept) and not outcome.changed


def test_the_2025_race_never_leaves_a_region_without_endpoints() -> None:
    """Planner B applies generation N+1, the delayed planner A then applies its plan N,
    then a cleanup deletes 'old' plans — at every step the node's topology is valid and
    at N+1."""
    node: ClusterConfig = topo(1)
    plan_a = topo(2, client_endpoints=["http://127.0.0.1:8010"])
    plan_b = topo(3, client_endpoints=["http://127.0.0.1:8020"])
    cleanup = topology_from_dict({"cluster_id": "atoll-local", "generation": 4,
                                  "regions": [{"id": "us-east", "client_endpoints": [],
                                               "peer_endpoints": []}]})
    for plan in (plan_b, plan_a, cleanup):
        outcome = decide(node, plan)
        if isinstance(outcome, Accept):
            node = outcome.topology
        assert node.problems() == []
        assert all(r.client_endpoints and r.peer_endpoints for r in node.regions)
    assert node == plan_b


# --- start-up: the stored topology versus the config file --------------------------------

def test_a_node_starts_from_the_newer_of_stored_and_configured() -> None:
    from atoll.topology.update import start_topology

    stored, configured = topo(5), topo(1)
    assert start_topology(stored, configured)[0] == stored        # the restart case
    assert start_topology(topo(1), topo(2))[0] == topo(2)         # the file was updated
    assert start_topology(None, configured)[0] == configured
    assert start_topology(topo(5, client_endpoints=[]), configured)[0] == configured
    assert start_topology(topo(3), topo(3, client_endpoints=["http://127.0.0.1:1"]))[0] \
        == topo(3)                                                 # first accepted stays
    with pytest.raises(ValueError, match="another|cluster"):
        start_topology(topo(5, cluster_id="other"), configured)


def test_topology_file_round_trips_and_ignores_garbage(tmp_path: Any) -> None:
    from atoll.node.topology import TopologyFile

    file = TopologyFile(tmp_path / "t.json")
    assert file.load() is None
    file.save(topo(7))
    assert file.load() == topo(7)
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no temporary left behind
    (tmp_path / "t.json").write_text("{truncated")
    assert file.load() is None


def test_atoll_cluster_writes_a_generation_that_applies(tmp_path: Any) -> None:
    from atoll.cli.cluster import _next_generation
    from atoll.node.topology import TopologyFile, topology_file_path
    from atoll.topology import local_cluster

    two = local_cluster(["us-east", "eu-west"])
    assert _next_generation(two, tmp_path).generation == 1
    for region in ("us-east", "eu-west"):
        TopologyFile(topology_file_path(tmp_path / region, region)).save(two.with_generation(4))
    assert _next_generation(two, tmp_path).generation == 4            # unchanged layout
    three = local_cluster(["us-east", "eu-west", "ap-south"])
    assert _next_generation(three, tmp_path).generation == 5          # a region joins
