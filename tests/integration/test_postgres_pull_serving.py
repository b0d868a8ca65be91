"""A node of a PostgreSQL region serves peers' pulls; while the database is down it
answers them 503 with the reason (the puller backs off and asks again), not a 500 with
an internal error logged for every Pull."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from atoll.replication.protocol import Batch, Pull, decode_message, encode_message
from atoll.topology.config import ClusterConfig, RegionConfig
from tests.pg import running_server
from tests.support import ServerProcess, free_port

CLUSTER_ID = "atoll-pg-pulls"


def _pull(peer_url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        peer_url + "/_atoll/pull", data=encode_message(Pull(1, {}, 10, ("pg",), {}, 0)),
        headers={"X-Atoll-Cluster": CLUSTER_ID, "X-Atoll-Region": "sql"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_pull_served_while_the_database_is_down_is_answered_503(tmp_path: Path) -> None:
    with running_server() as pg:
        peer = free_port()
        config = ClusterConfig(CLUSTER_ID, (
            RegionConfig("sql", f"http://127.0.0.1:{free_port()}",
                         f"http://127.0.0.1:{free_port()}"),
            RegionConfig("pg", f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{peer}")))
        config_path = tmp_path / "cluster.toml"
        config_path.write_text(config.to_toml() + f'\n[storage]\npg = "{pg.dsn}"\n')
        # auth off: the peer port is plain HTTP, so the test can send a Pull itself
        node = ServerProcess(data_dir=tmp_path / "pg", auth="off", extra=[
            "--config", str(config_path), "--region", "pg"])
        node.port = config.region("pg").client_address[1]
        node.args[node.args.index("--port") + 1] = str(node.port)
        node.start()
        try:
            status, body = _pull(f"http://127.0.0.1:{peer}")
            assert status == 200 and isinstance(decode_message(body), Batch)
            pg.kill()
            status, body = _pull(f"http://127.0.0.1:{peer}")
            assert status == 503, body
            assert b"database is unavailable" in body
            assert "request handler failed" not in node.log()
        finally:
            node.stop()
