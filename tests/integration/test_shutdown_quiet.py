"""A node stopped by SIGTERM or SIGINT stops in order and quietly: exit status 0, "atoll:
stopped cleanly", and no traceback after it (nor anywhere in its output).

The fully compiled build once ended with a pull task's CancelledError raised out of
`Node.run` after its clean stop (exit 1, a traceback): tests/unit/test_compiled_rules.py
says why and keeps compiled modules from doing what caused it. These tests stop real
nodes of the build under test — a lone node and the regions of a cluster with pulls,
long polls and verify in flight, under writes — and read everything they printed.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from tests.support import ClusterProcesses, ServerProcess, client, create_table, wait_until

WRITING_S = 3.0  # at least, and until some writes were acknowledged
WRITES_TIMEOUT_S = 30.0


def _stopped_quietly(node: ServerProcess, sig: int) -> None:
    code = node.stop(sig)
    output = node.log()
    assert code == 0, output[-3000:]
    assert "atoll: stopped cleanly" in output, output[-3000:]
    assert "Traceback" not in output and "CancelledError" not in output, output[-3000:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_lone_node_stops_quietly(tmp_path: Path, sig: int) -> None:
    node = ServerProcess(data_dir=tmp_path / "node").start()
    try:
        ddb = client(node.url)
        create_table(ddb, "quiet")
        for n in range(20):
            ddb.put_item(TableName="quiet", Item={"pk": {"S": f"k{n}"}})
    finally:
        _stopped_quietly(node, sig)


def test_every_region_of_a_cluster_stops_quietly_under_writes(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, ("us-east", "eu-west")).start()
    stop = threading.Event()
    written = [0]

    def write() -> None:
        ddb = client(cluster.url("us-east"))
        while not stop.is_set() and written[0] < 100_000:
            try:
                ddb.put_item(TableName="quiet", Item={"pk": {"S": f"k{written[0]}"}})
                written[0] += 1
            except Exception:  # the node stopping under it
                time.sleep(0.05)

    writer = threading.Thread(target=write)
    try:
        create_table(client(cluster.url("us-east")), "quiet")
        writer.start()
        time.sleep(WRITING_S)  # writes replicate: pulls and long polls in flight both ways
        assert wait_until(lambda: written[0] > 0, WRITES_TIMEOUT_S)
        for node in cluster.nodes.values():
            _stopped_quietly(node, signal.SIGTERM)
    finally:
        stop.set()
        if writer.is_alive():
            writer.join(timeout=30)
        cluster.stop()
