"""Nodes of one region started at the same moment on a fresh PostgreSQL all come up.

Every node creates the region's schema and its internal tables (the keys table) before
it serves. Started together on an empty database they all find those missing and all
create them: the first to commit wins, and the others must adopt what it made instead
of failing their start (storage/postgres/connection.py's schema retries,
engine/internal.py's creation under the write lock, node.py's start-up retries). Real
processes launched back to back, a real server (tests/pg.py); then writes through each
node are read through every other. Two ways in:
- a truly fresh schema: the nodes race to create the tables (as timing allows);
- a schema whose catalog table the test holds locked while the nodes start: each node
  waits for it before reading its catalog, so all of them read an empty catalog at the
  same moment once it is released, and all of them try to create the keys table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from atoll.storage.postgres.connection import init_schema
from tests.pg import PostgresServer, fresh_schema_dsn, pg_server  # noqa: F401  (fixture)
from tests.support import ServerProcess, client, create_table

NODES = 3
SEE_TABLE_TIMEOUT_S = 15.0
# Nodes wait on a lock for at most LOCK_TIMEOUT_MS (15 s, connection.py): the catalog
# is released after this long even if not every node is waiting yet.
HOLD_AT_MOST_S = 10.0
WAITING = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
           " AND application_name LIKE 'atoll-%%'")


def _wait_for_table(ddb: Any, name: str) -> None:
    deadline = time.monotonic() + SEE_TABLE_TIMEOUT_S
    while True:
        try:
            ddb.describe_table(TableName=name)
            return
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _start_together(dsn: str, root: Path, held: psycopg.Connection | None = None
                    ) -> list[ServerProcess]:
    """Launch every node before waiting for any; with `held` (a transaction holding the
    catalog table locked), release it once every node waits for it."""
    nodes = [ServerProcess(data_dir=root / f"node{n}", extra=["--storage", dsn])
             for n in range(NODES)]
    for node in nodes:
        node.launch()
    try:
        if held is not None:
            deadline = time.monotonic() + HOLD_AT_MOST_S
            while time.monotonic() < deadline and any(n.proc and n.proc.poll() is None
                                                      for n in nodes):
                if held.execute(WAITING).fetchone()[0] >= NODES:  # type: ignore[index]
                    break
                time.sleep(0.05)
            held.commit()
        for node in nodes:
            node.wait_healthy()
    except BaseException:
        _stop(nodes)
        raise
    return nodes


def _stop(nodes: list[ServerProcess]) -> None:
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()


def _catalog_held(dsn: str) -> psycopg.Connection:
    """The region's schema made, and its catalog table locked by an open transaction."""
    conn = psycopg.connect(dsn)
    init_schema(conn, "local")
    conn.execute("LOCK TABLE tables IN ACCESS EXCLUSIVE MODE")
    return conn


@pytest.mark.parametrize("way", ["fresh", "catalog held"])
def test_nodes_started_together_on_a_fresh_database_all_serve(
        pg_server: PostgresServer, tmp_path: Path, way: str) -> None:  # noqa: F811
    dsn = fresh_schema_dsn(pg_server)
    held = _catalog_held(dsn) if way == "catalog held" else None
    try:
        nodes = _start_together(dsn, tmp_path, held)
    finally:
        if held is not None:
            held.close()
    try:
        clients = [client(node.url) for node in nodes]
        create_table(clients[-1], "started")
        for ddb in clients:
            _wait_for_table(ddb, "started")
        for n, ddb in enumerate(clients):
            ddb.put_item(TableName="started", Item={"pk": {"S": f"via{n}"}, "n": {"N": str(n)}})
        for reader, ddb in enumerate(clients):
            for n in range(NODES):
                got = ddb.get_item(TableName="started", Key={"pk": {"S": f"via{n}"}},
                                   ConsistentRead=True).get("Item")
                assert got == {"pk": {"S": f"via{n}"}, "n": {"N": str(n)}}, (reader, n)
        assert all(node.proc is not None and node.proc.poll() is None for node in nodes)
    finally:
        _stop(nodes)
