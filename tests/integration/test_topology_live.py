"""The versioned topology on a live cluster (issue 6, DESIGN.md decision 8).

The 2025 DynamoDB outage, replayed: two planners compute plans with generations; the
delayed one applies its stale plan after the newer one is in place, then a cleanup
removes "old" plans — which in 2025 left the regional endpoint with no addresses. Here
the stale plan is refused (409), the empty plans are refused (400), every node keeps the
newer generation, and no observer ever sees a region without an endpoint. Then: accepted
updates spread to every node within seconds, survive a SIGKILL, and the replicator
follows endpoint changes and new regions without a restart."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from atoll.topology import ClusterConfig, topology_from_dict
from tests.support import (
    ATOLL,
    REPO,
    ClusterProcesses,
    client,
    create_table,
    free_port,
    node_json,
    node_post,
    wait_until,
)

REGIONS = ("us-east", "eu-west", "ap-south")
SPREAD_TIMEOUT_S = 5.0


def topology(url: str) -> dict[str, Any]:
    return dict(node_json(url, "/_atoll/topology"))


def post_topology(url: str, plan: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
    """POST a plan to a node: signed with the admin key on a client port, over mutual TLS
    as another region on a peer port (node-to-node spread)."""
    status, answer = node_post(url, "/_atoll/topology", plan)
    return status, dict(answer)


def every_node(cluster: ClusterProcesses) -> list[str]:
    """Each node's client and peer endpoint: the topology is served on both."""
    return [u for r in cluster.config.regions for u in (r.client_endpoint, r.peer_endpoint)]


def generations(cluster: ClusterProcesses) -> set[int]:
    return {topology(url)["generation"] for url in every_node(cluster)}


class Observer(threading.Thread):
    """Reads every node's topology over and over; records anything that would have
    stranded clients: a region with no endpoint, an empty topology, a generation going
    backwards."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.halt = threading.Event()
        self.observations = 0
        self.violations: list[str] = []
        self.last_generation: dict[str, int] = {}

    def run(self) -> None:
        while not self.halt.is_set():
            for url in self.urls:
                try:
                    seen = topology(url)
                except OSError:
                    continue  # a node being restarted
                self.observations += 1
                if not seen["regions"]:
                    self.violations.append(f"{url}: empty topology {seen}")
                for region in seen["regions"]:
                    if not region["client_endpoints"] or not region["peer_endpoints"]:
                        self.violations.append(f"{url}: region without endpoints {region}")
                if seen["generation"] < self.last_generation.get(url, 0):
                    self.violations.append(f"{url}: generation went back to {seen['generation']}")
                self.last_generation[url] = seen["generation"]
            time.sleep(0.02)


def test_the_2025_race_stale_and_empty_plans_never_apply(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, REGIONS).start()
    observer = Observer(every_node(cluster))
    observer.start()
    try:
        east, west, south = (cluster.url(r) for r in REGIONS)
        current = topology(east)
        assert current["generation"] == 1
        assert [r["id"] for r in current["regions"]] == list(REGIONS)

        # Both planners read generation 1 and plan the next ones: A (slow) plans N = 2,
        # B plans N + 1 = 3. Each moves us-east's client endpoints somewhere else.
        plan_a = json.loads(json.dumps(current))
        plan_a["generation"] = 2
        plan_a["regions"][0]["client_endpoints"] = [f"http://127.0.0.1:{free_port()}"]
        plan_b = json.loads(json.dumps(current))
        plan_b["generation"] = 3
        plan_b["regions"][0]["name"] = "dynamodb.us-east.atoll.test"
        plan_b["regions"][0]["client_endpoints"] = [east, f"http://127.0.0.1:{free_port()}"]

        # B applies first, at eu-west; it spreads to every node.
        started = time.monotonic()
        assert post_topology(west, plan_b) == (200, {"accepted": True, "generation": 3,
                                                    "changed": True})
        assert wait_until(lambda: generations(cluster) == {3}, SPREAD_TIMEOUT_S, 0.02), \
            "an accepted topology did not reach every node"
        spread_s = time.monotonic() - started
        assert spread_s < SPREAD_TIMEOUT_S

        # A, delayed, now applies its stale plan — everywhere it can.
        for url in every_node(cluster):
            status, answer = post_topology(url, plan_a)
            assert status == 409, (url, answer)
            assert answer["accepted"] is False and answer["current_generation"] == 3
            assert "stale" in answer["reason"]

        # The cleanup of "old plans": what is left for us-east is nothing.
        no_endpoints = json.loads(json.dumps(plan_b))
        no_endpoints["generation"] = 4
        no_endpoints["regions"][0]["client_endpoints"] = []
        no_endpoints["regions"][0]["peer_endpoints"] = []
        empty = {"cluster_id": current["cluster_id"], "generation": 5, "regions": []}
        for plan in (no_endpoints, empty):
            for url in (east, south):
                status, answer = post_topology(url, plan)
                assert status == 400, (url, answer)
                assert answer["accepted"] is False and answer["current_generation"] == 3
        assert post_topology(east, b"{not json")[0] == 400
        # the same plan again is harmless; another cluster's is refused
        assert post_topology(south, plan_b)[0] == 200
        assert post_topology(south, {**plan_b, "generation": 9, "cluster_id": "other"})[0] == 409

        time.sleep(1.5)  # a gossip round: nothing refused may have spread
        assert generations(cluster) == {3}
        for url in every_node(cluster):
            assert topology(url) == plan_b
        refused = node_json(east, "/_atoll/status")["topology"]["refused"]
        assert {r["kind"] for r in refused} >= {"stale", "invalid"}
        assert {r["generation"] for r in refused if r["kind"] == "stale"} == {2}

        # a node killed outright keeps the newest generation (not its config file's 1)
        cluster.nodes["ap-south"].kill()
        cluster.nodes["ap-south"].start()
        assert topology(south) == plan_b
        # an update accepted while a region is down reaches it when it returns
        cluster.nodes["ap-south"].kill()
        plan_c = json.loads(json.dumps(plan_b))
        plan_c["generation"] = 4
        plan_c["regions"][1]["name"] = "dynamodb.eu-west.atoll.test"
        assert post_topology(east, plan_c)[0] == 200
        cluster.nodes["ap-south"].start()
        assert topology(south)["generation"] >= 3
        assert wait_until(lambda: generations(cluster) == {4}, SPREAD_TIMEOUT_S, 0.05)
    finally:
        observer.halt.set()
        observer.join(timeout=5)
        cluster.stop()
    assert observer.observations > 50
    assert observer.violations == []
    print(f"topology spread to 3 regions (6 listeners) in {spread_s:.3f} s; "
          f"{observer.observations} observations, none empty")


def test_cli_get_and_set(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, ("us-east", "eu-west")).start()
    try:
        url = cluster.url("us-east")

        def atoll(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*ATOLL, "topology", *args, "--credentials",
                                   str(cluster.credentials_path), "--profile", "atoll"],
                                  cwd=REPO, capture_output=True, text=True, timeout=30)

        got = atoll("get", "--endpoint", url)
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["generation"] == 1
        plan = cluster.config.with_generation(7)
        path = tmp_path / "plan.toml"
        path.write_text(plan.to_toml())
        done = atoll("set", "--endpoint", url, "--file", str(path))
        assert done.returncode == 0 and "accepted: generation 7" in done.stdout, done
        stale = atoll("set", "--endpoint", url, "--file", str(path), "--generation", "6")
        assert stale.returncode == 1 and "refused (HTTP 409)" in stale.stderr, stale
        assert "stale" in stale.stderr
        (tmp_path / "empty.json").write_text(json.dumps(
            {"cluster_id": "atoll-test", "generation": 8, "regions": []}))
        empty = atoll("set", "--endpoint", url, "--file", str(tmp_path / "empty.json"))
        assert empty.returncode == 1 and "refused (HTTP 400)" in empty.stderr, empty
        assert wait_until(lambda: topology(cluster.url("eu-west"))["generation"] == 7,
                          SPREAD_TIMEOUT_S)
        # garbage is a 400 with a reason on either port, never a 500
        region = {"id": "us-east", "client_endpoints": ["http://[::1"],
                  "peer_endpoints": ["http://127.0.0.1:1"]}
        for body in (b"", b"[]", b'{"cluster_id": 1}', b"\xff\xfe",
                     b'{"cluster_id": "atoll-test", "generation": 1e3, "regions": []}',
                     b'{"cluster_id": "atoll-test", "generation": 99999999999999999999999}',
                     json.dumps({"cluster_id": "atoll-test", "generation": 9,
                                 "regions": [region]}).encode(),
                     json.dumps({"cluster_id": "atoll-test", "generation": 9,
                                 "regions": [{"id": "us-east"}] * 100}).encode()):
            for endpoint in (url, cluster.config.region("eu-west").peer_endpoint):
                status, answer = post_topology(endpoint, body)
                assert status == 400 and answer["reason"], (body, answer)
        assert generations(cluster) == {7}
    finally:
        cluster.stop()


class Forwarder(threading.Thread):
    """A TCP forwarder standing in for a moved peer endpoint; counts connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.connections = 0

    def run(self) -> None:
        while True:
            try:
                downstream, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            try:
                upstream = socket.create_connection(self.target)
            except OSError:  # the region behind it is down
                downstream.close()
                continue
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


def test_replication_follows_topology_changes_without_restart(tmp_path: Path) -> None:
    """us-east's peer endpoint moves (behind a forwarder, with a dead endpoint listed
    first): eu-west replicates through the new address. A third region joins: started
    with the newer topology that includes it, and that topology posted by the operator
    (admin key) to a region already in the cluster — the others accept peer calls only
    from regions of their current topology, so a region cannot add itself."""
    cluster = ClusterProcesses(tmp_path, REGIONS)
    # us-east and eu-west start from a two-region config; ap-south from generation 2
    two = ClusterConfig(cluster.config.cluster_id, cluster.config.regions[:2], 1)
    (tmp_path / "two.toml").write_text(two.to_toml())
    for region in ("us-east", "eu-west"):
        args = cluster.nodes[region].args
        args[args.index("--config") + 1] = str(tmp_path / "two.toml")
    forwarder = Forwarder(cluster.config.region("us-east").peer_address)
    forwarder.start()
    try:
        for region in ("us-east", "eu-west"):
            cluster.nodes[region].start()
        cluster.wait_for_key({r: cluster.nodes[r] for r in ("us-east", "eu-west")})
        east, west = client(cluster.url("us-east")), client(cluster.url("eu-west"))
        create_table(east, "moves")
        assert wait_until(lambda: "moves" in west.list_tables()["TableNames"], 10)

        moved = two.to_dict()
        moved["generation"] = 2
        moved["regions"][0]["peer_endpoints"] = [f"http://127.0.0.1:{free_port()}",
                                                 forwarder.url]
        assert post_topology(cluster.url("eu-west"), moved)[0] == 200
        # the long poll in flight finishes on the old address; the next pull tries the
        # dead endpoint, then the forwarder
        assert wait_until(lambda: node_json(cluster.url("eu-west"), "/_atoll/status")
                          ["replication"]["peers"]["us-east"]["endpoint"] == forwarder.url
                          and forwarder.connections >= 1, 10), \
            "eu-west never used the moved peer endpoint"
        east.put_item(TableName="moves", Item={"pk": {"S": "via-forwarder"}})
        assert wait_until(lambda: "Item" in west.get_item(
            TableName="moves", Key={"pk": {"S": "via-forwarder"}}), 10)

        # ap-south joins with generation 3 (its config says 2: the newer stored one wins
        # on the others, so it must come with a higher generation than theirs)
        joined = cluster.config.to_dict()
        joined["generation"] = 3
        joined["regions"][0]["peer_endpoints"] = [forwarder.url]
        cluster.config_path.write_text(topology_from_dict(joined).to_toml())
        cluster.nodes["ap-south"].start()
        time.sleep(1.5)  # a gossip round: its own pushes are refused (not a member yet)
        assert topology(cluster.url("us-east"))["generation"] == 2
        assert post_topology(cluster.url("us-east"), joined)[0] == 200
        cluster.wait_for_key({"ap-south": cluster.nodes["ap-south"]})
        assert wait_until(lambda: generations(cluster) == {3}, SPREAD_TIMEOUT_S, 0.05)
        south = client(cluster.url("ap-south"))
        assert wait_until(lambda: "moves" in south.list_tables()["TableNames"], 10)
        south.put_item(TableName="moves", Item={"pk": {"S": "from-south"}})
        for ddb in (east, west):
            assert wait_until(lambda ddb=ddb: "Item" in ddb.get_item(
                TableName="moves", Key={"pk": {"S": "from-south"}}), 10)
        status = node_json(cluster.url("us-east"), "/_atoll/status")
        assert set(status["replication"]["peers"]) == {"eu-west", "ap-south"}

        # ap-south leaves: the others stop pulling from it
        left = dict(joined, generation=4, regions=joined["regions"][:2])
        assert post_topology(cluster.url("us-east"), left)[0] == 200
        assert wait_until(lambda: set(node_json(cluster.url("eu-west"), "/_atoll/status")
                                      ["replication"]["peers"]) == {"us-east"}, SPREAD_TIMEOUT_S)
    finally:
        forwarder.close()
        cluster.stop()
