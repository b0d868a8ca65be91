"""Stream upkeep: retention and shard rollover, in write jobs.

Theory of operation: one write job (`upkeep_job`) does a round for some streams, with
"now" fixed when it was made: a stream disabled more than 24 hours ago goes with its
shards and records; otherwise its records older than 24 hours are trimmed (at most
TRIM_BATCH a round, oldest first), its shards closed more than 24 hours ago are
forgotten, and, if it is enabled, its open shard rolls over once it is 4 hours old and
holds a record. Every step is a storage primitive that checks its own condition, so a
round made from a stale list of streams does nothing wrong.

The node runs a round over every stream each UPKEEP_INTERVAL_S (`upkeep_loop`). A read
of a stream also runs one first, for that stream, when it finds it due (`due`): so no
read serves a record older than 24 hours or a shard past its rollover just because the
background round has not come yet, and tests move time with the engine's clock alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from atoll.engine.context import EngineContext
from atoll.storage import WriteTxn
from atoll.streams.shards import RETENTION_MS, SHARD_ROLL_MS, Shard, Stream, roll_due

UPKEEP_INTERVAL_S = 60.0
TRIM_BATCH = 10_000  # records trimmed per stream and round
MAX_ROUNDS = 100  # per upkeep call: 1,000,000 records per stream at most


def upkeep_job(streams: list[Stream], now_ms: int) -> Callable[[WriteTxn], int]:
    """A job doing one round for `streams`; it returns how many streams trimmed a full
    batch (and so may have more to trim)."""
    def job(txn: WriteTxn) -> int:
        cutoff = now_ms - RETENTION_MS
        unfinished = 0
        for stream in streams:
            if stream.disabled_ms is not None and stream.disabled_ms < cutoff:
                txn.stream_drop(stream.sid, cutoff)
                continue
            if txn.stream_trim(stream.sid, cutoff, TRIM_BATCH) == TRIM_BATCH:
                unfinished += 1
            txn.stream_forget_shards(stream.sid, cutoff)
            if stream.disabled_ms is None:
                txn.stream_roll(stream.sid, now_ms, now_ms - SHARD_ROLL_MS)
        return unfinished
    return job


async def upkeep(ctx: EngineContext, sids: set[int] | None = None) -> None:
    """Rounds for the streams `sids` (all if None) until none has more to trim."""
    for _ in range(MAX_ROUNDS):
        streams = [Stream(*row) for row in ctx.storage.streams()
                   if sids is None or row[0] in sids]
        if not streams:
            return
        if not await ctx.storage.write(upkeep_job(streams, ctx.now_ms())):
            return


def due(ctx: EngineContext, stream: Stream, shards: list[Shard]) -> bool:
    """Whether a round would change what a read of `stream` sees now."""
    now_ms = ctx.now_ms()
    cutoff = now_ms - RETENTION_MS
    if stream.disabled_ms is not None and stream.disabled_ms < cutoff:
        return True
    if any(shard.closed_ms is not None and shard.closed_ms < cutoff for shard in shards):
        return True
    head = ctx.storage.stream_records(stream.sid, stream.trimmed_pos + 1, 1)
    if head and head[0][1] < cutoff:
        return True
    if stream.disabled_ms is None and shards and roll_due(shards[-1], now_ms):
        return ctx.storage.stream_last_pos(stream.sid) >= shards[-1].first_pos
    return False


async def upkeep_loop(ctx: EngineContext, interval_s: float = UPKEEP_INTERVAL_S) -> None:
    """The node's background upkeep: a round over every stream each `interval_s`."""
    while True:
        await upkeep(ctx)
        await asyncio.sleep(interval_s)
