"""Verify in the deterministic simulator (issue 27 item 7): the node's verify protocol
(`Session` asking, `serve` answering over each region's own SQLite trees) runs against
seeded runs with every replication fault, during the run and after healing.

- Faults only verify can find, done after healing — a region silently dropping an
  applied change, a stored row's bytes flipped, a row deleted behind Atoll's back, a
  region's data restored from an old copy — are each named DIVERGED (exactly the keys
  whose stored rows differ between regions, read from the files), repaired, and the
  repaired regions pass the simulator's checkers: identical contents and cursors, every
  acknowledged write present, the contents equal to applying every change.
- No run without such a fault ever shows a DIVERGED key, mid-run (lag, partitions,
  crashes, purges, rebuilds) or after healing, and no deep pass finds a tree unlike its
  rows — but between a region and a peer that purged changes the region had not applied
  (the purge-log fault: the bounded maximum), which verdict.py judges DIVERGED by
  design; those are counted apart.

`make test` runs a few seeds of each (about a second of CPU a seed);
ATOLL_SIM_VERIFY_SEEDS=N runs N of each, e.g. `ATOLL_SIM_VERIFY_SEEDS=200 .venv/bin/python
-m pytest -q tests/sim/test_verify_sim.py`. A failure prints the command that replays it
(`python -m atoll.sim --seed N --store sqlite --verify-faults`).
"""

from __future__ import annotations

import os

import pytest

from atoll.antientropy import VerdictBook
from atoll.antientropy.verdict import Signature
from atoll.sim import SimConfig, run
from atoll.sim.simulator import Simulation, run_simulation
from atoll.sim.verification import differing_keys

SEEDS = int(os.environ.get("ATOLL_SIM_VERIFY_SEEDS", "3"))
FAULT_SEEDS = range(2000, 2000 + SEEDS)
QUIET_SEEDS = range(3000, 3000 + SEEDS)


def _config(seed: int, faults: bool) -> SimConfig:
    return SimConfig(seed=seed, regions=3 + seed % 3, store="sqlite", verify=not faults,
                     verify_faults=faults)


def _runs(seeds: range, faults: bool) -> tuple[list[str], dict[str, int]]:
    """Failures (with their replay commands) and the summed counters of the runs."""
    failures, totals = [], {}
    for seed in seeds:
        result = run(_config(seed, faults))
        if not result.ok:
            failures.append(f"seed {seed} failed (replay: {result.replay_command()}):\n  "
                            + "\n  ".join(result.problems))
        for name, value in result.summary.items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
    return failures, totals


def test_verify_finds_and_repairs_every_fault_only_it_can_see() -> None:
    failures, totals = _runs(FAULT_SEEDS, faults=True)
    assert not failures, "\n".join(failures)
    # not vacuous: sessions ran mid-run, some deep, some saw keys in flight; the faults
    # left keys to repair in every run (at least the dropped change and the damaged rows)
    assert totals["verify_sessions"] >= 4 * SEEDS
    assert totals["verify_deep"] >= SEEDS
    assert totals["verify_transient_keys"] > 0
    assert totals["verify_repairs"] >= 3 * SEEDS


def test_verify_never_cries_diverged_without_such_a_fault() -> None:
    failures, totals = _runs(QUIET_SEEDS, faults=False)
    assert not failures, "\n".join(failures)
    assert totals["verify_repairs"] == 0


def test_verify_does_not_change_the_replication_run() -> None:
    """Verify only reads (without faults): the run's events are those of the same seed
    without verify, with verify's own events added."""
    plain = run(SimConfig(seed=1003, regions=4, store="sqlite"))
    verified = run(SimConfig(seed=1003, regions=4, store="sqlite", verify=True))
    assert plain.ok and verified.ok
    assert [e for e in verified.trace if " verify " not in e] == plain.trace
    assert any(" verify " in e for e in verified.trace)


class NeverConfirms(VerdictBook):
    """A broken verdict book: no second sighting ever confirms anything."""

    def confirmed(self, token: int, table: str, a: str, b: str,
                  signature: Signature) -> frozenset[str] | None:
        return None


def test_the_checker_fails_when_verify_misses_a_divergence() -> None:
    """With a verdict book that never confirms, verify names nothing DIVERGED and
    repairs nothing: the checker must say which differing keys it missed."""
    sim = Simulation(_config(2000, faults=True))
    assert sim.verifier is not None
    sim.verifier.book = NeverConfirms()
    result = run_simulation(sim)
    assert not result.ok
    assert any("verify did not name it DIVERGED" in p for p in result.problems)


def test_differing_keys_treats_tombstones_as_no_item() -> None:
    a = {("t", b"k1", b""): (5, "a", b"{}"), ("t", b"k2", b""): None}
    b = {("t", b"k1", b""): (5, "a", b"{}")}
    c = {("t", b"k1", b""): (5, "a", b"{x}"), ("t", b"k3", b""): (1, "c", b"{}")}
    assert differing_keys({"a": a, "b": b}) == set()
    assert differing_keys({"a": a, "b": b, "c": c}) == {("t", b"k1", b""), ("t", b"k3", b"")}


@pytest.mark.parametrize("store", ["memory"])
def test_verify_needs_the_sqlite_store(store: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        SimConfig(seed=1, store=store, verify=True)


def test_a_region_past_a_peers_purged_log_is_told_apart() -> None:
    """Seed 2019: a peer's log was purged (the purge-log fault, as the bounded maximum
    does) past what another region had applied, which then rebuilt from a snapshot;
    verify judged a key DIVERGED between them while that ran, as verdict.py designs for a
    region past the retention bound. The run counts it apart and passes."""
    result = run(SimConfig(seed=2019, regions=3, store="sqlite", verify=True))
    assert result.ok, result.problems
    assert result.summary["verify_diverged_past_retention"] == 1


def test_past_retention_compares_cursors_with_the_other_sides_purge_points() -> None:
    from atoll.antientropy.messages import Opened
    from atoll.replication.cursors import Cursor
    from atoll.sim.verification import _Running

    running = _Running(None, 0, False)  # type: ignore[arg-type]
    running.opened["a"] = Opened(1, "a", b"c", None, {"x": Cursor(5, 50)}, {}, 0, ())
    running.opened["b"] = Opened(1, "b", b"c", None, {"x": Cursor(9, 90)},
                                 {"x": Cursor(5, 50)}, 0, ())
    assert not running.past_retention("a", "b")  # a applied all that b purged
    running.opened["b"] = Opened(1, "b", b"c", None, {"x": Cursor(9, 90)},
                                 {"x": Cursor(7, 70)}, 0, ())
    assert running.past_retention("a", "b") and running.past_retention("b", "a")
