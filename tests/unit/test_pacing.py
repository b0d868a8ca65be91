"""Pacing of the fold and the compaction sweep (atoll.replication.pacing): slices sized
by their measured cost to a time budget, and the pause that keeps the walk to its share
of the loop and the writer."""

from __future__ import annotations

import pytest

from atoll.replication.pacing import Pacing, Slicer


def test_the_first_slice_is_small_and_never_above_the_configured_size() -> None:
    assert Slicer(5, 200).size == 8
    assert Slicer(5, 3).size == 3


def test_slices_grow_by_at_most_double_towards_the_budget() -> None:
    slicer = Slicer(5, 200)
    sizes = []
    for _ in range(8):
        slicer.ran(slicer.size, slicer.size * 0.05)  # 50 us a row: 100 rows fit in 5 ms
        sizes.append(slicer.size)
    assert sizes == [16, 32, 64, 100, 100, 100, 100, 100]


def test_a_slow_slice_shrinks_the_next_at_once_and_never_below_one() -> None:
    slicer = Slicer(5, 200, size=100)
    slicer.ran(100, 50.0)  # 0.5 ms an item: ten fit
    assert slicer.size == 10
    slicer.ran(10, 400.0)  # a stalled machine: one at a time
    assert slicer.size == 1
    slicer.ran(0, 1000.0)  # nothing scanned: no measurement
    assert slicer.size == 1


def test_the_cost_estimate_is_smoothed() -> None:
    slicer = Slicer(10, 1000)
    slicer.ran(10, 10.0)  # 1 ms an item
    assert slicer.size == 10
    slicer.ran(10, 1.0)  # one quick slice (0.1 ms an item) moves the estimate by 30%
    assert slicer.cost_ms == pytest.approx(0.73)
    assert slicer.size == 13


def test_the_pause_keeps_the_walk_to_its_share() -> None:
    assert Pacing(5, 0.5).pause_s(0.004) == pytest.approx(0.004)
    assert Pacing(5, 0.25).pause_s(0.004) == pytest.approx(0.012)
    assert Pacing(5, 1.0).pause_s(0.004) == 0.0
    for ran_s in (0.0, 0.001, 0.02):
        pacing = Pacing(5, 0.4)
        assert ran_s / (ran_s + pacing.pause_s(ran_s) or 1) <= 0.4 + 1e-9


def test_bounds_are_checked() -> None:
    with pytest.raises(AssertionError):
        Slicer(0, 10)
    with pytest.raises(AssertionError):
        Pacing(5, 0.0)
