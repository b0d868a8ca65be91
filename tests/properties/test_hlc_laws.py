"""HLC properties: stamps strictly increase whatever the physical clock and the remote
stamps do; observe never moves the clock past now + max_skew (+ logical carry); every
remote stamp beyond that bound is counted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atoll.clock import HybridClock, hlc_physical_ms, make_hlc

SKEW_MS = 5000
events = st.lists(st.tuples(st.integers(0, 20_000),  # physical now (may jump back)
                            st.one_of(st.none(), st.integers(0, 40_000))),  # remote ms
                  min_size=1, max_size=50)


@given(events)
def test_stamps_strictly_increase(script) -> None:
    now = [0]
    clock = HybridClock(lambda: now[0], SKEW_MS)
    last = 0
    for now_ms, remote_ms in script:
        now[0] = now_ms
        stamp = clock.tick() if remote_ms is None else clock.observe(make_hlc(remote_ms))
        assert stamp > last
        last = stamp


@given(events)
def test_observe_bounds_skew_and_counts_bounded_stamps(script) -> None:
    now = [0]
    clock = HybridClock(lambda: now[0], SKEW_MS)
    highest_now = 0
    expected_bounded = 0
    issued = 0
    for now_ms, remote_ms in script:
        now[0] = now_ms
        highest_now = max(highest_now, now_ms)
        issued += 1
        if remote_ms is None:
            stamp = clock.tick()
        else:
            expected_bounded += make_hlc(remote_ms) > make_hlc(now_ms + SKEW_MS, 0xFFFF)
            stamp = clock.observe(make_hlc(remote_ms))
        # Only logical carries (at most one per stamp) may push past the bound.
        assert hlc_physical_ms(stamp) <= highest_now + SKEW_MS + 1 + issued // 0xFFFF
    assert clock.bounded_count == expected_bounded
