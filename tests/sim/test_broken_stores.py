"""The simulation catches a broken store: a defect in how a store applies changes fails
the seeded runs, with the seed that shows it.

The defects are test-only wrappers around a store's transactions (the stores take one as
`wrap`), never monkeypatches: the SQLite store with a cursor read one ahead, so that its
apply takes change N+2 for the one after N (it applies past a gap), and the memory store
with the fault `atoll drill` uses, which silently drops every 10th replicated item write.
"""

from __future__ import annotations

from typing import Any

from atoll.replication.faults import DropItemWrites
from atoll.replication.store import StoreTxn
from atoll.sim import SimConfig, run
from atoll.sim.stores import MemoryStores, SqliteStores

SEEDS = range(2000, 2005)
HEAL_STEPS_MAX = 1000  # a broken run never converges: do not wait the full bound for it


class CursorOneAhead:
    """A store transaction whose cursor read of peers' origins is one too high."""

    def __init__(self, txn: StoreTxn, region: str) -> None:
        self._txn = txn
        self._region = region

    def cursor_seq(self, origin: str) -> int:
        seq = self._txn.cursor_seq(origin)
        return seq + 1 if origin != self._region and seq > 0 else seq

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)


def _reads_one_ahead(region: str) -> Any:
    return lambda txn: CursorOneAhead(txn, region)


def test_an_sqlite_apply_that_goes_past_a_gap_fails_the_simulation() -> None:
    configs = [SimConfig(seed=seed, store="sqlite", heal_steps_max=HEAL_STEPS_MAX)
               for seed in SEEDS]
    healthy = [run(config) for config in configs]
    assert all(result.ok for result in healthy), [r.problems for r in healthy]
    broken = [run(config, SqliteStores(wrap=_reads_one_ahead)) for config in configs]
    assert not any(result.ok for result in broken)
    problems = [p for result in broken for p in result.problems]
    assert any(" misses " in p for p in problems), problems[:5]  # the log has the gap
    assert any("differ" in p for p in problems), problems[:5]  # and so do the contents
    assert broken[0].replay_command().startswith(f"python -m atoll.sim --seed {SEEDS[0]} ")


def test_a_store_that_drops_replicated_writes_fails_the_simulation() -> None:
    faults: list[DropItemWrites] = []

    def dropping(region: str) -> DropItemWrites:
        faults.append(DropItemWrites(region, every=10))
        return faults[-1]

    broken = [run(SimConfig(seed=seed, heal_steps_max=HEAL_STEPS_MAX), MemoryStores(wrap=dropping))
              for seed in SEEDS]
    assert sum(fault.dropped for fault in faults) > 0
    assert not any(result.ok for result in broken)
    problems = [p for result in broken for p in result.problems]
    assert any("differs from the reference" in p for p in problems), problems[:5]
