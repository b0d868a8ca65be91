"""A node's own tree work: building the trees of existing data, and scrubbing rows.

Theory of operation
- Building. A table written before trees were kept (or with `--no-trees`) has none;
  at start the node builds it from its rows a chunk at a time (`WriteTxn.tree_build`,
  one write job of about BUILD_ROWS rows each), pausing between chunks, while requests
  and replication go on: each chunk's job replaces its buckets with the XOR of their
  rows, so deltas written meanwhile are absorbed. Until the tree is complete the table
  answers verify with an Error (INCOMPLETE), never with a partial tree.
- Scrubbing. The trees only say what Atoll wrote; a row changed or deleted behind its
  back (a flipped bit on disk, an operator's SQL) is found by re-hashing the rows. The
  scrubber walks every table's buckets in order, continuously, `scrub_rows_per_s` rows a
  second at most, through the core's own Scrub request (antientropy.serve: the bucket's
  stored hash against the XOR of its rows, read in one snapshot; a mismatch is corrected
  in the tree and reported). What it finds is kept: the damaged buckets are evidence for
  the sessions this node runs (a repair then prefers the other region's copy), rows
  failing their checksum are listed in `/_atoll/status` and logged. Once the tree holds
  the damaged rows, the next comparison with a peer sees the difference.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from atoll.antientropy.hashing import bucket_of
from atoll.antientropy.messages import Scrub, Scrubbed
from atoll.antientropy.serve import MAX_SCRUB_BUCKETS, answer
from atoll.engine.context import EngineContext
from atoll.engine.treestore import StorageTreeStore, TreeNotReady
from atoll.errors import ServiceUnavailable
from atoll.storage.protocol import WriteJob
from atoll.storage.treeprotocol import TREE_BUCKET_BITS, TREE_BUCKETS, TreeAccess, tree_job

log = logging.getLogger(__name__)

BUILD_ROWS = 4000  # rows one build job re-hashes (a few milliseconds of the writer)
BUILD_PAUSE_S = 0.01
SCRUB_STEP_ROWS = 2000  # rows one scrub step aims at
IDLE_PAUSE_S = 1.0
DAMAGE_KEPT_S = 6 * 3600.0  # how long a damaged bucket stays evidence
MAX_DAMAGED_BUCKETS = 10_000  # per table
MAX_CORRUPT_KEYS = 1000  # listed per table


@dataclass
class TableScrub:
    """What the scrubber knows of one table."""

    next_bucket: int = 0
    passes: int = 0  # complete passes over the table
    rows: int = 0
    damaged: dict[int, float] = field(default_factory=dict)  # bucket -> when found (monotonic s)
    corrupt: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)  # per bucket


def buckets_for(rows: int, key_count: int) -> int:
    """Buckets that hold about `rows` rows of a table of `key_count` rows."""
    per_bucket = max(key_count, 1) / TREE_BUCKETS
    return max(1, min(MAX_SCRUB_BUCKETS, int(rows / per_bucket) if per_bucket else MAX_SCRUB_BUCKETS))


def _progress(access: TreeAccess, tid: int) -> tuple[int, int]:
    return access.tree_built(tid), access.key_count(tid)


def _build_step(tid: int, buckets: int) -> WriteJob:
    return tree_job(lambda txn: txn.tree_build(tid, buckets))


class TreeWork:
    """Building and scrubbing. Every use of the store goes through `run` (the thread
    verify reads the storage on)."""

    def __init__(self, ctx: EngineContext, store: StorageTreeStore,
                 run: Callable[[Callable[[], Any]], Awaitable[Any]],
                 scrub_rows_per_s: int) -> None:
        self.ctx = ctx
        self.store = store
        self._run = run  # runs a blocking call where the store may be used (awaitable)
        self.scrub_rows_per_s = scrub_rows_per_s
        self.tables: dict[str, TableScrub] = {}
        self.building: dict[str, int] = {}  # table -> buckets built, while building
        self.rows_scrubbed = 0
        self._sid = 0  # of the Scrub requests answered locally (no session reads them)

    # --- building ----------------------------------------------------------------------
    async def build_all(self) -> None:
        """Build every table's missing tree (bounded: BUILD_ROWS rows per write job)."""
        access = self.store.access
        for name in sorted(self.ctx.catalog.names()):
            table = self.ctx.catalog.get(name)
            if table is None:
                continue
            tid = table.tid
            built, rows = await self._run(functools.partial(_progress, access, tid))
            if built >= TREE_BUCKETS:
                continue
            log.warning("building the hash tree of %s (%d rows)", name, rows)
            step = buckets_for(BUILD_ROWS, rows)
            while built < TREE_BUCKETS and self.ctx.catalog.get(name) is table:
                self.building[name] = built
                built = await self.ctx.storage.write(_build_step(tid, step))
                if built == 0:  # the storage keeps no trees
                    break
                await asyncio.sleep(BUILD_PAUSE_S)
            self.building.pop(name, None)
            log.warning("hash tree of %s built", name)

    # --- scrubbing ---------------------------------------------------------------------
    async def scrub_forever(self) -> None:
        while self.scrub_rows_per_s > 0:
            names = sorted(self.ctx.catalog.names())
            if not names:
                await asyncio.sleep(IDLE_PAUSE_S)
                continue
            for name in names:
                state = self.tables.setdefault(name, TableScrub())
                try:
                    rows = await self.scrub_step(name, state)
                except (TreeNotReady, ServiceUnavailable) as exc:
                    log.info("scrub of %s waits: %s", name, exc)
                    rows = 0
                await asyncio.sleep(max(rows / self.scrub_rows_per_s, 0.05))
            for gone in set(self.tables) - set(names):
                del self.tables[gone]

    async def scrub_step(self, name: str, state: TableScrub) -> int:
        """Scrub the next buckets of one table; returns the rows re-hashed."""
        first = state.next_bucket
        self._sid += 1
        sid = self._sid

        def scrub() -> tuple[int, Any]:
            count = min(buckets_for(SCRUB_STEP_ROWS, self.store.key_count(name)),
                        TREE_BUCKETS - first)
            request = Scrub(sid, name, TREE_BUCKET_BITS, first, count)
            return count, answer(request, self.store, int(time.time() * 1000))

        count, response = await self._run(scrub)
        if not isinstance(response, Scrubbed):
            raise TreeNotReady(getattr(response, "error", "the scrub was refused"))
        self._record(name, state, first, count, response)
        state.next_bucket = (first + count) % TREE_BUCKETS
        if state.next_bucket == 0:
            state.passes += 1
        state.rows += response.rows
        self.rows_scrubbed += response.rows
        return response.rows

    def _record(self, name: str, state: TableScrub, first: int, count: int,
                response: Scrubbed) -> None:
        now_s = time.monotonic()
        for bucket, _stored, _rebuilt in response.damaged:
            log.warning("scrub: bucket %d of %s in %s changed behind Atoll's back; its tree "
                        "now follows the rows, and verify will compare them with the peers",
                        bucket, name, self.store.region)
            state.damaged[bucket] = now_s
        for bucket in [b for b, at in state.damaged.items() if now_s - at > DAMAGE_KEPT_S]:
            del state.damaged[bucket]
        while len(state.damaged) > MAX_DAMAGED_BUCKETS:
            del state.damaged[min(state.damaged, key=state.damaged.__getitem__)]
        for bucket in range(first, first + count):
            state.corrupt.pop(bucket, None)
        for pk, sk in response.corrupt:
            log.warning("scrub: a row of %s in %s fails its checksum (pk %s, sk %s): it is "
                        "not served; verify repairs it from a region with a good copy",
                        name, self.store.region, pk.hex(), sk.hex())
            state.corrupt.setdefault(bucket_of(pk), []).append((pk, sk))

    def damage(self, name: str) -> set[int]:
        state = self.tables.get(name)
        return set() if state is None else set(state.damaged)

    def status(self) -> dict[str, Any]:
        return {
            "rows_per_s": self.scrub_rows_per_s, "rows_total": self.rows_scrubbed,
            "building": {name: round(built / TREE_BUCKETS, 3)
                         for name, built in self.building.items()},
            "tables": {name: {
                "passes": s.passes, "position": round(s.next_bucket / TREE_BUCKETS, 3),
                "damaged_buckets": len(s.damaged),
                "corrupt_rows": [{"pk": pk.hex(), "sk": sk.hex()} for keys in s.corrupt.values()
                                 for pk, sk in keys][:MAX_CORRUPT_KEYS]}
                for name, s in sorted(self.tables.items())},
        }
