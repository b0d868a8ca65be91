"""Prometheus `/metrics` of a live 3-region cluster under load (issue 30): every family
is there with sane values, and replication lag rises while a region's changes cannot
leave it (its peers' pulls from it are cut) and falls back once the link heals.

Peer links run through the drill's fault proxies (atoll.drill.faultproxy): each region
advertises a proxy as its peer endpoint and listens behind it (`--peer-listen`); links
are mutual TLS, and each region calls its peers from a loopback address of its own
(`--peer-source`), by which the proxies tell who is calling."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from atoll.drill.faultproxy import FaultNetwork, FaultRules, LinkFault
from atoll.topology.config import ClusterConfig, RegionConfig
from tests.support import (
    CREDENTIALS,
    ServerProcess,
    client,
    create_table,
    free_port,
    make_certs,
    node_json,
    read_credentials,
    sign,
    start_together,
    wait_until,
)

REGIONS = ("us-east", "eu-west", "ap-south")
MAX_WRITES = 20_000


class ProxiedCluster:
    """Three `atoll serve` processes whose peer links pass through fault proxies."""

    def __init__(self, root: Path) -> None:
        self.real = {r: free_port() for r in REGIONS}
        self.config = ClusterConfig("metrics-test", tuple(
            RegionConfig(r, f"http://127.0.0.1:{free_port()}", f"https://127.0.0.1:{free_port()}")
            for r in REGIONS))
        root.mkdir(parents=True, exist_ok=True)
        config_path = root / "cluster.toml"
        config_path.write_text(self.config.to_toml())
        certs = make_certs(root / "certs", self.config.cluster_id, REGIONS)
        self.credentials = root / "credentials"
        self.rules = FaultRules()
        self.network = FaultNetwork(self.rules)
        self.nodes: dict[str, ServerProcess] = {}
        for index, region in enumerate(self.config.regions):
            source = f"127.0.0.{10 + index}"
            self.network.add(region.id, region.peer_address, ("127.0.0.1", self.real[region.id]),
                             source)
            node = ServerProcess(data_dir=root / region.id, bootstrap=False, extra=[
                "--config", str(config_path), "--region", region.id, "--certs", str(certs),
                "--peer-listen", f"127.0.0.1:{self.real[region.id]}", "--peer-source", source])
            if index == 0:
                node.args += ["--admin-credentials", str(self.credentials)]
            node.credentials_path = self.credentials
            node.port = region.client_address[1]
            node.args[node.args.index("--port") + 1] = str(node.port)
            self.nodes[region.id] = node

    def start(self) -> ProxiedCluster:
        start_together(self.nodes.values())
        key = read_credentials(self.credentials)
        for node in self.nodes.values():
            CREDENTIALS[node.url] = key
        assert wait_until(lambda: all(_accepts(n.url) for n in self.nodes.values()), 20)
        return self

    def url(self, region: str) -> str:
        return self.nodes[region].url

    def close(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.stop()
        self.network.close()


def _accepts(url: str) -> bool:
    try:
        node_json(url, "/_atoll/status")
    except OSError:
        return False
    return True


class Load(threading.Thread):
    """Puts, gets and failing conditional puts against one region until stopped."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(daemon=True)
        self.ddb = client(url, connect_timeout=1, read_timeout=3)
        self.name = name
        self.halt = threading.Event()
        self.done = 0

    def run(self) -> None:
        for n in range(MAX_WRITES):
            if self.halt.is_set():
                return
            key = {"pk": {"S": f"{self.name}-{n % 50}"}}
            try:
                self.ddb.put_item(TableName="metrics", Item={**key, "n": {"N": str(n)}})
                self.ddb.get_item(TableName="metrics", Key=key)
                if n % 10 == 0:  # an existing key: ConditionalCheckFailedException
                    self.ddb.put_item(TableName="metrics", Item=key,
                                      ConditionExpression="attribute_not_exists(pk)")
            except Exception:
                time.sleep(0.02)
            self.done += 1


def scrape(url: str) -> dict[str, Any]:
    """{family name: {tuple of sorted label items: value}} plus the families' types."""
    request = urllib.request.Request(url + "/metrics", headers=sign(url + "/metrics", "GET"))
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    found: dict[str, Any] = {"_types": {}}
    for family in text_string_to_metric_families(text):
        found["_types"][family.name] = family.type
        samples = found.setdefault(family.name, {})
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics: dict[str, Any], family: str, sample: str | None = None, **labels: str
          ) -> float:
    key = (sample or family, tuple(sorted(labels.items())))
    return float(metrics[family][key])


def test_metrics_of_a_live_cluster_and_lag_while_a_region_is_cut_off(tmp_path: Path) -> None:
    cluster = ProxiedCluster(tmp_path).start()
    loads: list[Load] = []
    try:
        create_table(client(cluster.url("us-east")), "metrics")
        assert wait_until(lambda: all("metrics" in client(cluster.url(r)).list_tables()["TableNames"]
                                      for r in REGIONS), 10)
        loads = [Load(cluster.url(r), r) for r in ("us-east", "ap-south")]
        for load in loads:
            load.start()
        assert wait_until(lambda: all(load.done > 100 for load in loads), 20)
        before = scrape(cluster.url("us-east"))
        applied = ("atoll_replication_applied_records", "atoll_replication_applied_records_total")
        # until us-east has applied more of ap-south's load since `before`
        assert wait_until(lambda: value(scrape(cluster.url("us-east")), *applied, peer="ap-south")
                          > value(before, *applied, peer="ap-south"), 20, 0.25)
        m = scrape(cluster.url("us-east"))

        # requests by operation and outcome; latency histograms by operation
        assert m["_types"]["atoll_requests"] == "counter"
        assert value(m, "atoll_requests", "atoll_requests_total", operation="PutItem",
                     outcome="success") > 100
        assert value(m, "atoll_requests", "atoll_requests_total", operation="PutItem",
                     outcome="ConditionalCheckFailedException") > 5
        gets = value(m, "atoll_requests", "atoll_requests_total", operation="GetItem",
                     outcome="success")
        assert m["_types"]["atoll_request_duration_seconds"] == "histogram"
        hist = "atoll_request_duration_seconds"
        assert value(m, hist, hist + "_count", operation="GetItem") == gets
        assert value(m, hist, hist + "_bucket", operation="GetItem", le="+Inf") == gets
        assert value(m, hist, hist + "_bucket", operation="GetItem", le="0.1") > 0.9 * gets
        assert 0 < value(m, hist, hist + "_sum", operation="GetItem") < gets * 0.1
        # replication: lag per origin, state, apply rate, apply delay, conflicts
        for origin in ("eu-west", "ap-south"):
            assert value(m, "atoll_replication_lag_records", origin=origin) < 500
            assert value(m, "atoll_replication_lag_seconds", origin=origin) < 2.0
            assert value(m, "atoll_replication_state", origin=origin,
                         atoll_replication_state="unreachable") == 0
            assert value(m, "atoll_replication_peer_up", peer=origin) == 1
        assert value(m, *applied, peer="ap-south") > value(before, *applied, peer="ap-south")
        assert 0 < value(m, "atoll_replication_apply_delay_seconds", quantile="0.5") < 2.0
        assert value(m, "atoll_replication_cursor_sequence", origin="us-east") > 100
        assert "atoll_replication_conflicts_total" in {k[0] for k in
                                                       m["atoll_replication_conflicts"]}
        # storage, disk, topology, process
        assert value(m, "atoll_writes", "atoll_writes_total") > 100
        assert value(m, "atoll_wal_frames") >= 0 and "atoll_wal_rewinds" in m
        assert value(m, "atoll_disk_free_bytes") > 0
        assert value(m, "atoll_disk_size_bytes") >= value(m, "atoll_disk_free_bytes")
        assert value(m, "atoll_database_size_bytes") > 0
        assert value(m, "atoll_topology_generation") == 1
        assert value(m, "atoll_build_info", region="us-east", version="0.1.0",
                     compiled=next(dict(k[1])["compiled"] for k in m["atoll_build_info"])) == 1
        assert value(m, "process_resident_memory_bytes") > 0
        # refused requests are counted by reason (here: the signed status polls made
        # before the admin key had reached every region)
        assert any(name.startswith("atoll_auth_") for name in m)
        # the nodes' background verify: each peer's latest verdict (first round after 5 s)
        verdicts: dict[str, Any] = {}

        def verified() -> bool:
            verdicts.update(scrape(cluster.url("us-east")))
            return {dict(k[1]).get("peer") for k in verdicts.get("atoll_verify_verdict", {})
                    } >= {"eu-west", "ap-south"}

        assert wait_until(verified, 30, 0.5), sorted(verdicts)
        assert value(verdicts, "atoll_verify_divergent_items", peer="eu-west") == 0

        # ap-south's changes cannot leave it: its peers' pulls from it are cut, while it
        # keeps pulling (so its pulls keep telling the others how far it has written)
        for caller in ("us-east", "eu-west"):
            cluster.rules.set(caller, "ap-south", LinkFault(cut=True))
        cluster.network.apply()
        cut_at = time.monotonic()

        def lagging() -> bool:
            now = scrape(cluster.url("us-east"))
            return (value(now, "atoll_replication_lag_seconds", origin="ap-south") > 2.5
                    and value(now, "atoll_replication_lag_records", origin="ap-south") > 50
                    and value(now, "atoll_replication_state", origin="ap-south",
                              atoll_replication_state="unreachable") == 1)

        # a conflict: ap-south writes a key first, us-east (not seeing it) writes it later
        key = {"pk": {"S": "Arvo Pärt"}}
        client(cluster.url("ap-south")).put_item(TableName="metrics",
                                                 Item={**key, "v": {"S": "ap-south"}})
        time.sleep(0.05)
        client(cluster.url("us-east")).put_item(TableName="metrics",
                                                Item={**key, "v": {"S": "us-east"}})
        assert wait_until(lagging, 10, 0.25), "lag did not rise while ap-south was cut off"
        during = scrape(cluster.url("us-east"))
        assert value(during, "atoll_replication_peer_up", peer="ap-south") == 0
        assert value(during, "atoll_replication_lag_seconds", origin="eu-west") < 2.0
        print(f"\nlag behind ap-south {time.monotonic() - cut_at:.1f} s after the cut: "
              f"{value(during, 'atoll_replication_lag_seconds', origin='ap-south'):.1f} s, "
              f"{value(during, 'atoll_replication_lag_records', origin='ap-south'):.0f} records")

        cluster.rules.clear()
        healed_at = time.monotonic()

        def caught_up() -> bool:
            now = scrape(cluster.url("us-east"))
            return (value(now, "atoll_replication_lag_seconds", origin="ap-south") < 2.0
                    and value(now, "atoll_replication_lag_records", origin="ap-south") < 500
                    and value(now, "atoll_replication_state", origin="ap-south",
                              atoll_replication_state="unreachable") == 0)

        assert wait_until(caught_up, 15, 0.25), "lag did not fall after the link healed"
        print(f"caught up again {time.monotonic() - healed_at:.1f} s after the heal")

        # the losing write is in the conflict log, with its key as the user wrote it
        def logged() -> list[dict[str, Any]]:
            found = node_json(cluster.url("us-east"), "/_atoll/conflicts")["conflicts"]
            return [c for c in found if c["key"] == {"pk": {"S": "Arvo Pärt"}}]
        assert wait_until(lambda: bool(logged()), 10), "the conflict was not logged"
        conflict = logged()[0]
        assert conflict["winner"]["origin"] == "us-east"
        assert conflict["loser"]["origin"] == "ap-south"
        assert value(scrape(cluster.url("us-east")), "atoll_replication_conflicts",
                     "atoll_replication_conflicts_total") >= 1
    finally:
        for load in loads:
            load.halt.set()
        for load in loads:
            load.join(timeout=10)
        cluster.close()
