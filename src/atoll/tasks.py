"""TaskSet: the background tasks one owner (a service of the node) runs and stops.

Theory of operation: a task is held from `spawn` until it ends, so nothing the owner
started is garbage-collected while it runs and `stop` can reach all of it. A task that
fails is logged, with its name, through the owner's logger and then forgotten; the other
tasks keep running. `cancel_all` cancels every task held and waits until each has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any


class TaskSet:
    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `coro` as a task named `name`, held until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self._log.error("%s failed", name, exc_info=t.exception())
        task.add_done_callback(done)
        return task

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
