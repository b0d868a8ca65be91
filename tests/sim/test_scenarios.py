"""Replication as scenario scripts (in the style of etcd raft's tests): three regions
running the node's replication core in the simulator, over the memory store and over the
node's SQLite store, a script of writes, cuts, crashes and faults, and the expected
contents, cursors and conflict logs. No random faults: a clean network with short delays.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from atoll.replication.change import Change, ItemWrite
from atoll.sim import SimConfig
from atoll.sim.network import LinkFaults
from atoll.sim.simulator import Simulation

A, B, C = "us-east", "eu-west", "ap-south"


class Script:
    def __init__(self, store: str) -> None:
        self.sim = Simulation(SimConfig(seed=5, regions=3, store=store, fault_p=0.0,
                                        write_p=0.0))
        self.sim.network.faults = LinkFaults(delay_min_ms=1, delay_max_ms=5)
        self.sim.workload.setup(self.sim.live[A])  # table t0, created in A
        self.run(300)

    def run(self, ms: int) -> None:
        end = self.sim.now_ms + ms
        while self.sim.now_ms < end:
            self.sim.step()

    def write(self, region: str, key: str, value: int | None) -> Change:
        item = None if value is None else {"pk": {"S": key}, "v": {"N": str(value)}}
        change = self.sim.live[region].local_write([ItemWrite("t0", key.encode(), b"", item)])
        assert change is not None
        return change

    def value(self, region: str, key: str) -> Any:
        stored = self.sim.stores[region].contents().get(("t0", key.encode(), b""))
        return None if stored is None or stored.item is None else stored.item["v"]["N"]

    def cursor(self, region: str, origin: str) -> int:
        return self.sim.stores[region].cursors().get(origin, (0, 0))[0]


@pytest.fixture(params=["memory", "sqlite"])
def script(request: pytest.FixtureRequest) -> Iterator[Script]:
    opened = Script(request.param)
    yield opened
    opened.sim.kind.close()


def test_a_write_reaches_every_region(script: Script) -> None:
    change = script.write(A, "k", 1)
    script.run(100)
    assert [script.value(r, "k") for r in (A, B, C)] == ["1", "1", "1"]
    assert all(script.cursor(r, A) == change.seq for r in (B, C))


def test_the_later_of_two_concurrent_writes_wins_and_both_sides_log_the_loser(
        script: Script) -> None:
    script.sim.cut(A, B)
    script.sim.cut(A, C)
    script.write(A, "k", 1)
    script.run(5)
    script.write(B, "k", 2)  # later, and without having seen A's write
    script.sim.heal()
    script.run(800)
    assert [script.value(r, "k") for r in (A, B, C)] == ["2", "2", "2"]
    for region in (A, B):
        [conflict] = script.sim.stores[region].conflicts()
        assert (conflict.winner.origin, conflict.loser.origin) == (B, A)


def test_a_clean_overwrite_is_not_a_conflict(script: Script) -> None:
    script.write(A, "k", 1)
    script.run(100)
    script.write(B, "k", 2)  # B has seen A's write: it overwrites it knowingly
    script.run(100)
    assert all(not script.sim.stores[r].conflicts() for r in (A, B, C))


def test_a_delete_beats_an_older_concurrent_put_that_arrives_late(script: Script) -> None:
    script.sim.cut(A, C)
    script.sim.cut(B, C)
    script.write(C, "k", 1)
    script.run(5)
    script.write(A, "k", None)
    script.run(100)
    script.sim.heal()
    script.run(800)
    assert [script.value(r, "k") for r in (A, B, C)] == [None, None, None]


def test_a_restarted_region_resumes_from_its_stored_cursors(script: Script) -> None:
    script.write(A, "k", 1)
    script.run(100)
    script.sim.crash(B)
    last = [script.write(A, f"k{n}", n) for n in range(40)][-1]  # more than a batch (16)
    script.run(50)
    script.sim.restart(B)
    script.run(600)
    assert script.cursor(B, A) == last.seq and script.value(B, "k39") == "39"


def test_a_region_behind_a_purged_log_is_rebuilt_from_a_snapshot(script: Script) -> None:
    script.sim.cut(A, C)
    script.sim.cut(B, C)
    for n in range(10):
        script.write(A, f"k{n}", n)
    script.write(B, "k3", None)
    script.run(200)
    script.sim.purge_log(A)  # as the bounded maximum would: C has not acknowledged them
    script.sim.purge_log(B)
    script.run(100)
    script.sim.heal()
    script.run(1500)
    assert script.sim.record.counters.get("rebuilds", 0) >= 1
    assert script.sim.stores[C].cursors() == script.sim.stores[A].cursors()
    assert [script.value(C, f"k{n}") for n in range(5)] == ["0", "1", "2", None, "4"]
    after = script.write(C, "after", 1)  # C's own numbering continues
    script.run(100)
    assert script.value(A, "after") == "1" and script.cursor(A, C) == after.seq


def test_a_full_disk_fails_applies_until_it_is_freed(script: Script) -> None:
    script.sim.toggle_disk(B)
    script.write(A, "k", 1)
    script.run(300)
    assert script.value(B, "k") is None and script.sim.live[B].local_write([]) is None
    script.sim.toggle_disk(B)
    script.run(500)
    assert script.value(B, "k") == "1"
    assert script.sim.record.counters.get("failed_jobs", 0) > 0
