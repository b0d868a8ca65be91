"""Request counts and latency histograms per operation, kept by the API as it answers.

Theory of operation: Prometheus wants, per DynamoDB operation, counters of requests by
outcome and a latency histogram. Building those as prometheus_client children on every
request would cost microseconds a request on the GetItem path (~50,000 requests/s
here); instead each operation has one pre-built `OperationStats` whose fields are plain
ints, bumped by finding the fixed bucket bound a latency falls under (`count`: about
a hundred nanoseconds). The metrics endpoint reads them at scrape time (`snapshot`) and
turns them into Prometheus families (atoll.node.metrics), cumulative buckets included.

Outcomes are "success" or the short name of the DynamoDB error type answered
(`ConditionalCheckFailedException`, `ValidationException`, ...): a fixed set, so the
label stays bounded. Unknown operations (any text a client sends in X-Amz-Target) are
counted under one "unknown" operation for the same reason.

Latency is the server's time from the handler's start to its answer (writes include
their durable commit); the time a request waits in the socket before it is read is not
in it (see atoll.http.timing for first-bytes-to-answer percentiles).
"""

from __future__ import annotations

from typing import Any

from atoll.api.errors import ERROR_SHAPES
from atoll.errors import AtollError

UNKNOWN_OPERATION = "unknown"
SUCCESS = "success"

# Upper bounds (seconds) of the latency buckets; +Inf is implicit. From 100 us (a cached
# GetItem) to 2.5 s (a large BatchWriteItem waiting behind a WAL rewind).
BUCKET_BOUNDS_S: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BOUNDS_NS: list[int] = [round(b * 1e9) for b in BUCKET_BOUNDS_S]


def outcome_name(error: type[AtollError] | None) -> str:
    """"success", or the DynamoDB error type (after the '#') an error is answered with."""
    if error is None:
        return SUCCESS
    for cls in error.__mro__:
        shape = ERROR_SHAPES.get(cls)
        if shape is not None:
            return shape[1].rpartition("#")[2]
    return "InternalServerError"


class OperationStats:
    """One operation's counters (event-loop thread only)."""

    __slots__ = ("successes", "errors", "buckets", "sum_ns")

    def __init__(self) -> None:
        self.successes = 0
        self.errors: dict[type[AtollError], int] = {}
        self.buckets: list[int] = [0] * (len(_BOUNDS_NS) + 1)  # the last one is +Inf
        self.sum_ns = 0

    def count(self, error: type[AtollError] | None, elapsed_ns: int) -> None:
        """Count one answered request (`error` None for a success)."""
        if error is None:
            self.successes += 1
        else:
            self.errors[error] = self.errors.get(error, 0) + 1
        self.buckets[bucket_of(elapsed_ns)] += 1
        self.sum_ns += elapsed_ns


def bucket_of(elapsed_ns: int) -> int:
    """The latency bucket of `elapsed_ns` (as `bisect_left` into the bounds would find
    it): a loop of compiled comparisons, which for the first buckets — where reads
    land — costs less than a call into `bisect`."""
    index = 0
    for bound in _BOUNDS_NS:
        if elapsed_ns <= bound:
            return index
        index += 1
    return index


class RequestStats:
    """Per operation: requests by outcome, a latency histogram and its sum."""

    def __init__(self, operations: list[str]) -> None:
        self._operations: dict[str, OperationStats] = {
            name: OperationStats() for name in [*operations, UNKNOWN_OPERATION]}
        self._unknown = self._operations[UNKNOWN_OPERATION]

    def of(self, operation: str) -> OperationStats:
        """The counters `operation` is counted in (unknown operations share one)."""
        return self._operations.get(operation, self._unknown)

    def record(self, operation: str, error: type[AtollError] | None, elapsed_ns: int) -> None:
        """Count one answered request (`error` None for a success)."""
        self.of(operation).count(error, elapsed_ns)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per operation that has answered anything: {"outcomes": {name: count},
        "buckets": [(upper bound s, cumulative count)...] ending with +Inf, "count",
        "sum_s"}."""
        result: dict[str, dict[str, Any]] = {}
        for name, stats in self._operations.items():
            count = sum(stats.buckets)
            if not count:
                continue
            outcomes: dict[str, int] = {}
            if stats.successes:
                outcomes[SUCCESS] = stats.successes
            for error, n in stats.errors.items():
                key = outcome_name(error)
                outcomes[key] = outcomes.get(key, 0) + n
            cumulative, running = [], 0
            for bound, n in zip([*BUCKET_BOUNDS_S, float("inf")], stats.buckets, strict=True):
                running += n
                cumulative.append((bound, running))
            result[name] = {"outcomes": outcomes, "buckets": cumulative, "count": count,
                            "sum_s": stats.sum_ns / 1e9}
        return result
