"""Workloads: what clients do to the cluster, separate from faults and checkers.

Theory of operation: `RandomWorkload.step` picks a live region and does one thing there —
a put, an update (a full new image built from what that region reads), a delete, a
multi-item transaction, or rarely a CreateTable/DeleteTable — over a small key space,
so that regions write the same items concurrently and conflicts happen. Every change a
region's `write` returned is acknowledged, and kept in `acked` for the checkers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from atoll.replication.change import Change, ItemWrite, Op, TableOp
from atoll.replication.replica import Replica

FIRST_TABLE = "t0"
MAX_TABLES = 4  # live and dead tables together: new names are never reused


@dataclass(slots=True)
class RandomWorkload:
    rng: random.Random
    keys: int = 6
    acked: list[Change] = field(default_factory=list)
    tables_made: int = 0
    counter: int = 0

    def setup(self, replica: Replica) -> None:
        """The first table, created in one region and replicated like any DDL."""
        self._write(replica, [TableOp(FIRST_TABLE, "create", _definition(FIRST_TABLE))])
        self.tables_made = 1

    def step(self, replicas: Mapping[str, Replica]) -> str:
        """Do one client action in a random live region; a short description for the trace."""
        rng = self.rng
        region = rng.choice(sorted(replicas))
        replica = replicas[region]
        live = sorted(name for name, state in replica.store.snapshot().tables.items())
        roll = rng.random()
        if roll < 0.01 and self.tables_made < MAX_TABLES:
            name = f"t{self.tables_made}"
            self.tables_made += 1
            ops: list[Op] = [TableOp(name, "create", _definition(name))]
        elif roll < 0.015 and len(live) > 1:
            ops = [TableOp(rng.choice(live[1:]), "delete")]
        elif not live:
            return f"{region}: no table yet"
        elif roll < 0.1:
            table = rng.choice(live)
            keys = rng.sample(range(self.keys), k=rng.randint(2, 3))
            ops = [self._item_op(replica, table, key) for key in keys]
        else:
            ops = [self._item_op(replica, rng.choice(live), rng.randrange(self.keys))]
        change = self._write(replica, ops)
        return f"{region}: wrote {change.origin}/{change.seq} ({len(ops)} ops)"

    def _item_op(self, replica: Replica, table: str, key_no: int) -> ItemWrite:
        pk = f"k{key_no}".encode()
        roll = self.rng.random()
        if roll < 0.2:
            return ItemWrite(table, pk, b"", None)
        self.counter += 1
        item: dict[str, Any] = {"pk": {"S": pk.decode()}, "v": {"N": str(self.counter)},
                                "by": {"S": replica.region}}
        stored = replica.store.snapshot().items.get((table, pk, b""))
        if roll < 0.5 and stored is not None and stored.item is not None:
            item = {**stored.item, "v": {"N": str(self.counter)}, "by": {"S": replica.region},
                    "n": {"N": str(len(stored.item))}}  # an update: a new full image
        return ItemWrite(table, pk, b"", item)

    def _write(self, replica: Replica, ops: list[Op]) -> Change:
        change = replica.write(ops)  # ops name only tables live in that region
        self.acked.append(change)
        return change


def _definition(name: str) -> dict[str, Any]:
    return {"TableName": name, "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
