"""Background verify runs on one node of a PostgreSQL region, and moves when it dies.

Real processes and a real PostgreSQL server (tests/pg.py): a SQLite region and a region
of two nodes over one PostgreSQL schema, verifying every second. The region's nodes
share its storage, hence its hash trees: scrubbing them and comparing them with the
peer's from both nodes would only double the work and the verify traffic. So only the
node holding the region's "verify" lease runs rounds and scrubs, the other answers
peers' requests only; when the holder is SIGKILLed, the other takes the lease once it
expires and runs the rounds from then on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from atoll.storage.postgres.leases import TTL_MS
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

TABLE = "checked"
ITEMS = 20
OBSERVE_S = 4.0  # four verify intervals
ROUNDS_WITHIN_S = 20.0  # after OBSERVE_S: two rounds on a loaded machine
# after the holder's death: the lease's TTL, a renewal, the first round's delay (1 s),
# one round, and room for a loaded machine
TAKE_OVER_S = TTL_MS / 1000 + 10.0


def _node(root: Path, name: str, config: ClusterConfig, config_path: Path, region: str,
          port: int, peer_port: int) -> ServerProcess:
    # auth off (no certificates): what is under test is who runs verify, not the link
    node = ServerProcess(data_dir=root / name, auth="off", extra=[
        "--config", str(config_path), "--region", region,
        "--peer-listen", f"127.0.0.1:{peer_port}"])
    node.port = port
    node.args[node.args.index("--port") + 1] = str(port)
    return node


def _verify(node: ServerProcess) -> tuple[bool, int, int]:
    """(whether it runs the verify job, its rounds, the rows it scrubbed)."""
    status: dict[str, Any] = node_json(node.url, "/_atoll/status")
    scrub = status["verify"]["scrub"] or {}
    return ("verify" in status["region_nodes"]["running"], status["verify"]["rounds"],
            scrub.get("rows_total", 0))


@pytest.mark.timeout(300)
def test_one_node_of_a_postgresql_region_verifies_and_another_takes_over_when_it_dies(
        tmp_path: Path, pg_dsn: str) -> None:  # noqa: F811
    sql_client, sql_peer = free_port(), free_port()
    pg_clients, pg_peers = [free_port(), free_port()], [free_port(), free_port()]
    config = ClusterConfig("atoll-verify-lease", (
        RegionConfig("sql", f"http://127.0.0.1:{sql_client}", f"http://127.0.0.1:{sql_peer}"),
        RegionConfig("pg", [f"http://127.0.0.1:{p}" for p in pg_clients],
                     [f"http://127.0.0.1:{p}" for p in pg_peers])))
    config_path = tmp_path / "cluster.toml"
    config_path.write_text(config.to_toml() + f'\n[storage]\npg = "{pg_dsn}"\n'
                           "\n[verify]\ninterval_s = 1\n")
    sql = _node(tmp_path, "sql", config, config_path, "sql", sql_client, sql_peer)
    pgs = [_node(tmp_path, f"pg{n}", config, config_path, "pg", pg_clients[n], pg_peers[n])
           for n in range(2)]
    try:
        start_together((sql, *pgs))
        ddb = client(pgs[0].url)
        create_table(ddb, TABLE)
        for n in range(ITEMS):
            ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"k{n}"}})

        def one_verifying() -> bool:
            return sum(_verify(node)[0] for node in pgs) == 1
        assert wait_until(one_verifying, 30.0, 0.2), [_verify(n) for n in pgs]
        holder = next(n for n, node in enumerate(pgs) if _verify(node)[0])
        other = pgs[1 - holder]
        before = _verify(pgs[holder])
        time.sleep(OBSERVE_S)  # at least, and until the holder did two more rounds

        def progressed() -> bool:
            _running, rounds, scrubbed = _verify(pgs[holder])
            return rounds >= before[1] + 2 and scrubbed > 0
        wait_until(progressed, ROUNDS_WITHIN_S, 0.2)
        running, rounds, scrubbed = _verify(pgs[holder])
        assert running and rounds >= before[1] + 2 and scrubbed > 0
        assert _verify(other) == (False, 0, 0)  # no round, no scrub, all along

        pgs[holder].kill()
        died = time.monotonic()
        assert wait_until(lambda: _verify(other)[1] >= 1, TAKE_OVER_S, 0.2), _verify(other)
        assert _verify(other)[0]
        assert time.monotonic() - died < TAKE_OVER_S
    finally:
        for node in (sql, *pgs):
            if node.proc is not None and node.proc.poll() is None:
                node.stop()
