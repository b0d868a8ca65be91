"""A node of a PostgreSQL region serves peers' pulls and verify sessions while the
database is down: a pull is answered 503 with the reason (the puller backs off and asks
again), a verify request with verify's own error message (the asker's session ends
INCOMPLETE), never a 500 with an internal error logged for every request."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from atoll.antientropy.messages import Children, Error
from atoll.antientropy.wire import decode_response, encode_request
from atoll.node.verifylink import VERIFY_PATH
from atoll.replication.protocol import Batch, Pull, decode_message, encode_message
from atoll.topology.config import ClusterConfig, RegionConfig
from tests.pg import running_server
from tests.support import ServerProcess, client, create_table, free_port

CLUSTER_ID = "atoll-pg-pulls"


def _pull(peer_url: str) -> tuple[int, bytes]:
    return _post(peer_url + "/_atoll/pull", encode_message(Pull(1, {}, 10, ("pg",), {}, 0)))


def _verify(peer_url: str) -> tuple[int, bytes]:
    """A verify session's first question: the top of the table's hash tree."""
    return _post(peer_url + VERIFY_PATH, encode_request(Children(1, "items", 16, 4, 0, (0,))))


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"X-Atoll-Cluster": CLUSTER_ID, "X-Atoll-Region": "sql"},
        method="POST")
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
            create_table(client(node.url), "items")
            status, body = _pull(f"http://127.0.0.1:{peer}")
            assert status == 200 and isinstance(decode_message(body), Batch)
            pg.kill()
            status, body = _pull(f"http://127.0.0.1:{peer}")
            assert status == 503, body
            assert b"database is unavailable" in body
            status, body = _verify(f"http://127.0.0.1:{peer}")
            assert status == 200 and isinstance(decode_response(body), Error), body
            assert b"pg could not answer" in body
            assert "request handler failed" not in node.log()
        finally:
            node.stop()
