"""A region leaves the topology and its counters are folded (atoll.replication.fold), in
the simulator: the node's replication core and fold jobs over the memory store and the
node's SQLite store.

Seeded runs (`python -m atoll.sim --seed N --retire`): after the usual run heals, the
last region leaves; writes and faults (crashes, partitions, full disks, purged logs) go
on among the others while the lowest-named one folds, then everything heals again and
the checkers judge: every counter equals exactly its acknowledged increments, every
region holds identical items and identical item states, and no state counts the
departed region apart any more. A scenario crashes the folding region in the middle of
its pass: the restarted region folds the rest.
"""

from __future__ import annotations

import pytest

from atoll.model.writes import INCREMENT
from atoll.replication.merge import ItemUpdate
from atoll.sim import SimConfig, checkers, run
from atoll.sim.network import LinkFaults
from atoll.sim.simulator import Simulation

MEMORY_SEEDS = range(2000, 2060)
SQLITE_SEEDS = range(3000, 3012)
KEYS = 12


def _failures(seeds: range, store: str) -> list[str]:
    failures = []
    for seed in seeds:
        result = run(SimConfig(seed=seed, regions=3 + seed % 3, store=store, retire=True))
        if not result.ok:
            failures.append(f"seed {seed} failed (replay: {result.replay_command()}):\n  "
                            + "\n  ".join(result.problems))
    return failures


def test_seeded_runs_where_a_region_leaves_fold_it_and_count_exactly() -> None:
    failures = _failures(MEMORY_SEEDS, "memory")
    assert not failures, "\n".join(failures)


def test_seeded_runs_where_a_region_leaves_over_the_nodes_sqlite_store() -> None:
    failures = _failures(SQLITE_SEEDS, "sqlite")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_fold_interrupted_by_a_crash_is_finished_after_the_restart(store: str) -> None:
    sim = Simulation(SimConfig(seed=9, regions=3, store=store, fault_p=0.0, write_p=0.0))
    try:
        sim.network.faults = LinkFaults(delay_min_ms=1, delay_max_ms=5)
        first = sim.regions[0]
        sim.workload.setup(sim.live[first])
        _steps(sim, 300)
        for region in sim.regions:  # every region increments every key's counter
            for key in range(KEYS):
                change = sim.live[region].local_write(
                    [ItemUpdate("t0", f"k{key}".encode(), b"", INCREMENT, "c", {"N": "1"})])
                assert change is not None
                sim.workload.acked.append(change)
        _steps(sim, 400)
        assert sim.caught_up()
        departed = sim.regions[-1]
        sim.retire(departed)
        folder = min(sim.regions)
        for _ in range(2000):  # until the folder is part-way through its pass
            sim.step()
            if sim.live[folder].core.fold.stats.folded_items >= 2:
                break
        folded_before = sim.live[folder].core.fold.stats.folded_items
        assert 0 < folded_before < KEYS, "the bounded batches fold a few items at a time"
        assert checkers.folded(sim.stores, sim.retired), "some items are not folded yet"
        sim.crash(folder)
        _steps(sim, 50)
        sim.restart(folder)
        for _ in range(4000):
            sim.step()
            if sim.caught_up() and not checkers.folded(sim.stores, sim.retired):
                break
        assert not checkers.folded(sim.stores, sim.retired)
        assert sim.live[folder].core.fold.stats.folded_items <= KEYS - folded_before
        assert not checkers.converged(sim.stores)
        assert not checkers.states_converged(sim.stores)
        updates = [(change, ItemUpdate("t0", change.ops[0].pk, b"", INCREMENT, "c",
                                       {"N": "1"})) for change in sim.workload.acked[1:]]
        assert not checkers.counters_and_sets(sim.stores, sim.workload.acked, updates)
        for store_ in sim.stores.values():
            items = store_.contents()
            assert all(items[("t0", f"k{k}".encode(), b"")].item["c"] == {"N": "3"}  # type: ignore[index]
                       for k in range(KEYS))
    finally:
        sim.kind.close()


def _steps(sim: Simulation, ms: int) -> None:
    end = sim.now_ms + ms
    while sim.now_ms < end:
        sim.step()
