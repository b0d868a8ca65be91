"""Deterministic simulation: seeded runs of 3–5 regions running the node's replication
core (atoll.replication.core, driven by the simulator's shell) over the memory store and
over the node's SQLite store, with random writes, deletes, transactions, DDL, partitions
(full and partial), message loss/duplication/reordering/corruption, clock skew, node
restarts, full disks and purged changelogs that force rebuilds from snapshots. After
healing, all regions hold byte-identical data, every acknowledged write is present or
superseded by a later write that knew it or that the conflict log records, no cursor is
past a gap, and the contents equal applying every change to one fresh store. A failure
prints its seed and the command that replays it.
"""

from __future__ import annotations

import pytest

from atoll.replication import ItemWrite
from atoll.sim import SimConfig, run
from atoll.sim.simulator import Simulation

MEMORY_SEEDS = range(480)
SQLITE_SEEDS = range(1000, 1060)  # other seeds than the memory runs': more ground covered
CHUNK = 60


def _config(seed: int, store: str = "memory") -> SimConfig:
    return SimConfig(seed=seed, regions=3 + seed % 3, store=store)


def _failures(seeds: range, store: str) -> list[str]:
    failures = []
    for seed in seeds:
        result = run(_config(seed, store))
        if not result.ok:
            failures.append(f"seed {seed} failed (replay: {result.replay_command()}):\n  "
                            + "\n  ".join(result.problems))
    return failures


@pytest.mark.parametrize("first", range(0, len(MEMORY_SEEDS), CHUNK))
def test_seeded_runs_converge_and_lose_nothing(first: int) -> None:
    failures = _failures(MEMORY_SEEDS[first:first + CHUNK], "memory")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("first", range(0, len(SQLITE_SEEDS), CHUNK // 4))
def test_seeded_runs_over_the_nodes_sqlite_store(first: int) -> None:
    failures = _failures(SQLITE_SEEDS[first:first + CHUNK // 4], "sqlite")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("seed", [0, 7, 123])
def test_same_seed_same_trace(seed: int) -> None:
    first, second = run(_config(seed)), run(_config(seed))
    assert first.trace_hash == second.trace_hash
    assert first.trace == second.trace


@pytest.mark.parametrize("seed", [3, 11, 1004])
def test_the_sqlite_store_replays_the_memory_stores_run(seed: int) -> None:
    """Both stores behave alike in every observable way: a seed makes the same run, event
    for event, over the memory store and over the node's SQLite store."""
    memory, sqlite = run(_config(seed)), run(_config(seed, "sqlite"))
    assert memory.ok and sqlite.ok
    assert memory.trace == sqlite.trace


def test_different_seeds_differ() -> None:
    assert run(_config(1)).trace_hash != run(_config(4)).trace_hash


def test_the_runs_exercise_the_faults() -> None:
    """The fault mix is not vacuous: across a few seeds every kind of trouble happens."""
    totals: dict[str, int] = {}
    for seed in range(20):
        for key, value in run(_config(seed)).summary.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    for key in ("crashes", "conflicts", "refused_records", "bad_messages", "purged",
                "clock_bounded", "net_dropped", "net_duplicated", "net_corrupted",
                "held_batches", "failed_jobs", "rebuilds", "rebuilds_failed", "refused_pulls"):
        assert totals.get(key, 0) > 0, key


def test_partial_partition_relays_through_the_third_region() -> None:
    """A–C cut for the whole run, both reach B: C's writes still reach A (through B)."""
    sim = Simulation(SimConfig(seed=99, regions=3, fault_p=0.0))
    a, _, c = sim.regions
    sim.cut(a, c)
    sim.workload.setup(sim.live[a])
    for _ in range(200):
        sim.step()
    change = sim.live[c].local_write([ItemWrite("t0", b"k", b"", {"pk": {"S": "k"}})])
    assert change is not None
    for _ in range(200):
        sim.step()
    assert sim.network.cuts  # still cut
    assert sim.stores[a].cursors()[c].seq == change.seq
    assert ("t0", b"k", b"") in sim.stores[a].contents()
    sim.kind.close()
