"""The fold of a departed region's counters (atoll.replication.fold), in process.

Run: .venv/bin/python -m bench.fold [--items N] [--batch B] [--store sqlite|memory]
Builds one region's store (by default the node's SQLite store, as the simulator opens
it) holding N counters that three regions (a, b, x) each incremented, then takes x out
of the topology and runs the core's fold walk and jobs to the end, as the node's fold
loop does, with b's acknowledgements given. Prints the state bytes per item before and
after, and the fold's cost: process CPU seconds and items folded per CPU second (the
jobs and the walk; the SQLite store commits each job as a transaction, with no fsync,
as the simulator runs it). CPU time, not wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import statistics
import time

from atoll.clock.hlc import HybridClock
from atoll.model.writes import INCREMENT
from atoll.replication.apply import ApplyChanges, LocalWrite
from atoll.replication.change import Change, TableOp, encode_change
from atoll.replication.cursors import Cursor
from atoll.replication.fold import FoldWork
from atoll.replication.memory_store import MemoryStore
from atoll.replication.merge import ItemUpdate
from atoll.replication.store import ReplicaStore
from atoll.sim.stores import store_kind

DEFINITION = {"name": "t", "hash_key": "pk", "range_key": None,  # engine/tabledef.py's form
              "attribute_types": {"pk": "S"}, "billing_mode": "PAY_PER_REQUEST",
              "read_capacity": 0, "write_capacity": 0, "created_at": 0.0,
              "table_id": "t-00000001", "deletion_protection": False,
              "billing_changed_at": None, "indexes": [], "next_iid": 1, "ttl_attribute": None,
              "tags": {}}
CHUNK = 500  # changes per apply job while building


def _increments(region: str, clock: HybridClock, store: MemoryStore, items: int,
                create: bool) -> list[Change]:
    made = []
    if create:
        made.append(store.write(LocalWrite(region, clock, (TableOp("t", "create", DEFINITION),),
                                           lambda: 0)))
    for key in range(items):
        made.append(store.write(LocalWrite(region, clock, (ItemUpdate(
            "t", f"user#{key:06d}".encode(), b"", INCREMENT, "visits", {"N": "3"}),),
            lambda: 0)))
    return made


def build(store: ReplicaStore, clock: HybridClock, items: int) -> None:
    """x creates the table and increments every counter, b then a increment it too."""
    pending: list[Change] = []
    for region, start_ms, create in (("x", 1_000, True), ("b", 2_000, False)):
        source = MemoryStore(region)
        source_clock = HybridClock(lambda start_ms=start_ms: start_ms)
        if pending:
            source.write(ApplyChanges(tuple((c, encode_change(c)) for c in pending), region,
                                      source_clock, lambda: 0))
        pending += _increments(region, source_clock, source, items, create)
    for first in range(0, len(pending), CHUNK):
        chunk = pending[first:first + CHUNK]
        store.write(ApplyChanges(tuple((c, encode_change(c)) for c in chunk), "a", clock,
                                 lambda: 0))
    for key in range(items):
        store.write(LocalWrite("a", clock, (ItemUpdate(
            "t", f"user#{key:06d}".encode(), b"", INCREMENT, "visits", {"N": "1"}),),
            lambda: 0))


def state_bytes(store: ReplicaStore) -> list[int]:
    return [len(s.state) for s in store.contents().values() if s.item is not None]


def fold_all(store: ReplicaStore, clock: HybridClock, batch: int) -> tuple[float, int, int]:
    """(CPU seconds, items folded, fold changes) of the walk and jobs to the end."""
    work = FoldWork("a", scan_rows=500, batch_items=batch, pages_per_step=4)
    own = store.cursors()
    acked = {"b": {o: Cursor(c.seq, c.hlc) for o, c in own.items()}}
    started = time.process_time()
    for _ in range(1_000_000):
        job = work.step(store, ["a", "b"], acked, clock, lambda: 0)
        if job is not None:
            work.done(store.write(job))
        elif not work.busy and work.stats.state in ("done", "idle"):
            if work.stats.state == "done":
                break
    return time.process_time() - started, work.stats.folded_items, work.stats.fold_changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args(argv)
    kind = store_kind(args.store)
    try:
        store, clock = kind.open("a", lambda: 3_000)
        build(store, clock, args.items)
        before = state_bytes(store)
        cpu_s, folded, changes = fold_all(store, clock, args.batch)
        after = state_bytes(store)
    finally:
        kind.close()
    print(f"store {args.store}: {args.items} counters incremented by a, b and x; x leaves")
    print(f"state bytes per item: before fold median {statistics.median(before):.0f} "
          f"(mean {statistics.mean(before):.1f}), after median {statistics.median(after):.0f} "
          f"(mean {statistics.mean(after):.1f})")
    print(f"fold: {folded} items in {changes} changes of <= {args.batch}, {cpu_s:.2f} CPU s, "
          f"{folded / cpu_s:,.0f} items per CPU second ({cpu_s / max(folded, 1) * 1e6:.0f} us "
          f"an item)")
    return 0 if folded == args.items else 1


if __name__ == "__main__":
    raise SystemExit(main())
