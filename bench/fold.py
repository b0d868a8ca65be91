"""The fold of a departed region's counters and the compaction of acknowledged item
states (atoll.replication.fold), in process.

Run: .venv/bin/python -m bench.fold [--items N] [--batch B] [--store sqlite|memory]
                                     [--slice-ms MS]
Builds one region's store (by default the node's SQLite store, as the simulator opens
it) holding N items that x and b each put concurrently (one put loses: hidden entries) and
then, with a, incremented a counter of, then takes x
out of the topology and runs the core's walk and jobs to the end, as the node's fold
loop does, with b acknowledging everything: first the fold, then (the stable cut
needs two rounds of acknowledgements) the compaction sweep. Prints the state bytes per
item before, after the fold and after the compaction, and each pass's cost: process CPU
seconds and items per CPU second (the walk and the jobs; the SQLite store commits each
job as a transaction, without fsync, as the simulator runs it). CPU time, not wall
time: the machine is shared. Also printed: the CPU time of each step of the walk (a page
read and its states decoded: on the node's event loop) and of each job (on its writer
thread), the longest of each being about the longest the node's requests wait for the
walk on a quiet machine;
with `--slice-ms`, pages and jobs are sized as the node's shell sizes them
(atoll.replication.pacing), without it they are the fixed sizes above.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

from atoll.clock.hlc import HybridClock
from atoll.model.writes import INCREMENT
from atoll.replication.apply import ApplyChanges, LocalWrite
from atoll.replication.change import Change, ItemWrite, TableOp, encode_change
from atoll.replication.config import ReplicationConfig
from atoll.replication.cursors import Cursor
from atoll.replication.fold import FoldWork
from atoll.replication.memory_store import MemoryStore
from atoll.replication.merge import ItemUpdate
from atoll.replication.pacing import Slicer
from atoll.replication.store import ReplicaStore
from atoll.sim.stores import store_kind

DEFINITION = {"name": "t", "hash_key": "pk", "range_key": None,  # engine/tabledef.py's form
              "attribute_types": {"pk": "S"}, "billing_mode": "PAY_PER_REQUEST",
              "read_capacity": 0, "write_capacity": 0, "created_at": 0.0,
              "table_id": "t-00000001", "deletion_protection": False,
              "billing_changed_at": None, "indexes": [], "next_iid": 1, "ttl_attribute": None,
              "tags": {}}
CHUNK = 500  # changes per apply job while building


def _writes(region: str, clock: HybridClock, store: MemoryStore, items: int) -> list[Change]:
    made = []
    for key in range(items):
        pk = f"user#{key:06d}".encode()
        made.append(store.write(LocalWrite(region, clock, (ItemWrite(
            "t", pk, b"", {"pk": {"S": pk.decode()}, "status": {"S": f"set in {region}"}}),),
            lambda: 0)))
        made.append(store.write(LocalWrite(region, clock, (ItemUpdate(
            "t", pk, b"", INCREMENT, "visits", {"N": "3"}),), lambda: 0)))
    return made


def build(store: ReplicaStore, clock: HybridClock, items: int) -> None:
    """x creates the table; x and b, concurrently, put every item and increment its
    counter; then a increments every counter too."""
    x_store = MemoryStore("x")
    create = x_store.write(LocalWrite("x", HybridClock(lambda: 500), (
        TableOp("t", "create", DEFINITION),), lambda: 0))
    pending: list[Change] = [create]
    for region, start_ms in (("x", 1_000), ("b", 2_000)):
        source = x_store if region == "x" else MemoryStore(region)
        source_clock = HybridClock(lambda start_ms=start_ms: start_ms)
        if region != "x":
            source.write(ApplyChanges(((create, encode_change(create)),), region,
                                      source_clock, lambda: 0))
        pending += _writes(region, source_clock, source, items)
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


@dataclass
class Slices:
    """The CPU time of each step of the walk (a page read and decoded) and of each job,
    in ms (CPU, not wall: on a quiet machine the same), and the time the node's pacing
    sizes them to (`slice_ms`; 0: the fixed sizes)."""

    slice_ms: float
    steps_ms: list[float] = field(default_factory=list)
    jobs_ms: list[float] = field(default_factory=list)

    def line(self) -> str:
        def worst(values: list[float]) -> str:
            return f"p50 {statistics.median(values):.1f} ms, max {max(values):.1f} ms" \
                if values else "none"
        paced = f"sized to {self.slice_ms:g} ms" if self.slice_ms else "fixed sizes"
        return (f"slices ({paced}): {len(self.steps_ms)} steps {worst(self.steps_ms)}; "
                f"{len(self.jobs_ms)} jobs {worst(self.jobs_ms)}")


def run_passes(store: ReplicaStore, clock: HybridClock, batch: int, slices: Slices
               ) -> list[tuple[str, float, int, list[int]]]:
    """Per pass that wrote something: (what, CPU seconds, items, state bytes after).
    Pages of the node's size (ReplicationConfig); with `slices.slice_ms`, pages and
    jobs are sized as the node's shell sizes them (atoll.replication.pacing.Slicer)."""
    config = ReplicationConfig()
    rows = config.fold_scan_rows
    work = FoldWork("a", scan_rows=rows, batch_items=batch,
                    pages_per_step=config.fold_pages_per_step, compact_interval_ms=1)
    pages = Slicer(slices.slice_ms or 1, rows)
    jobs = Slicer(slices.slice_ms or 1, batch)
    own = store.cursors()
    acked = {"b": {o: Cursor(c.seq, c.hlc) for o, c in own.items()}}
    passes: list[tuple[str, float, int, list[int]]] = []
    idle = 0
    for now_ms in range(1, 100_000):
        acked["b"] = dict(store.cursors())  # b holds everything a holds, a's folds too
        before = (work.stats.folded_items, work.stats.compacted_items)
        started = time.process_time()
        while True:
            scanned, step_at = work.stats.scanned_rows, time.thread_time()
            job = work.step(store, ["a", "b"], acked, clock, lambda: 0, now_ms,
                            pages.size if slices.slice_ms else 0,
                            jobs.size if slices.slice_ms else 0)
            step_ms = (time.thread_time() - step_at) * 1000
            slices.steps_ms.append(step_ms)
            pages.ran(work.stats.scanned_rows - scanned, step_ms)
            if job is not None:
                job_at = time.thread_time()
                work.done(store.write(job))
                slices.jobs_ms.append((time.thread_time() - job_at) * 1000)
                jobs.ran(len(job.keys), slices.jobs_ms[-1])
            elif not work.busy:
                break
        cpu_s = time.process_time() - started
        folded = work.stats.folded_items - before[0]
        compacted = work.stats.compacted_items - before[1]
        if folded or compacted:
            idle = 0
            passes.append(("fold" if folded else "compaction", cpu_s, folded or compacted,
                           state_bytes(store)))
        else:
            idle += 1
            if idle > 4:
                break
    return passes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--slice-ms", type=float, default=0.0,
                        help="size pages and jobs as the node does, to this many ms")
    args = parser.parse_args(argv)
    slices = Slices(args.slice_ms)
    kind = store_kind(args.store)
    try:
        store, clock = kind.open("a", lambda: 3_000)
        build(store, clock, args.items)
        before = state_bytes(store)
        passes = run_passes(store, clock, args.batch, slices)
    finally:
        kind.close()
    print(f"store {args.store}: {args.items} items put concurrently by x and b, counters "
          f"incremented by a, b and x; x leaves")
    print(f"state bytes per item before: median {statistics.median(before):.0f} "
          f"(mean {statistics.mean(before):.1f})")
    for what, cpu_s, items, after in passes:
        print(f"{what}: {items} items, {cpu_s:.2f} CPU s, {items / cpu_s:,.0f} items per CPU "
              f"second ({cpu_s / items * 1e6:.0f} us an item); state bytes per item after: "
              f"median {statistics.median(after):.0f} (mean {statistics.mean(after):.1f})")
    print(slices.line())
    kinds = [what for what, *_rest in passes]
    return 0 if kinds[:1] == ["fold"] and "compaction" in kinds else 1


if __name__ == "__main__":
    raise SystemExit(main())
