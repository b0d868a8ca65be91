"""What every engine feature module works with: `EngineContext` and `EngineSettings`.

Theory of operation: a feature module (tables, items, reads, batch, transactions,
indexes, ttl, tags, capacity, outbox) is a set of functions over one `EngineContext`:
the catalog of table definitions, the storage, the hybrid logical clock, this node's
region, the wall clock (`now_ms`, the one source of "now" for TTL, table timestamps and
idempotency windows, so a fake or skewed clock drives all of them) and the settings.
Nothing here knows about operations, tasks or the node: `Engine` (engine.py) builds the
context and maps operation names to handlers; the node runs background work over it.

Settings are given at construction and never change. What does change with the cluster
(the regions of its topology) is read through a provider the node supplies; a new index
asks for its backfill through a callback, because the node owns background tasks.

The storage is the `Storage` protocol (atoll.storage.protocol): every engine module
reaches it as `ctx.storage` and writes through `WriteTxn`, never an implementation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from atoll.backup.service import BackupService
from atoll.clock import HybridClock
from atoll.engine.catalog import Catalog
from atoll.engine.queryplan import QueryPlans
from atoll.engine.tabledef import DEFAULT_ACCOUNT
from atoll.storage import Storage

DEFAULT_TTL_INTERVAL_S = 30.0


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def no_replica_regions() -> tuple[str, ...]:
    return ()


def backfill_at_next_start(table_name: str, index_name: str) -> None:
    """Without a node to run it, an index stays CREATING until a node starts over this
    storage and resumes its backfill."""


@dataclass(frozen=True)
class EngineSettings:
    ttl_interval_s: float = DEFAULT_TTL_INTERVAL_S  # the TTL sweeper's pause between rounds
    endpoint_address: str = "127.0.0.1:8000"  # what DescribeEndpoints answers
    # every region of the cluster's current topology (DescribeTable's Replicas); () alone
    replica_regions: Callable[[], tuple[str, ...]] = no_replica_regions
    # (table, index): a GSI added by UpdateTable committed CREATING and needs its backfill
    start_backfill: Callable[[str, str], None] = backfill_at_next_start
    account_id: str = DEFAULT_ACCOUNT  # the account id in ARNs
    # table backups and point-in-time recovery (the node's); None: not available here
    backups: BackupService | None = None


class EngineContext:
    """The state engine features share (see the module docstring).

    Threading contract: every request handler runs on the event-loop thread. Write jobs
    (closures passed to `storage.write`) run one batch at a time, on the event-loop
    thread or the storage writer thread; they may read the catalog's commit view and
    tick `clock`, which only write jobs touch once the storage started."""

    def __init__(self, catalog: Catalog, storage: Storage, clock: HybridClock, region: str,
                 now_ms: Callable[[], int], settings: EngineSettings) -> None:
        self.catalog = catalog
        self.storage = storage
        self.clock = clock
        self.region = region
        self.now_ms = now_ms
        self.settings = settings
        # (tid, iid) -> (when in s, ItemCount, IndexSizeBytes) of large indexes
        self.index_stats_cache: dict[tuple[int, int], tuple[float, int, int]] = {}
        self.query_plans = QueryPlans()  # table Queries' key conditions, per request shape
