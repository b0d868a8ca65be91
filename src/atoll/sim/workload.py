"""Workloads: what clients do to the cluster, separate from faults and checkers.

Theory of operation: `RandomWorkload.step` picks a live region and does one thing there —
a put, an update (a full new image built from what that region reads), a delete, a
multi-item transaction, or rarely a CreateTable/DeleteTable — over a small key space,
so that regions write the same items concurrently and conflicts happen. Tables are real
engine definitions (some with a global secondary index, which items fill or leave
sparse), so the SQLite store maintains index rows as a node does. Every change a region
committed is acknowledged, and kept in `acked` for the checkers; a write the region's
disk refused is not.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from atoll.replication.change import Change, ItemWrite, Op, TableOp
from atoll.replication.store import ReplicaStore, snapshot

FIRST_TABLE = "t0"
MAX_TABLES = 4  # live and dead tables together: new names are never reused


class Client(Protocol):
    """A region as a client sees it."""

    name: str
    store: ReplicaStore

    def local_write(self, ops: list[Op]) -> Change | None: ...


@dataclass(slots=True)
class RandomWorkload:
    rng: random.Random
    keys: int = 6
    acked: list[Change] = field(default_factory=list)
    tables_made: int = 0
    counter: int = 0

    def setup(self, region: Client) -> None:
        """The first table, created in one region and replicated like any DDL."""
        self._write(region, [TableOp(FIRST_TABLE, "create", self._definition(FIRST_TABLE))])
        self.tables_made = 1

    def step(self, regions: Mapping[str, Client]) -> str:
        """Do one client action in a random live region; a short description for the trace."""
        rng = self.rng
        name = rng.choice(sorted(regions))
        region = regions[name]
        contents = snapshot(region.store)
        live = sorted(contents.tables)
        roll = rng.random()
        if roll < 0.01 and self.tables_made < MAX_TABLES:
            table = f"t{self.tables_made}"
            self.tables_made += 1
            ops: list[Op] = [TableOp(table, "create", self._definition(table))]
        elif roll < 0.015 and len(live) > 1:
            ops = [TableOp(rng.choice(live[1:]), "delete")]
        elif not live:
            return f"{name}: no table yet"
        elif roll < 0.1:
            table = rng.choice(live)
            keys = rng.sample(range(self.keys), k=rng.randint(2, 3))
            ops = [self._item_op(name, contents.items, table, key) for key in keys]
        else:
            ops = [self._item_op(name, contents.items, rng.choice(live), rng.randrange(self.keys))]
        change = self._write(region, ops)
        if change is None:
            return f"{name}: write refused ({len(ops)} ops)"
        return f"{name}: wrote {change.origin}/{change.seq} ({len(ops)} ops)"

    def _item_op(self, region: str, items: Mapping[Any, Any], table: str,
                 key_no: int) -> ItemWrite:
        pk = f"k{key_no}".encode()
        roll = self.rng.random()
        if roll < 0.2:
            return ItemWrite(table, pk, b"", None)
        self.counter += 1
        item: dict[str, Any] = {"pk": {"S": pk.decode()}, "v": {"N": str(self.counter)},
                                "by": {"S": region}}
        if self.rng.random() < 0.5:
            item["g"] = {"S": f"g{self.counter % 3}"}  # in the index (others: sparse)
        stored = items.get((table, pk, b""))
        if roll < 0.5 and stored is not None and stored.item is not None:
            item = {**stored.item, "v": {"N": str(self.counter)}, "by": {"S": region},
                    "n": {"N": str(len(stored.item))}}  # an update: a new full image
        return ItemWrite(table, pk, b"", item)

    def _write(self, region: Client, ops: list[Op]) -> Change | None:
        change = region.local_write(ops)  # ops name only tables live in that region
        if change is not None:
            self.acked.append(change)
        return change

    def _definition(self, name: str) -> dict[str, Any]:
        """An engine table definition (engine/tabledef.py's JSON form), deterministic."""
        indexes: list[dict[str, Any]] = []
        if self.rng.random() < 0.5:
            indexes.append({"name": "by-g", "kind": "GSI", "hash_key": "g", "range_key": None,
                            "projection": "ALL", "non_key_attributes": [], "iid": 1,
                            "status": "ACTIVE", "read_capacity": 0, "write_capacity": 0})
        return {"name": name, "hash_key": "pk", "range_key": None,
                "attribute_types": {"pk": "S", "g": "S"}, "billing_mode": "PAY_PER_REQUEST",
                "read_capacity": 0, "write_capacity": 0, "created_at": 0.0,
                "table_id": f"{name}-{self.rng.getrandbits(32):08x}",
                "deletion_protection": False, "billing_changed_at": None,
                "indexes": indexes, "next_iid": 2, "ttl_attribute": None, "tags": {}}
