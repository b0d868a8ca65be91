"""HybridClock: monotonic stamps, remote stamps followed within a skew bound."""

from __future__ import annotations

from atoll.clock import HybridClock, hlc_logical, hlc_physical_ms, make_hlc


def clock_at(ms: list[int], max_skew_ms: int = 5000) -> HybridClock:
    return HybridClock(lambda: ms[0], max_skew_ms)


def test_tick_follows_physical_time() -> None:
    now = [1000]
    clock = clock_at(now)
    assert clock.tick() == make_hlc(1000)
    now[0] = 2000
    assert hlc_physical_ms(clock.tick()) == 2000


def test_tick_within_one_ms_counts_logically() -> None:
    clock = clock_at([1000])
    stamps = [clock.tick() for _ in range(3)]
    assert [hlc_logical(s) for s in stamps] == [0, 1, 2]


def test_clock_going_backwards_never_goes_back() -> None:
    now = [5000]
    clock = clock_at(now)
    before = clock.tick()
    now[0] = 1000
    assert clock.tick() > before


def test_observe_follows_a_remote_clock_within_the_bound() -> None:
    clock = clock_at([1000])
    remote = make_hlc(3000, 7)
    assert clock.observe(remote) > remote
    assert clock.bounded_count == 0


def test_observe_bounds_a_remote_clock_too_far_ahead() -> None:
    clock = clock_at([1000], max_skew_ms=5000)
    stamp = clock.observe(make_hlc(1_000_000))
    assert hlc_physical_ms(stamp) <= 1000 + 5000 + 1
    assert clock.bounded_count == 1


def test_restore_never_reissues_a_persisted_stamp() -> None:
    clock = clock_at([1000])
    clock.restore(make_hlc(9000, 3))
    assert clock.tick() > make_hlc(9000, 3)
    clock.restore(make_hlc(10))  # older: no effect
    assert clock.tick() > make_hlc(9000, 3)
