"""The server-side request times /_atoll/status reports (atoll.http.timing)."""

from __future__ import annotations

from atoll.http.timing import RequestTimes

MS = 1_000_000


def test_the_summary_gives_percentiles_and_max_of_the_window() -> None:
    times = RequestTimes()
    at = 50_000 * MS
    began = at - 1000 * MS
    for n in range(1, 101):  # spans of 1..100 ms, answered within the last second
        times.add(began, began + n * MS)
    got = times.summary(window_s=2.0, at=at)
    assert got == {"window_s": 2.0, "requests": 100, "requests_total": 100,
                   "p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}


def test_requests_answered_before_the_window_are_left_out() -> None:
    times = RequestTimes()
    times.add(0, 1 * MS)  # answered 1 ms in, span 1 ms
    times.add(9_000 * MS, 9_000 * MS + 7 * MS)  # answered at 9.007 s, span 7 ms
    got = times.summary(window_s=2.0, at=10_000 * MS)
    assert (got["requests"], got["requests_total"], got["p50"], got["max"]) == (1, 2, 7.0, 7.0)
    empty = times.summary(window_s=2.0, at=60_000 * MS)
    assert empty == {"window_s": 2.0, "requests": 0, "requests_total": 2}


def test_the_ring_keeps_the_most_recent_requests() -> None:
    times = RequestTimes(ring=3)
    for n in range(1, 6):
        times.add(0, n * MS)  # span n ms
    got = times.summary(window_s=60.0, at=5 * MS)
    assert (got["requests"], got["requests_total"], got["max"], got["p50"]) == (3, 5, 5.0, 4.0)
