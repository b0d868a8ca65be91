"""Durability: a write acknowledged before SIGKILL is there after restart (DESIGN.md
decision 2: acknowledged only once the commit is durable), and the file is intact."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    ServerProcess,
    assert_database_intact,
    client,
    create_table,
    wait_until,
)

WRITERS = 8
WRITE_WINDOW_S = 2.0  # at least, and until MIN_ACKED writes were acknowledged
MIN_ACKED = 100
WORKLOAD_TIMEOUT_S = 60.0  # a loaded machine: seconds, not minutes
MAX_WRITES_PER_WRITER = 5000


def _writer(url: str, table: str, writer: int, acked: list[str], stop: threading.Event) -> None:
    ddb = client(url, connect_timeout=2, read_timeout=5)
    for n in range(MAX_WRITES_PER_WRITER):
        if stop.is_set():
            return
        key = f"w{writer}-{n}"
        try:
            ddb.put_item(TableName=table, Item={"pk": {"S": key}, "n": {"N": str(n)},
                                                 "pad": {"S": "x" * 100}})
        except Exception:
            return  # the server died mid-request: this write was not acknowledged
        acked.append(key)


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path).start()
    ddb = client(server.url)
    create_table(ddb, "durable")
    acked: list[list[str]] = [[] for _ in range(WRITERS)]
    stop = threading.Event()
    threads = [threading.Thread(target=_writer, args=(server.url, "durable", w, acked[w], stop))
               for w in range(WRITERS)]
    for t in threads:
        t.start()
    time.sleep(WRITE_WINDOW_S)
    wait_until(lambda: sum(len(keys) for keys in acked) > MIN_ACKED, WORKLOAD_TIMEOUT_S)
    server.kill()  # SIGKILL while writes are in flight
    stop.set()
    for t in threads:
        t.join(timeout=30)
    acknowledged = [key for keys in acked for key in keys]
    assert len(acknowledged) > MIN_ACKED, "the workload did not get going"

    assert_database_intact(tmp_path / "atoll-local.db")

    restarted = ServerProcess(data_dir=tmp_path).start()
    try:
        ddb = client(restarted.url)
        missing = []
        for start in range(0, len(acknowledged), 100):
            chunk = acknowledged[start:start + 100]
            got = ddb.batch_get_item(RequestItems={"durable": {
                "Keys": [{"pk": {"S": k}} for k in chunk], "ProjectionExpression": "pk"}})
            found = {item["pk"]["S"] for item in got["Responses"]["durable"]}
            missing += [k for k in chunk if k not in found]
        assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        count = ddb.describe_table(TableName="durable")["Table"]["ItemCount"]
        assert count >= len(acknowledged)
    finally:
        restarted.stop()


def test_sigterm_finishes_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path).start()
    ddb: Any = client(server.url)
    create_table(ddb, "clean")
    ddb.put_item(TableName="clean", Item={"pk": {"S": "a"}})
    assert server.stop() == 0
    assert "stopped cleanly" in server.log()
    # a clean close checkpoints the WAL into the main file
    wal = tmp_path / "atoll-local.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    again = ServerProcess(data_dir=tmp_path).start()
    try:
        assert client(again.url).get_item(TableName="clean", Key={"pk": {"S": "a"}})["Item"]
    finally:
        again.stop()
