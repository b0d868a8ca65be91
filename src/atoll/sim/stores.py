"""The stores a simulated region runs on: the memory store, or the node's SQLite store.

Theory of operation: a `StoreKind` opens one store per region and reopens it after a
simulated crash (the region's shell is thrown away; its data is not). Over SQLite each
region is a real `SqliteStorage` file in a temporary directory (no fsync: the process
does not really crash), never started: jobs run synchronously through `write_sync`, on
the node's own `EngineReplicaStore` and its engine-side transaction (item rows, index
rows, the catalog), and a restart closes and reopens the file, recovering the catalog
and the next local seq from it as a node does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Protocol

from atoll.clock.hlc import HybridClock
from atoll.engine.replica_store import EngineReplicaStore, context_for
from atoll.replication.memory_store import MemoryStore
from atoll.replication.store import ReplicaStore, StoreTxn
from atoll.storage import SqliteStorage

Wrap = Callable[[StoreTxn], StoreTxn]
STORE_KINDS = ("memory", "sqlite")


class StoreKind(Protocol):
    name: str

    def open(self, region: str, now_ms: Callable[[], int]) -> tuple[ReplicaStore, HybridClock]:
        """The region's store (its data as the last crash left it) and a fresh clock."""
        ...

    def close(self) -> None:
        ...


class MemoryStores:
    name = "memory"

    def __init__(self, wrap: Callable[[str], Wrap | None] | None = None) -> None:
        self.wrap = wrap
        self.stores: dict[str, MemoryStore] = {}

    def open(self, region: str, now_ms: Callable[[], int]) -> tuple[ReplicaStore, HybridClock]:
        if region not in self.stores:
            self.stores[region] = MemoryStore(region, wrap=self.wrap(region) if self.wrap else None)
        return self.stores[region], HybridClock(now_ms)

    def close(self) -> None:
        self.stores.clear()


class SqliteStores:
    name = "sqlite"

    def __init__(self, wrap: Callable[[str], Wrap | None] | None = None) -> None:
        self.wrap = wrap
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.root = tempfile.mkdtemp(prefix="atoll-sim-", dir=base)
        self.storages: dict[str, SqliteStorage] = {}

    def open(self, region: str, now_ms: Callable[[], int]) -> tuple[ReplicaStore, HybridClock]:
        old = self.storages.pop(region, None)
        if old is not None:
            old.close()
        storage = SqliteStorage(os.path.join(self.root, f"{region}.db"), durable=False,
                                region=region)
        self.storages[region] = storage
        context = context_for(storage, region, now_ms)
        store = EngineReplicaStore(context, wrap=self.wrap(region) if self.wrap else None)
        return store, context.clock

    def close(self) -> None:
        for storage in self.storages.values():
            storage.close()
        self.storages.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def store_kind(name: str, wrap: Callable[[str], Wrap | None] | None = None) -> StoreKind:
    if name == "memory":
        return MemoryStores(wrap)
    if name == "sqlite":
        return SqliteStores(wrap)
    raise ValueError(f"store must be one of {STORE_KINDS}, not {name!r}")
