"""The drill's checker must pass a clean history and fail — naming the write — when an
acknowledged write is missing, regions differ, a read returns what nobody wrote, or a
counter lost increments without a recorded conflict."""

from __future__ import annotations

from typing import Any

from atoll.drill.checker import check
from atoll.drill.workload import Operation


def op(kind: str, key: str, value: Any, t0: float, ok: bool = True, **extra: Any) -> Operation:
    return Operation(kind, "t", key, value, "failover", "f0", t0=t0, t1=t0 + 0.01, ok=ok,
                     unknown=not ok and kind not in ("get", "query"), **extra)


HISTORY = [op("put", "k", "a", 1.0), op("put", "k", "b", 2.0), op("delete", "j", None, 2.5),
           op("put", "j", "c", 3.0), op("get", "k", None, 3.5, read="b"),
           op("add", "n", None, 4.0), op("add", "n", None, 5.0)]


def finals(k: Any = "b", j: Any = "c", n: Any = 2) -> dict[str, dict[tuple[str, str], Any]]:
    state = {("t", "k"): k, ("t", "j"): j, ("t", "n"): n}
    return {"r1": dict(state), "r2": dict(state)}


def test_a_clean_history_passes() -> None:
    result = check(HISTORY, finals(), [])
    assert result.passed and result.acknowledged_writes == 4 and result.counters_checked == 1


def test_a_missing_acknowledged_write_is_named() -> None:
    state = finals()
    state["r2"][("t", "k")] = "a"  # r2 never got the last write
    result = check(HISTORY, state, [])
    assert not result.passed
    assert [(x.region, x.key, x.acknowledged_value) for x in result.lost] == [
        ("r2", "k", "b")]
    assert len(result.divergent) == 1


def test_a_write_superseded_by_a_recorded_conflict_is_not_lost() -> None:
    result = check(HISTORY, finals(k="x"), [("t", "k", "b")])
    assert result.passed and result.superseded_by_conflict == 2


def test_a_later_write_of_unknown_outcome_may_be_what_is_held() -> None:
    history = [*HISTORY, op("put", "k", "z", 6.0, ok=False)]
    assert check(history, finals(k="z"), []).passed


def test_a_read_of_a_value_never_written_fails() -> None:
    history = [*HISTORY, op("get", "k", None, 7.0, read="never")]
    assert len(check(history, finals(), []).phantom_reads) == 1


def test_a_counter_that_lost_increments_without_a_conflict_fails() -> None:
    result = check(HISTORY, finals(n=1), [])
    assert not result.passed and result.counter_problems[0].acknowledged_increments == 2
    assert check(HISTORY, finals(n=1), [("t", "n", 1)]).passed


def test_two_lost_increments_with_the_same_value_both_count() -> None:
    history = [op("add", "n", None, float(t)) for t in range(4)]
    state = {"r1": {("t", "n"): 2}, "r2": {("t", "n"): 2}}
    assert not check(history, state, [("t", "n", 1)]).passed
    assert check(history, state, [("t", "n", 1), ("t", "n", 1)]).passed
