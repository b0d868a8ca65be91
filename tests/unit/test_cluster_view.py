"""The cluster at a glance (atoll.node.clusterview): what the console and `atoll status`
call up, lagging and down, judged from each region's figures."""

from __future__ import annotations

from typing import Any

from atoll.node.clusterview import DEGRADED, DOWN, LAGGING, UP, cluster_view, merged_conflicts

REGIONS = [{"id": r, "client_endpoints": [f"http://{r}:8000"],
            "peer_endpoints": [f"http://{r}:9000"]} for r in ("a", "b", "c")]


def figures(vector: dict[str, tuple[int, int]], lag: dict[str, dict[str, Any]],
            generation: int = 3, connected: tuple[str, ...] = ("a", "b", "c"),
            conflicts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"requests_total": 5, "writes_total": 5, "topology": {"generation": generation},
            "disk": {"free_bytes": 50, "total_bytes": 100, "database_bytes": 1},
            "conflicts": conflicts or [],
            "replication": {"cursor_vector": {o: list(v) for o, v in vector.items()},
                            "peers": {p: {"connected": p in connected} for p in lag},
                            "lag": lag}}


def live(seconds: float = 0.0, records: int = 0, state: str = "live") -> dict[str, Any]:
    return {"seconds": seconds, "records": records, "state": state, "last_heard_s": 0.1}


def test_all_answering_and_caught_up_is_healthy() -> None:
    vector = {"a": (3, 0), "b": (4, 0), "c": (5, 0)}
    answers = {r: figures(vector, {o: live() for o in "abc" if o != r}) for r in "abc"}
    view = cluster_view(REGIONS, answers)
    assert view["healthy"] and [r["health"] for r in view["regions"]] == [UP, UP, UP]
    assert view["generation"] == 3


def test_a_region_that_does_not_answer_is_down_and_only_it() -> None:
    vector = {"a": (3, 0), "b": (4, 0)}
    answers: dict[str, Any] = {
        "a": figures(vector, {"b": live(), "c": live(9.0, 0, "unreachable")},
                     connected=("b",)),
        "b": figures(vector, {"a": live(), "c": live(9.0, 0, "unreachable")},
                     connected=("a",)),
        "c": "connection refused"}
    view = cluster_view(REGIONS, answers, max_lag_s=5)
    health = {r["id"]: r for r in view["regions"]}
    assert health["c"]["health"] == DOWN and health["c"]["reason"] == "connection refused"
    assert health["a"]["health"] == UP and health["b"]["health"] == UP
    assert health["a"]["warnings"] == [] and not view["healthy"]


def test_a_region_that_says_it_is_degraded_is_degraded_with_its_reasons() -> None:
    vector = {"a": (3, 0), "b": (4, 0), "c": (5, 0)}
    answers = {r: figures(vector, {o: live() for o in "abc" if o != r}) for r in "abc"}
    answers["b"]["health"] = {"status": "degraded",
                              "reasons": ["1 stored row failed the checksum (not served)"]}
    answers["c"]["replication"]["lag"]["a"] = live(30.0, 7)  # lagging too: both reasons
    answers["c"]["health"] = {"status": "degraded", "reasons": ["Writes are refused"]}
    view = cluster_view(REGIONS, answers)
    assert not view["healthy"]
    health = {r["id"]: (r["health"], r["reason"]) for r in view["regions"]}
    assert health["a"] == (UP, "")
    assert health["b"] == (DEGRADED, "1 stored row failed the checksum (not served)")
    assert health["c"] == (DEGRADED, "Writes are refused; trails a")


def test_trailing_a_region_that_is_up_beyond_the_limit_is_lagging() -> None:
    answers = {
        "a": figures({"a": (10, 0), "b": (2, 0)}, {"b": live(12.0, 8, "catching_up")}),
        "b": figures({"a": (10, 0), "b": (10, 0)}, {"a": live()}),
    }
    view = cluster_view(REGIONS[:2], answers, max_lag_s=10)
    a = view["regions"][0]
    assert a["health"] == LAGGING and a["trails"] == ["b"] and "b" in a["reason"]
    assert view["regions"][1]["health"] == UP


def test_records_are_recounted_against_every_answering_region() -> None:
    # a thinks it is 0 behind b; b's own cursor says it wrote 50 more
    answers = {"a": figures({"a": (1, 0), "b": (10, 0)}, {"b": live()}),
               "b": figures({"a": (1, 0), "b": (60, 0)}, {"a": live()})}
    view = cluster_view(REGIONS[:2], answers, max_lag_records=20)
    a = view["regions"][0]
    assert a["lag"]["b"]["records"] == 50 and a["health"] == LAGGING


def test_warnings_name_smaller_problems() -> None:
    answers = {"a": figures({}, {"b": live()}, generation=2, connected=()),
               "b": figures({}, {"a": live()}, generation=3)}
    answers["a"]["disk"] = {"free_bytes": 5, "total_bytes": 100, "database_bytes": 1}
    warnings = cluster_view(REGIONS[:2], answers)["regions"][0]["warnings"]
    assert any("no replication from b" in w for w in warnings)
    assert any("generation 2" in w and "3" in w for w in warnings)
    assert any("95% full" in w for w in warnings)


def test_a_conflict_logged_by_several_regions_is_listed_once() -> None:
    conflict = {"id": 1, "detected_ms": 1000, "table": "T", "pk": "61", "sk": "",
                "winner": {"hlc": 9, "origin": "a"}, "loser": {"hlc": 8, "origin": "b"},
                "key": {"pk": {"S": "a"}}}
    other = {**conflict, "id": 7, "detected_ms": 2000, "pk": "62"}
    merged = merged_conflicts({"a": {"conflicts": [conflict]},
                               "b": {"conflicts": [{**conflict, "id": 4, "detected_ms": 990},
                                                   other]}})
    assert [c["pk"] for c in merged] == ["62", "61"]  # newest first
    assert merged[1]["regions"] == ["a", "b"] and merged[1]["detected_ms"] == 990
