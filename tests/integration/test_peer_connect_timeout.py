"""A peer endpoint that silently drops connections costs a connect timeout, not a request
timeout.

Region `b` lists two peer endpoints. The first is a black hole: a listening socket whose
accept queue this test filled and never drains, so the kernel drops every further SYN
and a connection to it neither opens nor fails (as a dead host behind a firewall would
look). The second is `b`'s node. Region `a` (a real `atoll serve`, started after `b`
holds a change) must pull that change through the second endpoint within a couple of
seconds: its first connection attempt goes to the black hole, and without a connect
timeout it would wait out the whole pull request timeout (11 s) first. The cluster config
sets the connect timeout well below the pull's long poll (1 s), and the long polls on the
established connection must go on without a single failure.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from atoll.replication.config import ReplicationConfig
from atoll.topology.config import ClusterConfig, RegionConfig
from tests.support import (
    ServerProcess,
    black_hole,
    client,
    create_table,
    free_port,
    node_json,
    wait_until,
)

TABLE = "far"
CONNECT_TIMEOUT_MS = 300
REPLICATED_WITHIN_S = 5.0  # the connect timeout, a pull, an apply, a loaded machine
IDLE_PULLS_WITHIN_S = 15.0  # two idle long polls (held 1 s each by b), a loaded machine


def _node(root: Path, config: ClusterConfig, config_path: Path, region: str,
          listen_port: int) -> ServerProcess:
    # auth off (plain HTTP between regions): what is under test is the peer link's timing
    node = ServerProcess(data_dir=root / region, auth="off", extra=[
        "--config", str(config_path), "--region", region,
        "--peer-listen", f"127.0.0.1:{listen_port}"])
    node.port = config.region(region).client_address[1]
    node.args[node.args.index("--port") + 1] = str(node.port)
    return node


def _b_link(a: ServerProcess) -> dict[str, Any]:
    return node_json(a.url, "/_atoll/status")["replication"]["peers"]["b"]  # type: ignore[no-any-return]


def test_a_peer_endpoint_dropping_connections_is_passed_over_within_the_connect_timeout(
        tmp_path: Path) -> None:
    assert CONNECT_TIMEOUT_MS < ReplicationConfig().pull_wait_ms  # long polls outlast it
    with black_hole() as hole:
        a_peer, b_peer = free_port(), free_port()
        config = ClusterConfig("atoll-connect", (
            RegionConfig("a", f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{a_peer}"),
            RegionConfig("b", f"http://127.0.0.1:{free_port()}",
                         [f"http://127.0.0.1:{hole}", f"http://127.0.0.1:{b_peer}"])))
        config_path = tmp_path / "cluster.toml"
        config_path.write_text(config.to_toml() +
                               f"\n[replication]\nconnect_timeout_ms = {CONNECT_TIMEOUT_MS}\n")
        b = _node(tmp_path, config, config_path, "b", b_peer)
        a = _node(tmp_path, config, config_path, "a", a_peer)
        try:
            b.start()
            create_table(client(b.url), TABLE)
            client(b.url).put_item(TableName=TABLE, Item={"pk": {"S": "k"}, "v": {"S": "b"}})
            a.start()
            began = time.monotonic()

            def replicated() -> bool:
                try:
                    found = client(a.url).get_item(TableName=TABLE, Key={"pk": {"S": "k"}})
                except Exception:  # (the table itself not there yet)
                    return False
                return "Item" in found

            assert wait_until(replicated, 20.0, 0.05), "b's change never reached a"
            took_s = time.monotonic() - began
            assert took_s < REPLICATED_WITHIN_S, f"took {took_s:.1f} s"
            link = _b_link(a)
            assert link["endpoint"] == f"http://127.0.0.1:{b_peer}"
            # idle long polls (held 1 s each by b) on the open connection: none fails
            errors, pulls = link["errors"], link["pulls"]
            assert wait_until(lambda: _b_link(a)["pulls"] >= pulls + 2, IDLE_PULLS_WITHIN_S)
            link = _b_link(a)
            assert link["errors"] == errors, link["last_error"]
        finally:
            for node in (a, b):
                if node.proc is not None:
                    node.stop()
