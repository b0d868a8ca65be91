"""A mixed cluster, live: one region of three nodes over one PostgreSQL, one on SQLite.

Writes go through every node of both regions at once (unique keys, plus keys written in
both regions to make conflicts); during the load the node running the PostgreSQL
region's replication is SIGKILLed and PostgreSQL itself is SIGKILLed and restarted.
Afterwards every acknowledged write is in both regions and the regions hold the same
items, as two SQLite regions would.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from atoll.topology.config import ClusterConfig, RegionConfig
from tests.pg import running_server
from tests.support import (
    ServerProcess,
    client,
    create_table,
    free_port,
    make_certs,
    node_json,
    scan_all,
    start_together,
)

PG_NODES = 3
LOAD_S = 20.0
KILL_NODE_AT_S = 5.0
CRASH_DATABASE_AT_S = 10.0
DATABASE_DOWN_S = 2.0
CONVERGE_S = 60.0
HOT_KEYS = 20


def _status(node: ServerProcess) -> dict[str, Any]:
    return node_json(node.url, "/_atoll/status")  # type: ignore[no-any-return]


def _alive(node: ServerProcess) -> bool:
    return node.proc is not None and node.proc.poll() is None


def test_a_postgresql_region_and_a_sqlite_region_converge_through_node_and_database_crashes(
        tmp_path: Path) -> None:
    with running_server() as pg:
        pg_clients = [free_port() for _ in range(PG_NODES)]
        pg_peers = [free_port() for _ in range(PG_NODES)]
        config = ClusterConfig("atoll-mixed", (  # mutual TLS between regions, auth on
            RegionConfig("sql", f"http://127.0.0.1:{free_port()}",
                         f"https://127.0.0.1:{free_port()}"),
            RegionConfig("pg", [f"http://127.0.0.1:{p}" for p in pg_clients],
                         [f"https://127.0.0.1:{p}" for p in pg_peers])))
        certs = str(make_certs(tmp_path / "certs", config.cluster_id, ("sql", "pg")))
        config_path = tmp_path / "cluster.toml"
        # the PostgreSQL region's nodes find their storage in the config ([storage])
        config_path.write_text(config.to_toml() + f'\n[storage]\npg = "{pg.dsn}"\n')
        sql = ServerProcess(data_dir=tmp_path / "sql", extra=[
            "--config", str(config_path), "--region", "sql", "--certs", certs])
        sql.port = config.region("sql").client_address[1]
        sql.args[sql.args.index("--port") + 1] = str(sql.port)
        pgs = []
        for n in range(PG_NODES):
            node = ServerProcess(data_dir=tmp_path / f"pg{n}", extra=[
                "--config", str(config_path), "--region", "pg", "--certs", certs,
                "--peer-listen", f"127.0.0.1:{pg_peers[n]}"])
            node.port = pg_clients[n]
            node.args[node.args.index("--port") + 1] = str(node.port)
            pgs.append(node)
        nodes = [sql, *pgs]
        try:
            start_together(nodes)
            _run_load_and_check(sql, pgs, pg)
        finally:
            for node in nodes:
                if _alive(node):
                    node.stop()


def _run_load_and_check(sql: ServerProcess, pgs: list[ServerProcess], pg: Any) -> None:
    nodes = [sql, *pgs]
    clients = [client(node.url) for node in nodes]
    create_table(clients[1], "mixed")
    _wait(lambda: all(_has_table(ddb) for ddb in clients), "the table in both regions", 30)
    acknowledged: dict[str, str] = {}  # unique key -> value
    hot: dict[str, list[str]] = {}  # hot key -> every value acknowledged for it
    lock = threading.Lock()
    counts = {"ok": 0, "refused": 0}

    def writer(n: int) -> None:
        ddb = clients[n]
        deadline = time.monotonic() + LOAD_S
        i = 0
        while time.monotonic() < deadline:
            i += 1
            key = f"hot{i % HOT_KEYS}" if i % 5 == 0 else f"n{n}-{i}"
            value = f"{n}:{i}"
            try:
                ddb.put_item(TableName="mixed", Item={"pk": {"S": key}, "v": {"S": value}})
            except (ClientError, OSError, Exception) as exc:  # a dead node, a 503
                if not _retryable(exc):
                    raise
                with lock:
                    counts["refused"] += 1
                time.sleep(0.05)
                continue
            with lock:
                counts["ok"] += 1
                if key.startswith("hot"):
                    hot.setdefault(key, []).append(value)
                else:
                    acknowledged[key] = value

    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            writer(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(len(nodes))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(KILL_NODE_AT_S)
    victim = next((node for node in pgs if "replication" in
                   _status(node)["region_nodes"]["running"]), pgs[0])
    victim.kill()
    time.sleep(max(0.0, CRASH_DATABASE_AT_S - (time.monotonic() - started)))
    pg.kill()
    time.sleep(DATABASE_DOWN_S)
    pg.restart()
    for thread in threads:
        thread.join(LOAD_S + 60)
    assert not errors, errors[:3]
    assert counts["ok"] > 200 and acknowledged

    survivor = client(next(node for node in pgs if _alive(node)).url)
    regions = {"sql": clients[0], "pg": survivor}
    last: dict[str, dict[str, Any]] = {}

    def converged() -> bool:
        for name, ddb in regions.items():
            last[name] = scan_all(ddb, "mixed")
        if last["sql"] != last["pg"]:
            return False
        return all(key in last["sql"] for key in acknowledged)

    def explain() -> str:
        sql_items, pg_items = last.get("sql", {}), last.get("pg", {})
        only_sql = [k for k in sql_items if k not in pg_items]
        only_pg = [k for k in pg_items if k not in sql_items]
        differ = [k for k in sql_items if k in pg_items and sql_items[k] != pg_items[k]]
        statuses = {node.url: _status(node).get("replication") for node in nodes if _alive(node)}
        return (f"sql {len(sql_items)} items, pg {len(pg_items)}; only in sql {only_sql[:5]}"
                f" ({len(only_sql)}), only in pg {only_pg[:5]} ({len(only_pg)}), differ"
                f" {differ[:5]}; replication {json.dumps(statuses)[:3000]}")

    _wait(converged, "both regions identical with every acknowledged write", CONVERGE_S,
          explain)
    items = last["sql"]
    lost = [k for k, v in acknowledged.items() if items.get(k, {}).get("v", {}).get("S") != v]
    assert not lost, f"acknowledged writes lost: {lost[:5]}"
    for key, values in hot.items():  # some acknowledged value won, the same everywhere
        assert items[key]["v"]["S"] in values
    print(f"mixed cluster: {counts['ok']} writes acknowledged, {counts['refused']} refused "
          f"(503 or a dead node), {len(items)} items in each region")


def _has_table(ddb: Any) -> bool:
    try:
        ddb.describe_table(TableName="mixed")
        return True
    except ClientError:
        return False


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        return exc.response["Error"]["Code"] in ("ServiceUnavailableException",
                                                 "ServiceUnavailable", "InternalServerError")
    return True  # connection refused or reset: the node was killed


def _wait(check: Any, what: str, timeout_s: float, explain: Any = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (ClientError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}" + (f": {explain()}" if explain else ""))
