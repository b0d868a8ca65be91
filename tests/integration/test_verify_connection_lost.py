"""Background verify outlives the loss of its PostgreSQL connection.

Real processes and a real PostgreSQL server (tests/pg.py): a SQLite region and a region
on PostgreSQL, verifying every second. The server ends the PostgreSQL node's verify
connection (`pg_terminate_backend`, as a restart or a network cut would end it). The
scrub's next read fails with psycopg's error (the storage's ServiceUnavailable is what
the scrub waits out); it used to end the node's tree work for good, while the node kept
its verify lease. The job must log the failure, start again, reconnect and scrub on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from atoll.topology.config import ClusterConfig, RegionConfig
from tests.pg import pg_dsn, pg_server  # noqa: F401  (fixtures)
from tests.support import (
    ServerProcess,
    client,
    create_table,
    free_port,
    node_json,
    start_together,
    wait_until,
)

TABLE = "survivor"
RESUMED_WITHIN_S = 30.0  # the restart pause (5 s), a reconnection, a loaded machine


def _node(root: Path, config: ClusterConfig, config_path: Path, region: str) -> ServerProcess:
    # auth off (no certificates): what is under test is verify's background work
    node = ServerProcess(data_dir=root / region, auth="off", extra=[
        "--config", str(config_path), "--region", region])
    node.port = config.region(region).client_address[1]
    node.args[node.args.index("--port") + 1] = str(node.port)
    return node


def _scrubbed(node: ServerProcess) -> int:
    """Rows the node's background scrub has re-hashed."""
    status: dict[str, Any] = node_json(node.url, "/_atoll/status")["verify"]
    return int((status["scrub"] or {}).get("rows_total", 0))


@pytest.mark.timeout(300)
def test_background_verify_starts_again_after_its_connection_was_ended(
        tmp_path: Path, pg_dsn: str) -> None:  # noqa: F811
    config = ClusterConfig("atoll-verify-conn", (
        RegionConfig("sql", f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"),
        RegionConfig("pg", f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")))
    config_path = tmp_path / "cluster.toml"
    config_path.write_text(config.to_toml() + f'\n[storage]\npg = "{pg_dsn}"\n'
                           "\n[verify]\ninterval_s = 1\n")
    nodes = [_node(tmp_path, config, config_path, r) for r in ("sql", "pg")]
    try:
        start_together(nodes)
        pgn = nodes[1]
        ddb = client(pgn.url)
        create_table(ddb, TABLE)
        for n in range(20):
            ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"k{n}"}})
        assert wait_until(lambda: _scrubbed(pgn) > 0, 60.0, 0.2), pgn.log()[-2000:]
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            ended = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name LIKE %s", ("%-verify",)).fetchone()
        assert ended is not None and ended[0] >= 1
        # (logged as a failure either way: the job's end, or its restart)
        assert wait_until(lambda: "verify: trees" in pgn.log(), 10.0, 0.2), pgn.log()[-2000:]
        failed_at = _scrubbed(pgn)
        assert wait_until(lambda: _scrubbed(pgn) > failed_at, RESUMED_WITHIN_S, 0.5), \
            pgn.log()[-3000:]
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()
