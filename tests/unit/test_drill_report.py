"""The drill's HTML report fits the page and explains its figures in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atoll.drill import report


def _result(lost: int = 0) -> dict[str, Any]:
    return {
        "scenario": "region-down", "victim": "us-east", "regions": 3, "duration_s": 30.0,
        "rate": 500.0, "fault_window_s": [7.5, 18.0], "passed": lost == 0,
        "clients": {"failover": {"attempted": 10254, "succeeded": 10254,
                                 "availability_pct": 100.0, "longest_gap_s": 0.491,
                                 "read_errors": 0, "write_errors": 0}},
        "failover_time_s": 0.052, "caught_up_after_heal_s": 0.7,
        "converge_after_stop_s": 0.064, "conflicts_recorded": 2,
        "replication_lag_ms": {"p50": 36.0, "p99": 95.0, "max": 13367},
        "check": {"acknowledged_writes": 5193, "acknowledged_writes_lost": lost,
                  "divergent_items": 0, "phantom_reads": 0, "counter_problems": 0,
                  "counters_checked": 4, "superseded_by_recorded_conflicts": 0,
                  "lost_examples": [], "divergent_examples": []},
        "timeline": [{"t": t, "ok": {"us-east": 40, "eu-west": 30}, "errors": {}}
                     for t in range(30)],
        "lag_series": [{"t": 1.0, "lag_ms": {"eu-west": 12}}],
    }


def test_the_page_scales_to_its_width_and_explains_each_figure(tmp_path: Path) -> None:
    _data, page = report.write(tmp_path, [_result()])
    text = page.read_text()
    assert 'name="viewport"' in text and "svg{width:100%;height:auto" in text
    assert 'viewBox="0 0 900 260"' in text and "white-space:pre-wrap" in text
    assert "All 1 scenario(s) passed" in text
    assert ("The failover clients made 10,254 requests and 10,254 succeeded; the longest "
            "wait for a successful answer was 0.49 s.") in text
    assert "They were answered by another region 0.05 s after the fault." in text
    assert "Of 5,193 acknowledged writes, none was lost, and every region ended with the " \
           "same data." in text
    for name, _value, meaning in report.figures_explained(_result()):
        assert name in text and meaning.split(".")[0].replace("'", "&#x27;") in text
    assert (tmp_path / "drill-region-down.svg").read_text().startswith("<svg width=")


def test_a_failed_scenario_says_so_in_words(tmp_path: Path) -> None:
    _data, page = report.write(tmp_path, [_result(lost=3)])
    text = page.read_text()
    assert "At least one scenario FAILED" in text and "3 were LOST" in text


def test_a_run_without_any_replication_lag_still_draws_its_chart(tmp_path: Path) -> None:
    """Every lag sample 0 ms (a short run on a loaded machine: no write replicated late):
    the chart's lag line is flat and its peak label says 0 ms."""
    result = {**_result(), "lag_series": [{"t": t, "lag_ms": {"eu-west": 0}}
                                          for t in (1.0, 2.0)],
              "security": {"us-east": {"auth": "required", "mutual_tls": True}}}
    report.write(tmp_path, [result])
    assert "lag peak 0 ms" in (tmp_path / "drill-region-down.svg").read_text()
    assert "   security: auth required on every client port; peers over mutual TLS" in \
        report.summary_lines(result)
