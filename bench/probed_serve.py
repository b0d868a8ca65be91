"""`atoll serve` with an event-loop lag probe, for benches that ask what background work
does to the loop (bench/sweep_live.py).

Run: python -m bench.probed_serve <atoll serve arguments>   (with ATOLL_LAG_FILE set)
The node runs as `python -m atoll serve` does; one more task on its loop sleeps
PROBE_MS at a time and records how late each wake-up was: a callback that holds the
loop (or a thread that holds the GIL) for X ms delays the wake-up by about X ms. Every
REPORT_S it appends one JSON line to $ATOLL_LAG_FILE: the wall time, the number of
samples, the largest lateness, the lateness at the 99th percentile and how many
samples were later than 20 ms (`{region}` in the path: the node's region), and how many
full (generation 2) garbage collections ran and the longest of them. The probe costs
one wake-up every PROBE_MS.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from typing import Any

import orjson
import uvloop

PROBE_MS = 5
REPORT_S = 0.5
STALL_MS = 20.0


_GC_MS: list[float] = []  # full collections since the last report, how long each took
_GC_STARTED = [0.0]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if info.get("generation") != 2:
        return
    if phase == "start":
        _GC_STARTED[0] = time.perf_counter()
    else:
        _GC_MS.append((time.perf_counter() - _GC_STARTED[0]) * 1000)


async def _probe(path: str) -> None:
    gc.callbacks.append(_on_gc)
    late_ms: list[float] = []
    reported = time.monotonic()
    with open(path, "ab") as out:
        while True:
            before = time.monotonic()
            await asyncio.sleep(PROBE_MS / 1000)
            now = time.monotonic()
            late_ms.append((now - before) * 1000 - PROBE_MS)
            if now - reported >= REPORT_S:
                ordered = sorted(late_ms)
                out.write(orjson.dumps({
                    "t": time.time(), "n": len(ordered), "max_ms": round(ordered[-1], 2),
                    "p99_ms": round(ordered[int(len(ordered) * 0.99)], 2),
                    "over_20ms": sum(1 for v in ordered if v > STALL_MS),
                    "gc2_n": len(_GC_MS), "gc2_max_ms": round(max(_GC_MS, default=0.0), 1),
                    }) + b"\n")
                out.flush()
                late_ms.clear()
                _GC_MS.clear()
                reported = now


class _ProbedPolicy(uvloop.EventLoopPolicy):
    def new_event_loop(self) -> Any:
        loop = super().new_event_loop()
        path = os.environ.get("ATOLL_LAG_FILE", "")
        if "--region" in sys.argv:
            path = path.replace("{region}", sys.argv[sys.argv.index("--region") + 1])
        if path:
            loop.call_soon(lambda: loop.create_task(_probe(path)))
        return loop


def _install() -> None:
    asyncio.set_event_loop_policy(_ProbedPolicy())


def main() -> None:
    uvloop.install = _install  # the node installs uvloop's policy at start: ours instead
    from atoll.cli.main import main as atoll_main

    sys.argv[0] = "atoll"
    atoll_main()


if __name__ == "__main__":
    main()
