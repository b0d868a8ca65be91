"""Prometheus `/metrics` of a node: the standard text exposition, read at scrape time.

Theory of operation: nothing is counted twice. The API keeps per-operation counters and
latency histograms as plain ints (atoll.api.stats); everything else is already in the
node's figures (atoll.node.figures). At each scrape a custom collector reads both and
builds the metric families, so a request pays only the API's own bookkeeping.

Names follow Prometheus conventions: `atoll_` prefix, base units (seconds, bytes) last,
`_total` on counters (prometheus_client adds it), one family per quantity with labels
for operation, outcome, origin or peer. Percentile gauges carry a `quantile` label and
cover a recent window (their help text says which); rates come from the counters
(`rate(atoll_replication_applied_records_total[1m])`). docs/operations.md lists every
family, a scrape config and alerting rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.process_collector import ProcessCollector

from atoll.node.figures import VERIFY_VERDICTS
from atoll.replication.lag import STATES

# the classic text format, which every Prometheus reads (and prometheus_client serves when
# a scraper does not ask for another)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4.encode()
_QUANTILES = (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"), ("max", "1"))


class NodeCollector:
    """Builds the node's metric families from `figures()` and `request_stats()`."""

    def __init__(self, figures: Callable[[], dict[str, Any]],
                 request_stats: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self.figures = figures
        self.request_stats = request_stats

    def collect(self) -> Iterator[Metric]:
        figures = self.figures()
        yield from _requests(self.request_stats())
        yield from _node(figures)
        yield from _storage(figures)
        yield from _health(figures)
        if figures.get("clock") is not None:
            yield from _clock(figures["clock"])
        if figures["replication"] is not None:
            yield from _replication(figures["replication"])
        if figures["topology"] is not None:
            yield from _topology(figures["topology"])
        if figures["auth"] is not None:
            yield from _auth(figures["auth"])
        if figures["verify"] is not None:
            yield from _verify(figures["verify"])


def _requests(stats: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    requests = CounterMetricFamily("atoll_requests", "DynamoDB API requests answered, by "
                                   "operation and outcome (success or the DynamoDB error "
                                   "type)", labels=["operation", "outcome"])
    latency = HistogramMetricFamily("atoll_request_duration_seconds", "Time from a "
                                    "request's handling to its answer (writes include their "
                                    "durable commit), by operation", labels=["operation"])
    for operation, s in sorted(stats.items()):
        for outcome, count in sorted(s["outcomes"].items()):
            requests.add_metric([operation, outcome], count)
        latency.add_metric([operation], [(_bound(b), c) for b, c in s["buckets"]],
                           sum_value=s["sum_s"])
    yield requests
    yield latency


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _node(f: dict[str, Any]) -> Iterator[Metric]:
    info = GaugeMetricFamily("atoll_build_info", "Version and build of this node (always 1)",
                             labels=["version", "compiled", "region"])
    info.add_metric([f["version"], str(bool(f["compiled"])).lower(), f["region"]], 1)
    yield info
    yield GaugeMetricFamily("atoll_tables", "Tables in this region", value=f["tables"])
    times = GaugeMetricFamily("atoll_http_request_recent_duration_seconds",
                              "Percentiles of the time from a request's first bytes to its "
                              "answer, over the last few seconds", labels=["quantile"])
    for key, quantile in _QUANTILES:
        if f["requests_ms"].get(key) is not None:
            times.add_metric([quantile], f["requests_ms"][key] / 1000)
    yield times


def _health(f: dict[str, Any]) -> Iterator[Metric]:
    health = f.get("health") or {}
    integrity = f.get("integrity") or {}
    yield GaugeMetricFamily("atoll_degraded", "1 while this region reports itself degraded "
                            "(damaged rows, writes refused for its clock)",
                            value=1 if health.get("status") == "degraded" else 0)
    yield CounterMetricFamily("atoll_checksum_failures", "Reads that found a stored row "
                              "failing its checksum (the row is not served)",
                              value=integrity.get("checksum_failures", 0))
    yield GaugeMetricFamily("atoll_damaged_rows", "Distinct stored rows found failing their "
                            "checksum since start", value=integrity.get("damaged_rows", 0))


def _clock(c: dict[str, Any]) -> Iterator[Metric]:
    offset = GaugeMetricFamily("atoll_clock_offset_seconds", "Each peer's clock minus this "
                               "region's, measured over the peer link", labels=["peer"])
    error = GaugeMetricFamily("atoll_clock_offset_uncertainty_seconds", "How far the true "
                              "offset may be from the measured one", labels=["peer"])
    for peer, estimate in sorted((c.get("peers") or {}).items()):
        if estimate is not None:
            offset.add_metric([peer], estimate["offset_ms"] / 1000)
            error.add_metric([peer], estimate["uncertainty_ms"] / 1000)
    yield offset
    yield error
    yield GaugeMetricFamily("atoll_clock_refusing_writes", "1 while this region refuses "
                            "writes because its clock is off from most peers",
                            value=1 if c.get("refusing_writes") else 0)
    yield CounterMetricFamily("atoll_clock_writes_refused", "Local writes refused because "
                              "this region's clock was off", value=c.get("writes_refused", 0))


def _storage(f: dict[str, Any]) -> Iterator[Metric]:
    yield CounterMetricFamily("atoll_writes", "Write jobs committed (requests and applied "
                              "replication batches)", value=f["writes_total"])
    yield CounterMetricFamily("atoll_write_batches", "Group commits (one transaction and one "
                              "fsync each)", value=f["write_batches_total"])
    wal = f["write_path"]["wal"]
    yield GaugeMetricFamily("atoll_wal_frames", "Frames in the SQLite WAL at the last "
                            "checkpoint", value=wal["frames"])
    yield CounterMetricFamily("atoll_wal_rewinds", "Times the writer paused to checkpoint "
                              "the whole WAL and start it over", value=wal["rewinds"])
    pauses = GaugeMetricFamily("atoll_wal_rewind_pause_seconds", "Percentiles of the "
                               "writer's pause before each of the last 64 WAL rewinds (every "
                               "write in flight waits for it)", labels=["quantile"])
    for key, quantile in _QUANTILES:
        if wal["rewind_pause_ms"].get(key) is not None:
            pauses.add_metric([quantile], wal["rewind_pause_ms"][key] / 1000)
    yield pauses
    stages = GaugeMetricFamily("atoll_write_stage_seconds", "Percentiles of the time write "
                               "batches spent in each stage, over the last 2 s",
                               labels=["stage", "quantile"])
    for stage, values in sorted(f["write_path"].get("stages_ms", {}).items()):
        for key, quantile in _QUANTILES:
            if values.get(key) is not None:
                stages.add_metric([stage, quantile], round(values[key] / 1000, 9))
    yield stages
    disk = f["disk"]
    for key, name, help_text in (
            ("free_bytes", "atoll_disk_free_bytes", "Free bytes on the data directory's file "
             "system (writes are refused with a retryable error when it is full)"),
            ("total_bytes", "atoll_disk_size_bytes", "Size of the data directory's file system"),
            ("database_bytes", "atoll_database_size_bytes", "The SQLite database with its "
             "WAL")):
        if disk[key] is not None:
            yield GaugeMetricFamily(name, help_text, value=disk[key])


def _replication(r: dict[str, Any]) -> Iterator[Metric]:
    lag_records = GaugeMetricFamily("atoll_replication_lag_records", "Changes of the origin "
                                    "that some region reported holding and this one has not "
                                    "applied", labels=["origin"])
    lag_seconds = GaugeMetricFamily("atoll_replication_lag_seconds", "How far this region "
                                    "trails the origin: the span of its reported changes not "
                                    "yet applied, or the time since the origin last answered, "
                                    "whichever is larger", labels=["origin"])
    state = StateSetMetricFamily("atoll_replication_state", "Catch-up state per origin: live, "
                                 "catching_up (applying a backlog) or unreachable (no answer "
                                 "beyond a long poll)", labels=["origin"])
    for origin, lag in sorted(r["lag"].items()):
        lag_records.add_metric([origin], lag["records"])
        lag_seconds.add_metric([origin], lag["seconds"])
        state.add_metric([origin], {s: s == lag["state"] for s in STATES})
    yield from (lag_records, lag_seconds, state)
    cursor = GaugeMetricFamily("atoll_replication_cursor_sequence", "Highest contiguous change "
                               "sequence of each origin applied here (this region's own: its "
                               "newest change)", labels=["origin"])
    for origin, (seq, _hlc) in sorted(r["cursor_vector"].items()):
        cursor.add_metric([origin], seq)
    yield cursor
    up = GaugeMetricFamily("atoll_replication_peer_up", "1 while pulls from the peer succeed",
                           labels=["peer"])
    heard = GaugeMetricFamily("atoll_replication_peer_last_answer_age_seconds", "Seconds since "
                              "the peer last answered a pull (a long poll answers within 1 s "
                              "when idle)", labels=["peer"])
    per_peer = {name: CounterMetricFamily(f"atoll_replication_{name}", text, labels=["peer"])
                for name, text in (("applied_records", "Changes applied from pulls to the peer "
                                    "(their rate is the apply rate)"),
                                   ("pulls", "Pulls the peer answered"),
                                   ("pull_errors", "Pulls to the peer that failed"),
                                   ("refused_records", "Damaged or malformed changes refused"),
                                   ("refused_changes", "Well-formed changes refused before "
                                    "anything of them was stored: an item filed under another "
                                    "key, a different change under a used sequence (each "
                                    "retry counts)"))}
    for peer, p in sorted(r["peers"].items()):
        up.add_metric([peer], int(bool(p["connected"])))
        if p["last_ok_s_ago"] is not None:
            heard.add_metric([peer], p["last_ok_s_ago"])
        for name, key in (("applied_records", "applied"), ("pulls", "pulls"),
                          ("pull_errors", "errors"), ("refused_records", "refused"),
                          ("refused_changes", "refused_changes")):
            per_peer[name].add_metric([peer], p.get(key, 0))
    yield from (up, heard, *per_peer.values())
    delay = GaugeMetricFamily("atoll_replication_apply_delay_seconds", "Percentiles of the "
                              "time from a change's commit at its origin to its apply here, "
                              "over the last 60 s", labels=["quantile"])
    for key, quantile in (("p50", "0.5"), ("p99", "0.99"), ("max", "1")):
        if r["apply_delay_ms"].get(key) is not None:
            delay.add_metric([quantile], r["apply_delay_ms"][key] / 1000)
    yield delay
    for name, key, text in (
            ("conflicts", "conflicts_total", "Concurrent writes that lost last-writer-wins "
             "here (each is in the conflict log)"),
            ("snapshot_rebuilds", "snapshot_rebuilds_total", "Rebuilds from a peer's snapshot"),
            ("clock_skew_bounded", "clock_skew_bounded_total", "Remote timestamps too far ahead "
             "that the clock did not follow")):
        yield CounterMetricFamily(f"atoll_replication_{name}", text, value=r[key])
    log = r["changelog"]
    yield CounterMetricFamily("atoll_changelog_purged_records", "Changelog records purged once "
                              "every region acknowledged them", value=log["purged_records"])
    yield CounterMetricFamily("atoll_changelog_purged_tombstones", "Tombstones purged",
                              value=log["purged_tombstones"])
    yield GaugeMetricFamily("atoll_changelog_retention_forced", "1 when the retention bounds "
                            "(records per origin, tombstone age) override an acknowledgement "
                            "(also while some region has never written)",
                            value=int(bool(log["retention_forced"])))
    yield from _fold(r["fold"])


def _fold(fold: dict[str, Any]) -> Iterator[Metric]:
    yield CounterMetricFamily("atoll_replication_folded_items", "Items whose counters this "
                              "region folded the contributions of departed regions into",
                              value=fold["folded_items"])
    yield GaugeMetricFamily("atoll_replication_fold_waiting", "Regions that left the topology "
                            "whose counters wait to be folded here (not yet final)",
                            value=len(fold["waiting_for"]))
    yield CounterMetricFamily("atoll_replication_fold_seconds", "Seconds the fold and "
                              "compaction walk ran (its pages and jobs, not its pauses)",
                              value=fold["ran_s"])


def _topology(t: dict[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily("atoll_topology_generation", "Generation of the topology this node "
                            "holds", value=t["generation"])
    yield GaugeMetricFamily("atoll_topology_regions", "Regions in that topology",
                            value=len(t["regions"]))
    yield CounterMetricFamily("atoll_topology_updates_refused", "Topology updates refused "
                              "(stale, empty or invalid)", value=t["refused_total"])


def _auth(a: dict[str, Any]) -> Iterator[Metric]:
    failures = CounterMetricFamily("atoll_auth_failures", "Requests refused by "
                                   "authentication, by reason", labels=["reason"])
    for reason, count in sorted(a["failures"].items()):
        failures.add_metric([reason], count)
    yield failures


def _verify(v: dict[str, Any]) -> Iterator[Metric]:
    finished = GaugeMetricFamily("atoll_verify_last_finished_timestamp_seconds", "When the last "
                                 "comparison with the peer finished (Unix time)", labels=["peer"])
    divergent = GaugeMetricFamily("atoll_verify_divergent_items", "Items the last comparison "
                                  "with the peer confirmed as divergent", labels=["peer"])
    verdict = StateSetMetricFamily("atoll_verify_verdict", "Verdict of the last comparison "
                                   "with the peer", labels=["peer"])
    for peer, result in sorted(v.items()):
        finished.add_metric([peer], result["finished_unix_s"])
        divergent.add_metric([peer], result["divergent_items"])
        verdict.add_metric([peer], {s: s == result["verdict"] for s in VERIFY_VERDICTS})
    yield from (finished, divergent, verdict)


class NodeMetrics:
    """A registry with the node's collector and the process collector (CPU, memory, open
    files); `render()` is one scrape."""

    def __init__(self, collector: NodeCollector) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)  # type: ignore[arg-type]
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
