"""A region's pull link stays alive: whatever happens to the peer's nodes or to other
work waiting on this region's storage, pulling resumes within a bounded time once a
live endpoint of the peer exists.

Region `a` runs in this process (its storage, engine and Replicator, nothing else), so
the test can hold its fdatasync and watch its pull link; region `b` is a real
`atoll serve` process that is killed, restarted and moved to another port.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from atoll.api.dispatch import Api
from atoll.engine import Engine
from atoll.node.replicator import Replicator
from atoll.replication.puller import PeerLink
from atoll.storage import SqliteStorage
from atoll.topology.config import ClusterConfig, RegionConfig
from tests.support import ServerProcess, client, create_table, free_port, in_a_loop
from tests.unit.test_storage_durability import HeldSync

TABLE = "links"
TIMEOUT_S = 20.0
# After the peer is back: the longest backoff (2 s), one connection, one Pull, one apply,
# and room for a machine shared by many test runs (load averages of 30-40 seen here).
RESUME_BOUND_S = 8.0


@dataclass
class LocalRegion:
    storage: SqliteStorage
    api: Api
    replicator: Replicator

    @property
    def link(self) -> PeerLink:
        return self.replicator.core.pullers["b"].link

    async def item(self, table: str, key: str) -> dict[str, Any] | None:
        status, body = await self.api.handle("DynamoDB_20120810.GetItem", orjson.dumps(
            {"TableName": table, "Key": {"pk": {"S": key}}}))
        if status != 200:
            return None
        found: dict[str, Any] | None = orjson.loads(body).get("Item")
        return found


@contextlib.asynccontextmanager
async def _region_a(path: Path, cluster: ClusterConfig) -> AsyncIterator[LocalRegion]:
    storage = SqliteStorage(str(path / "a.db"), durable=True, region="a")
    storage.start(asyncio.get_running_loop())
    engine = Engine(storage, region="a")
    replicator = Replicator(engine.context, cluster, "a")
    replicator.start()
    try:
        yield LocalRegion(storage, Api(engine), replicator)
    finally:
        await replicator.stop()
        storage.close()


A_PORTS = (free_port(), free_port())


def _cluster(b_client: int, b_peers: list[int], generation: int = 1) -> ClusterConfig:
    # `a` has no listener: `b`'s pulls from it fail, which these tests do not look at
    return ClusterConfig("atoll-pull", (
        RegionConfig("a", f"http://127.0.0.1:{A_PORTS[0]}", f"http://127.0.0.1:{A_PORTS[1]}"),
        RegionConfig("b", f"http://127.0.0.1:{b_client}",
                     [f"http://127.0.0.1:{p}" for p in b_peers])), generation)


def _region_b(path: Path, cluster: ClusterConfig, listen_port: int) -> ServerProcess:
    config_path = path / "cluster.toml"
    config_path.write_text(cluster.to_toml())
    # auth off: `a` runs here without the cluster's certificates (the peer link is plain
    # HTTP then); what is under test is the link's liveness, not its security
    node = ServerProcess(data_dir=path / "b", auth="off", extra=[
        "--config", str(config_path), "--region", "b",
        "--peer-listen", f"127.0.0.1:{listen_port}"])
    node.port = cluster.region("b").client_address[1]
    node.args[node.args.index("--port") + 1] = str(node.port)
    return node


async def _until(condition: Callable[[], Any], what: str, timeout_s: float = TIMEOUT_S) -> float:
    """Seconds until `condition()` (awaited if it returns an awaitable) is true."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - began
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def _put(node: ServerProcess, key: str) -> None:
    ddb = client(node.url)
    await asyncio.to_thread(ddb.put_item, TableName=TABLE,
                            Item={"pk": {"S": key}, "v": {"S": key}})


async def _start_b(node: ServerProcess) -> None:
    await asyncio.to_thread(node.start)


@in_a_loop
async def test_a_pull_loop_survives_another_answer_giving_up_on_the_same_commits(
        tmp_path: Path) -> None:
    """The stall seen in the mixed PostgreSQL/SQLite cluster test: a verify session's
    local request waits for this region's latest commits to be durable, and the session
    ends and cancels that request while the pull loop's read of the same commits waits
    for them too (it used to end the pull loop with the same CancelledError, silently).
    The pull loop keeps pulling meanwhile: its Pulls acknowledge the cursors known
    durable instead of waiting for the fsync, and it carries on once the fsync is done."""
    b_client, b_peer = free_port(), free_port()
    cluster = _cluster(b_client, [b_peer])
    b = _region_b(tmp_path, cluster, b_peer)
    await _start_b(b)
    try:
        async with _region_a(tmp_path, cluster) as a:
            await asyncio.to_thread(create_table, client(b.url), TABLE)
            await _put(b, "before")
            await _until(lambda: a.item(TABLE, "before"), "the first item in a")
            held = HeldSync(a.storage.durability.fdatasync)
            a.storage.durability.fdatasync = held
            local_put = asyncio.ensure_future(a.api.handle(
                "DynamoDB_20120810.PutItem",
                orjson.dumps({"TableName": TABLE, "Item": {"pk": {"S": "mine"}}})))
            await held.wait_entered()  # committed in a, not durable yet
            pulls = a.link.pulls
            await _until(lambda: a.link.pulls >= pulls + 2,
                         "pulls going out while a's commit waits for its fsync")
            leaving = asyncio.ensure_future(a.storage.settled())  # the verify request
            await asyncio.sleep(0.05)
            leaving.cancel()
            await asyncio.sleep(0.05)
            held.released.set()
            assert (await asyncio.wait_for(local_put, TIMEOUT_S))[0] == 200
            await _put(b, "after")
            await _until(lambda: a.item(TABLE, "after"), "a change made after the cancel in a")
    finally:
        b.stop()


@in_a_loop
async def test_pulling_resumes_soon_after_every_node_of_the_peer_was_dead_for_a_while(
        tmp_path: Path) -> None:
    """`b`'s only node is SIGKILLed, stays down until `a` backs off its longest, and is
    started again: `a` pulls from it within the bound, and nothing is lost."""
    b_client, b_peer = free_port(), free_port()
    cluster = _cluster(b_client, [b_peer])
    b = _region_b(tmp_path, cluster, b_peer)
    await _start_b(b)
    try:
        async with _region_a(tmp_path, cluster) as a:
            await asyncio.to_thread(create_table, client(b.url), TABLE)
            await _put(b, "before")
            await _until(lambda: a.item(TABLE, "before"), "the first item in a")
            b.kill()
            errors = a.link.errors
            await _until(lambda: a.link.errors >= errors + 6, "a's pulls failing a while")
            await _start_b(b)
            resumed = time.monotonic()
            await _put(b, "after")
            await _until(lambda: a.item(TABLE, "after"), "b's change after its restart in a")
            assert time.monotonic() - resumed <= RESUME_BOUND_S
    finally:
        b.stop()


@in_a_loop
async def test_pulling_moves_past_a_dead_endpoint_and_follows_a_moved_one(
        tmp_path: Path) -> None:
    """`b` lists two peer endpoints and only the second has a node: `a` pulls through it
    right away, without a failed Pull. Then the node restarts on a third port and the topology says so: `a`
    pulls from there within the bound."""
    b_client, dead, live, moved = free_port(), free_port(), free_port(), free_port()
    cluster = _cluster(b_client, [dead, live])
    b = _region_b(tmp_path, cluster, live)
    await _start_b(b)
    try:
        async with _region_a(tmp_path, cluster) as a:
            await asyncio.to_thread(create_table, client(b.url), TABLE)
            await _put(b, "before")
            await _until(lambda: a.item(TABLE, "before"), "the first item in a", RESUME_BOUND_S)
            assert a.replicator.clients["b"].port == live
            assert a.link.errors == 0  # the dead endpoint was passed over within the Pull
            b.stop()
            moved_cluster = _cluster(b_client, [moved], generation=2)
            b = _region_b(tmp_path, moved_cluster, moved)
            await _start_b(b)
            resumed = time.monotonic()
            a.replicator.set_topology(moved_cluster)
            await _put(b, "after")
            await _until(lambda: a.item(TABLE, "after"), "b's change after it moved, in a")
            assert time.monotonic() - resumed <= RESUME_BOUND_S
            assert a.replicator.clients["b"].port == moved
    finally:
        b.stop()
