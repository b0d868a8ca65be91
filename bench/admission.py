"""What admission (atoll.replication.admission) costs the apply path: peers' changes
applied with the key check and without it, in the same run.

    .venv/bin/python -m bench.admission [--changes 2000] [--rounds 5] [--batch 1000]

The apply job (`ApplyChanges`, the one driver the node and the simulator run) applies
`--changes` changes, each one PutItem of a fresh key (string keys into a table keyed by
`pk` S, number keys into one keyed by `n` N), in jobs of `--batch` changes, on:
- the node's store over SQLite (`EngineReplicaStore` on a `SqliteStorage`, run with
  `write_sync`, not durable: the CPU of the job itself, without the fsync that a
  deployed node's group commit adds to every job alike), and
- the memory store (the simulator's).
`checked` is the driver as it ships. `unchecked` runs the same jobs through a store
transaction that hides the tables' key schema, so that admission finds nothing to check
(`admission.key_schema` gives None) and stores the items as they come: the driver
without the key check. Both go through one identical wrapper, so the wrapper's cost is
in both. Rounds alternate which goes first. Rates are per second of this process's CPU
time (on a shared machine wall-clock rates follow the neighbours' load, CPU time much
less). Printed: changes per CPU second per round and store, the medians, and the ratio
checked / unchecked. Also the key check alone
(`admission.refuse_change` on the same changes, per change). Duplicates cost one
changelog read each and only when they occur: not measured here. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atoll.clock import HybridClock
from atoll.engine.replica_store import EngineReplicaStore, context_for
from atoll.replication.admission import refuse_change
from atoll.replication.apply import ApplyChanges
from atoll.replication.change import Change, ItemWrite, Op, TableOp, encode_change
from atoll.replication.memory_store import MemoryStore
from atoll.replication.merge import TableState
from atoll.replication.store import ReplicaStore, StoreTxn
from atoll.storage import SqliteStorage

NOW_MS = 1_700_000_000_000
DEFINITION: dict[str, Any] = {
    "hash_key": "pk", "range_key": None, "attribute_types": {"pk": "S"},
    "billing_mode": "PAY_PER_REQUEST", "read_capacity": 0, "write_capacity": 0,
    "created_at": 0.0, "deletion_protection": False, "billing_changed_at": None,
    "indexes": [], "next_iid": 1, "ttl_attribute": None, "tags": {}}


class Passing:
    """A store transaction passed through as is (what `Hiding` costs, minus hiding)."""

    def __init__(self, txn: StoreTxn) -> None:
        self.txn = txn
        self.hidden: dict[str, TableState | None] = {}

    def table_state(self, table: str) -> TableState | None:
        if table in self.hidden:
            return self.hidden[table]
        state = self.hidden[table] = self.txn.table_state(table)
        return state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.txn, name)


class Hiding(Passing):
    """Table states without their key schema: admission has nothing to check against
    (each table's hidden state made once per job, so hiding costs what passing does)."""

    def table_state(self, table: str) -> TableState | None:
        if table in self.hidden:
            return self.hidden[table]
        state = self.txn.table_state(table)
        if state is not None and state.definition is not None:
            state = TableState(state.created, state.version,
                               {k: v for k, v in state.definition.items() if k != "hash_key"})
        self.hidden[table] = state
        return state


def tables() -> list[tuple[Change, bytes]]:
    ops: list[Op] = [
        TableOp("s", "create", {**DEFINITION, "name": "s", "table_id": "s-1"}),
        TableOp("n", "create", {**DEFINITION, "name": "n", "table_id": "n-1", "hash_key": "n",
                                "attribute_types": {"n": "N"}})]
    return [_framed(Change.create("peer", seq, (NOW_MS - 1000) << 16, [op]))
            for seq, op in enumerate(ops, 1)]


def puts(count: int) -> list[tuple[Change, bytes]]:
    from atoll.model.keys import encode_key_value

    made = []
    for i in range(count):
        seq = 3 + i
        if i % 2:
            item = {"pk": {"S": f"user#{i:08d}"}, "name": {"S": "x" * 40}, "n": {"N": str(i)}}
            op = ItemWrite("s", f"user#{i:08d}".encode(), b"", item)
        else:
            item = {"n": {"N": str(i * 7 + 0.25)}, "name": {"S": "y" * 40}}
            op = ItemWrite("n", encode_key_value({"N": str(i * 7 + 0.25)}, "N"), b"", item)
        made.append(_framed(Change.create("peer", seq, (NOW_MS + i) << 16, [op])))
    return made


def _framed(change: Change) -> tuple[Change, bytes]:
    return change, encode_change(change)


def open_store(kind: str, root: Path, wrap: Callable[[StoreTxn], StoreTxn]
               ) -> tuple[ReplicaStore, Callable[[], None]]:
    if kind == "memory":
        return MemoryStore("here", wrap=wrap), lambda: None
    storage = SqliteStorage(str(root / f"{time.monotonic_ns()}.db"), durable=False,
                            region="here")
    return EngineReplicaStore(context_for(storage, "here", lambda: NOW_MS), wrap=wrap), \
        storage.close


def apply_rate(kind: str, root: Path, wrap: Callable[[StoreTxn], StoreTxn],
               changes: list[tuple[Change, bytes]], batch: int) -> float:
    store, close = open_store(kind, root, wrap)
    clock = HybridClock(lambda: NOW_MS)
    try:
        store.write(ApplyChanges(tuple(tables()), "here", clock, lambda: NOW_MS))
        started = time.process_time()
        applied = 0
        for first in range(0, len(changes), batch):
            job = ApplyChanges(tuple(changes[first:first + batch]), "here", clock,
                               lambda: NOW_MS)
            applied += store.write(job).applied
        cpu_s = time.process_time() - started
        assert applied == len(changes), (applied, len(changes))
        return applied / cpu_s
    finally:
        close()


def check_alone_us(changes: list[tuple[Change, bytes]]) -> float:
    states = {change.ops[0].table: TableState(change.version, change.version,
                                              change.ops[0].definition)  # type: ignore[union-attr]
              for change, _frame in tables()}
    started = time.process_time()
    for _repeat in range(10):
        for change, _frame in changes:
            refuse_change(change, states.get)
    return (time.process_time() - started) / (10 * len(changes)) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.admission", description=__doc__)
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    changes = puts(args.changes)
    builds = {"checked": Passing, "unchecked": Hiding}
    rates: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="atoll-bench-admission-") as tmp:
        for round_no in range(args.rounds):
            order = list(builds) if round_no % 2 == 0 else list(reversed(builds))
            for kind in ("sqlite", "memory"):
                line = []
                for build in order:
                    rate = apply_rate(kind, Path(tmp), builds[build], changes, args.batch)
                    rates.setdefault((kind, build), []).append(rate)
                    line.append(f"{build} {rate:,.0f}/cpu-s")
                print(f"round {round_no + 1} {kind:6}: " + ", ".join(line))
    for kind in ("sqlite", "memory"):
        checked = statistics.median(rates[(kind, "checked")])
        unchecked = statistics.median(rates[(kind, "unchecked")])
        print(f"{kind:6} median: checked {checked:,.0f}, unchecked {unchecked:,.0f} changes per "
              f"CPU second, ratio {checked / unchecked:.3f}")
    print(f"key check alone: {check_alone_us(changes):.2f} us per change "
          f"(one item write each, half string keys, half number keys)")


if __name__ == "__main__":
    main()
