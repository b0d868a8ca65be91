"""docs/operations.md stays true: its metrics table names exactly the families a node
exports, and its Prometheus config and alerting rules parse and use only those names."""

from __future__ import annotations

import re
from typing import Any

import yaml
from prometheus_client import generate_latest

from atoll.node.metrics import NodeCollector, NodeMetrics
from tests.support import REPO

DOC = (REPO / "docs" / "operations.md").read_text()


def figures() -> dict[str, Any]:
    """Figures of a region with every optional part present (auth and verify too)."""
    lag = {"records": 3, "seconds": 0.5, "state": "catching_up", "last_heard_s": 0.1}
    return {
        "region": "a", "version": "0.1.0", "compiled": False, "tables": 2,
        "requests_total": 9, "errors_total": 1, "writes_total": 5, "write_batches_total": 3,
        "requests_ms": {"p50": 0.5, "p90": 1.0, "p99": 2.0, "max": 3.0},
        "write_path": {"stages_ms": {"commit": {"p50": 0.1, "p90": 0.2, "p99": 0.3}},
                       "wal": {"frames": 10, "rewinds": 1,
                               "rewind_pause_ms": {"p50": 2.0, "p90": 3.0, "p99": 4.0,
                                                   "max": 5.0}}},
        "disk": {"free_bytes": 10, "total_bytes": 100, "database_bytes": 5},
        "topology": {"generation": 2, "regions": [{"id": "a"}, {"id": "b"}],
                     "refused_total": 0, "accepted_total": 1},
        "replication": {
            "cursor_vector": {"a": [5, 1], "b": [3, 1]}, "lag": {"b": lag},
            "peers": {"b": {"connected": True, "last_ok_s_ago": 0.2, "applied": 3,
                            "pulls": 4, "errors": 0, "refused": 0, "refused_changes": 1}},
            "applied_total": 3, "apply_delay_ms": {"p50": 4, "p99": 9, "max": 12},
            "conflicts_total": 1, "snapshot_rebuilds_total": 0, "clock_skew_bounded_total": 0,
            "changelog": {"purged_records": 0, "purged_tombstones": 0,
                          "retention_forced": False},
            "fold": {"state": "waiting", "departed": ["c"], "waiting_for": ["c"],
                     "folded_items": 2, "compacted_items": 1, "fold_changes": 1,
                     "passes": 1, "scanned_rows": 9, "page_rows": 8, "job_items": 8,
                     "ran_s": 0.012}},
        "conflicts": [],
        "health": {"status": "degraded", "reasons": ["1 stored row failed the checksum"]},
        "integrity": {"checksum_failures": 2, "damaged_rows": 1, "rows": []},
        "clock": {"max_offset_ms": 500, "refusing_writes": False, "writes_refused": 0,
                  "peers": {"b": {"offset_ms": 3.0, "uncertainty_ms": 0.5,
                                  "beyond_max": False}}},
        "auth": {"failures": {"bad_signature": 2}},
        "verify": {"b": {"finished_unix_s": 1.0, "verdict": "match",
                         "divergent_items": 0, "repaired_items": 0}},
    }


def exported() -> tuple[set[str], set[str]]:
    """(families as their TYPE lines name them, every sample name) of one scrape."""
    stats = {"GetItem": {"outcomes": {"success": 1}, "count": 1, "sum_s": 0.001,
                         "buckets": [(0.001, 1), (float("inf"), 1)]}}
    text = generate_latest(NodeMetrics(NodeCollector(figures, lambda: stats)).registry).decode()
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
               if line and not line.startswith("#")}
    return families, samples


def test_the_metrics_table_names_every_exported_family_and_no_other() -> None:
    families, _ = exported()
    table = DOC.split("## Metrics", 1)[1].split("### Replication lag", 1)[0]
    documented = set(re.findall(r"`(atoll_[a-z_]+)[`{]", table))
    ours = {f for f in families if f.startswith("atoll_")}
    assert documented - ours == set(), "documented but not exported"
    assert ours - documented == set(), "exported but not documented"


def test_the_sample_config_and_rules_parse_and_use_exported_names() -> None:
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC, re.S)]
    config, rules = blocks
    assert config["scrape_configs"][0]["metrics_path"] == "/metrics"
    _, samples = exported()
    alerts = [r for group in rules["groups"] for r in group["rules"]]
    assert {"AtollRegionDown", "AtollReplicationLagHigh", "AtollDivergence"} <= \
        {a["alert"] for a in alerts}
    for alert in alerts:
        for name in re.findall(r"\b(atoll_[a-z_]+)", alert["expr"]):
            assert name in samples, f"{alert['alert']} uses {name}, which is not exported"
