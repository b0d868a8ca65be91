"""A pull loop that ends other than by the replicator's stop or its peer leaving the
topology is said at the highest level: replication from that peer has stopped for good
(it ended silently once, and only the lag told)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from atoll.engine import Engine
from atoll.node.replicator import Replicator
from atoll.storage import SqliteStorage
from atoll.topology.config import ClusterConfig, RegionConfig
from tests.support import free_port, in_a_loop

STOPPED = "replication from b stopped"


def _cluster(regions: tuple[str, ...], generation: int = 1) -> ClusterConfig:
    # nothing listens at b's endpoints: its pull loop keeps failing and backing off
    return ClusterConfig("atoll-tasks", tuple(
        RegionConfig(r, f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
        for r in regions), generation)


async def _replicator(tmp_path: Path) -> tuple[SqliteStorage, Replicator]:
    storage = SqliteStorage(str(tmp_path / "a.db"), durable=False, region="a")
    storage.start(asyncio.get_running_loop())
    replicator = Replicator(Engine(storage, region="a").context, _cluster(("a", "b")), "a")
    replicator.start()
    await asyncio.sleep(0.1)  # a few failed pulls
    return storage, replicator


@in_a_loop
async def test_a_pull_task_cancelled_by_something_else_is_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage, replicator = await _replicator(tmp_path)
    try:
        with caplog.at_level(logging.CRITICAL, logger="atoll.node.replicator"):
            task = replicator._pull_tasks["b"]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert STOPPED in caplog.text
    finally:
        await replicator.stop()
        storage.close()


@in_a_loop
async def test_stopping_or_a_peer_leaving_is_not_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage, replicator = await _replicator(tmp_path)
    try:
        with caplog.at_level(logging.CRITICAL, logger="atoll.node.replicator"):
            task = replicator._pull_tasks["b"]
            replicator.set_topology(_cluster(("a", "c"), generation=2))  # b left
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled() and "b" not in replicator._pull_tasks
            await replicator.stop()
        assert "stopped" not in caplog.text
    finally:
        await replicator.stop()
        storage.close()
