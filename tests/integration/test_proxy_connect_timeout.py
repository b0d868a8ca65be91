"""The proxy's connections to a region must open within the connect timeout: a region whose
endpoint drops SYNs (a dead host behind a firewall) fails as "not sent", so even a
non-idempotent request (an ADD, which is never sent twice once it may have arrived) goes
on to the next region at once. Without the bound it waited out the whole failover budget
and the application got ServiceUnavailable. The proxy runs in the test's loop in front of
a real `atoll serve` (the live region) and a black-holed port (the dead one)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from atoll.client.proxy import Proxy
from atoll.client.routing import CONNECT_TIMEOUT_S, Router
from atoll.http.wire import Request
from atoll.topology.model import ClusterConfig, RegionConfig
from tests.support import ServerProcess, black_hole, client, create_table, in_a_loop

BUDGET_S = 4.0
TARGET = "DynamoDB_20120810.UpdateItem"
ADD_ONE = orjson.dumps({
    "TableName": "counters", "Key": {"pk": {"S": "likes"}},
    "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}},
    "ReturnValues": "UPDATED_NEW"})


@pytest.fixture(scope="module")
def live_region() -> Iterator[ServerProcess]:
    with ServerProcess(in_memory=True, auth="off") as server:
        create_table(client(server.url), "counters")
        yield server


def router(tmp_path: Path, dead_port: int, live_url: str) -> Router:
    """A router that prefers the dead region and has not yet probed anything (as in the
    moment a region dies): the request meets the black hole first."""
    config = ClusterConfig("atoll-test", (
        RegionConfig("dead", f"http://127.0.0.1:{dead_port}", "http://127.0.0.1:1"),
        RegionConfig("live", live_url, "http://127.0.0.1:2")), 1)

    def fetch(_url: str, _timeout_s: float) -> Any:
        return config.to_dict()

    return Router(["http://seed"], ("dead", "live"), fetch=fetch,
                  probe=lambda _url, _timeout_s: None, start=False, cache_dir=tmp_path)


@in_a_loop
async def test_an_add_meeting_a_black_holed_region_is_answered_by_the_next(
        tmp_path: Path, live_region: ServerProcess) -> None:
    before = client(live_region.url).get_item(
        TableName="counters", Key={"pk": {"S": "likes"}}).get("Item", {"n": {"N": "0"}})
    with black_hole() as dead_port:
        routes = router(tmp_path, dead_port, live_region.url)
        proxy = Proxy(routes, budget_s=BUDGET_S)
        try:
            began = time.monotonic()
            status, answer = await proxy.forward(TARGET, ADD_ONE, Request())
            took_s = time.monotonic() - began
        finally:
            proxy.close()
            routes.close()
    assert status == 200, answer
    added = int(orjson.loads(answer)["Attributes"]["n"]["N"])
    assert added == int(before["n"]["N"]) + 1  # counted once, in the live region
    assert took_s < CONNECT_TIMEOUT_S + 1.0 < BUDGET_S
    snapshot = routes.snapshot()
    assert snapshot["served_by"] == {"live": 1}
    assert snapshot["regions"]["dead"]["requests_failed"] == 1
    assert "not sent" in snapshot["regions"]["dead"]["last_error"]
