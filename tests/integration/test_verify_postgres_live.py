"""`atoll verify` between a SQLite region and a PostgreSQL region (real processes, a real
PostgreSQL server): the PostgreSQL region keeps the same hash trees, in the same
transaction as each write and apply, so the regions compare as two SQLite ones do.

A row of the PostgreSQL region is changed behind Atoll's back (its checksum recomputed,
so it reads as valid) and another one deleted, with plain SQL: `atoll verify` names
exactly those two keys DIVERGED, `--repair` writes the SQLite region's versions back, and
the next verify reports MATCH, with the repairs in the PostgreSQL region's repair log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from atoll.topology.config import ClusterConfig, RegionConfig
from tests.pg import running_server
from tests.support import (
    ServerProcess,
    client,
    create_table,
    free_port,
    node_json,
    start_together,
    wait_until,
)

TABLE = "ledger"
ITEMS = 300
TIMEOUT_S = 120.0


def _node(tmp_path: Path, config: ClusterConfig, config_path: Path, region: str
          ) -> ServerProcess:
    # auth off (no certificates): what is under test is verify across the two storages
    node = ServerProcess(data_dir=tmp_path / region, auth="off", extra=[
        "--config", str(config_path), "--region", region])
    node.port = config.region(region).client_address[1]
    node.args[node.args.index("--port") + 1] = str(node.port)
    return node


def _verify(config_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "atoll", "verify", "--json", *args,
                           "--config", str(config_path)], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def _diverged(view: dict[str, Any]) -> set[str]:
    return {entry["key"]["pk"]["S"] for table in view["tables"]
            for entry in table["diverged_keys"]}


def _converged(nodes: list[ServerProcess]) -> bool:
    vectors = [node_json(n.url, "/_atoll/status")["replication"]["cursor_vector"] for n in nodes]
    return all(v == vectors[0] for v in vectors)


@pytest.mark.timeout(600)
def test_a_row_changed_behind_atolls_back_in_postgresql_is_diverged_and_repaired(
        tmp_path: Path) -> None:
    with running_server() as pg:
        config = ClusterConfig("atoll-verify-pg", (
            RegionConfig("sql", f"http://127.0.0.1:{free_port()}",
                         f"http://127.0.0.1:{free_port()}"),
            RegionConfig("pg", f"http://127.0.0.1:{free_port()}",
                         f"http://127.0.0.1:{free_port()}")))
        config_path = tmp_path / "cluster.toml"
        config_path.write_text(config.to_toml() + f'\n[storage]\npg = "{pg.dsn}"\n')
        nodes = [_node(tmp_path, config, config_path, r) for r in ("sql", "pg")]
        try:
            start_together(nodes)
            _check(nodes, config_path, pg.dsn)
        finally:
            for node in nodes:
                node.stop()


def _check(nodes: list[ServerProcess], config_path: Path, dsn: str) -> None:
    sql, pgn = nodes
    create_table(client(sql.url), TABLE)
    assert wait_until(lambda: TABLE in client(pgn.url).list_tables()["TableNames"], 30)
    for n in range(ITEMS):
        ddb = client((sql if n % 2 else pgn).url)
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"row-{n:04d}"}, "n": {"N": str(n)}})
    client(pgn.url).delete_item(TableName=TABLE, Key={"pk": {"S": "row-0007"}})  # a tombstone
    assert wait_until(lambda: _converged(nodes), TIMEOUT_S, 0.5)

    code, view = _verify(config_path)
    assert code == 0, view
    assert [p["status"] for p in view["tables"][0]["pairs"]] == ["MATCH"]
    assert view["tables"][0]["pairs"][0]["keys_compared"] == ITEMS

    with psycopg.connect(dsn, autocommit=True) as conn:
        item, h, pk = conn.execute(
            "SELECT item, h, pk FROM items WHERE position(%s in item) > 0",
            (b'"row-0123"',)).fetchone()
        edited = bytes(item).replace(b'"123"', b'"999"')
        assert edited != bytes(item)
        # an operator's edit: the checksum recomputed, so the row reads as valid
        conn.execute("UPDATE items SET item = %s, crc = %s WHERE h = %s AND pk = %s",
                     (edited, zlib.crc32(edited), h, pk))
        deleted = conn.execute("DELETE FROM items WHERE position(%s in item) > 0",
                               (b'"row-0200"',)).rowcount
        assert deleted == 1
    assert client(pgn.url).get_item(TableName=TABLE, Key={"pk": {"S": "row-0123"}})[
        "Item"]["n"] == {"N": "999"}  # served as valid until verify finds it

    code, view = _verify(config_path)
    assert code == 1, view
    assert _diverged(view) == {"row-0123", "row-0200"}
    assert view["tables"][0]["pairs"][0]["diverged"] == 2

    # The first run's scrub made the PostgreSQL region's tree agree with the edited row;
    # the region remembers which bucket it corrected, so this second run (a new session)
    # still knows which of the two contents of one version is the damaged one.
    code, view = _verify(config_path, "--repair")
    assert code == 1, view  # this run found them DIVERGED, and repaired them
    assert sorted((r["reason"], r["outcome"]) for r in view["tables"][0]["repairs"]) == [
        ("content", "applied"), ("missing", "applied")]
    code, view = _verify(config_path)
    assert code == 0, view
    assert [p["summary"] for p in view["tables"][0]["pairs"]] == ["MATCH"]
    ddb = client(pgn.url)
    for key, n in (("row-0123", 123), ("row-0200", 200)):
        got = ddb.get_item(TableName=TABLE, Key={"pk": {"S": key}}, ConsistentRead=True)
        assert got["Item"]["n"] == {"N": str(n)}
    with psycopg.connect(dsn, autocommit=True) as conn:
        logged = conn.execute("SELECT table_name FROM repairs ORDER BY id").fetchall()
    assert [row[0] for row in logged] == [TABLE, TABLE]
