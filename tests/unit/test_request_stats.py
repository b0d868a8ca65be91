"""Per-operation request counters and latency histograms (atoll.api.stats): what
/metrics exposes as atoll_requests_total and atoll_request_duration_seconds."""

from __future__ import annotations

import random
from bisect import bisect_left

from atoll.api.stats import _BOUNDS_NS, BUCKET_BOUNDS_S, RequestStats, bucket_of, outcome_name
from atoll.errors import ConditionalCheckFailed, ServiceUnavailable, ValidationError


def test_outcomes_are_success_or_the_dynamodb_error_type() -> None:
    assert outcome_name(None) == "success"
    assert outcome_name(ConditionalCheckFailed) == "ConditionalCheckFailedException"
    assert outcome_name(ValidationError) == "ValidationException"
    assert outcome_name(ServiceUnavailable) == "ServiceUnavailableException"


def test_counts_by_operation_and_outcome_with_cumulative_buckets() -> None:
    stats = RequestStats(["GetItem", "PutItem"])
    stats.record("GetItem", None, 50_000)  # 50 us: the first bucket (100 us)
    stats.record("GetItem", None, 3_000_000)  # 3 ms: the 5 ms bucket
    stats.record("PutItem", ConditionalCheckFailed, 7_000_000)
    stats.record("PutItem", None, 10_000_000_000)  # 10 s: +Inf only
    snapshot = stats.snapshot()
    get = snapshot["GetItem"]
    assert get["outcomes"] == {"success": 2} and get["count"] == 2
    assert abs(get["sum_s"] - 0.00305) < 1e-12
    bounds = dict(get["buckets"])
    assert bounds[0.0001] == 1 and bounds[0.0025] == 1 and bounds[0.005] == 2
    assert bounds[float("inf")] == 2
    assert [b for b, _ in get["buckets"]] == [*BUCKET_BOUNDS_S, float("inf")]
    counts = [c for _, c in get["buckets"]]
    assert counts == sorted(counts), "buckets are cumulative"
    put = snapshot["PutItem"]
    assert put["outcomes"] == {"success": 1, "ConditionalCheckFailedException": 1}
    assert dict(put["buckets"])[2.5] == 1 and dict(put["buckets"])[float("inf")] == 2


def test_unknown_operations_share_one_label() -> None:
    stats = RequestStats(["GetItem"])
    for target in ("Nope", "DoesNotExist", "x" * 500):
        stats.record(target, ValidationError, 1000)
    snapshot = stats.snapshot()
    assert set(snapshot) == {"unknown"}
    assert snapshot["unknown"]["outcomes"] == {"ValidationException": 3}


def test_an_edge_latency_falls_in_the_bucket_it_bounds() -> None:
    stats = RequestStats(["GetItem"])
    stats.record("GetItem", None, 1_000_000)  # exactly 1 ms: le="0.001" includes it
    assert dict(stats.snapshot()["GetItem"]["buckets"])[0.001] == 1


def test_a_latency_falls_in_the_bucket_bisect_finds() -> None:
    """bucket_of is bisect_left into the bounds (the naive reference): at, just under
    and just over every bound, and at random latencies from 0 to 10 s."""
    rng = random.Random(24)
    samples = [0, 1, *(b + d for b in _BOUNDS_NS for d in (-1, 0, 1))]
    samples += [rng.randrange(10_000_000_000) for _ in range(2000)]
    samples += [rng.randrange(200_000) for _ in range(2000)]  # around the reads' buckets
    for elapsed_ns in samples:
        assert bucket_of(elapsed_ns) == bisect_left(_BOUNDS_NS, elapsed_ns), elapsed_ns
