"""Replication lag per origin (atoll.replication.lag): records behind what any region
reported, seconds behind in the origin's clock, or the silence of an origin that no
longer answers."""

from __future__ import annotations

from atoll.clock.hlc import make_hlc
from atoll.replication.lag import CATCHING_UP, LIVE, UNREACHABLE, origin_lags

GRACE_S = 2.0
T0 = 1_800_000_000_000  # ms


def _at(seq: int, ms: int) -> tuple[int, int]:
    return seq, make_hlc(ms)


def test_caught_up_with_an_answering_origin_is_live_with_no_lag() -> None:
    own = {"a": _at(10, T0), "b": _at(5, T0)}
    lags = origin_lags(["b"], own, [{"b": _at(5, T0)}], {"b": 0.3}, GRACE_S)
    assert lags["b"].records == 0 and lags["b"].seconds == 0 and lags["b"].state == LIVE


def test_reported_changes_not_applied_count_in_records_and_in_the_origins_time() -> None:
    own = {"b": _at(100, T0)}
    # b itself reported seq 130, written 4.5 s after the last one we hold; c holds 120
    reported = [{"b": _at(130, T0 + 4500)}, {"b": _at(120, T0 + 2000)}]
    lag = origin_lags(["b"], own, reported, {"b": 0.2}, GRACE_S)["b"]
    assert lag.records == 30 and lag.seconds == 4.5 and lag.state == CATCHING_UP


def test_a_silent_origin_is_unreachable_and_its_silence_is_the_lag() -> None:
    own = {"b": _at(100, T0)}
    lag = origin_lags(["b"], own, [{"b": _at(100, T0)}], {"b": 7.25}, GRACE_S)["b"]
    assert lag.state == UNREACHABLE and lag.seconds == 7.25 and lag.records == 0
    never = origin_lags(["b"], own, [], {}, GRACE_S)["b"]
    assert never.state == UNREACHABLE and never.last_heard_s is None


def test_the_larger_of_span_and_silence_counts() -> None:
    own = {"b": _at(100, T0)}
    lag = origin_lags(["b"], own, [{"b": _at(101, T0 + 9000)}], {"b": 3.0}, GRACE_S)["b"]
    assert lag.seconds == 9.0 and lag.state == UNREACHABLE


def test_holding_nothing_of_an_origin_counts_records_but_no_made_up_span() -> None:
    lag = origin_lags(["b"], {}, [{"b": _at(40, T0)}], {"b": 0.1}, GRACE_S)["b"]
    assert lag.records == 40 and lag.seconds == 0.0 and lag.state == CATCHING_UP


def test_a_report_older_than_our_cursor_never_makes_negative_lag() -> None:
    own = {"b": _at(100, T0)}
    lag = origin_lags(["b"], own, [{"b": _at(90, T0 - 5000)}], {"b": 0.1}, GRACE_S)["b"]
    assert lag.records == 0 and lag.seconds == 0.0
