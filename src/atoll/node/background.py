"""The node's background work over the engine: the TTL sweeper, index backfills and
stream upkeep (retention, shard rollover).

Theory of operation: the engine's features say what background work is (a TTL round,
a backfill of one index: engine/ttl.py, engine/indexes.py); the node decides when it
runs and owns the tasks. `start` (after the storage started) resumes every backfill a
restart interrupted (indexes still CREATING) and starts the sweeper and the streams'
upkeep; `backfill` is the engine's `start_backfill` setting, called once an UpdateTable
that adds a GSI committed; `stop` cancels every task and waits for them. A task that fails is logged
with its name and forgotten; the rest keep running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from atoll.engine import indexes, stream_upkeep, ttl
from atoll.engine.context import EngineContext

log = logging.getLogger(__name__)


class BackgroundWork:
    def __init__(self) -> None:
        self._context: EngineContext | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, ctx: EngineContext) -> None:
        self._context = ctx
        for table in ctx.catalog.tables():
            for index in table.indexes:
                if index.status == "CREATING":
                    self.backfill(table.name, index.name)
        self._spawn(ttl.sweeper(ctx), "ttl-sweeper")
        self._spawn(stream_upkeep.upkeep_loop(ctx), "stream-upkeep")

    def backfill(self, table_name: str, index_name: str) -> None:
        """Build a new index (UpdateTable's job committed it CREATING)."""
        if self._context is None:  # not started: `start` resumes it from the catalog
            return
        self._spawn(indexes.backfill(self._context, table_name, index_name),
                    f"backfill {table_name}.{index_name}")

    def running(self) -> list[str]:
        """Names of the tasks still running."""
        return sorted(task.get_name() for task in self._tasks)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._context = None

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())
        task.add_done_callback(done)
