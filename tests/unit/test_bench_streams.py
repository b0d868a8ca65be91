"""bench/streams.py's verdict and bench/serve.py's /metrics reading: pure, on made-up
rounds and canned exposition text."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root holds bench/

from bench.serve import _counter  # noqa: E402
from bench.streams import Round, _verdict  # noqa: E402
from bench.wrk import WrkResult  # noqa: E402


def _round(cpu_us: float) -> Round:
    result = WrkResult(requests=1000, duration_s=1.0, latency_p50_ms=1.0, latency_p90_ms=2.0,
                       latency_p99_ms=3.0, latency_max_ms=4.0, status={200: 1000},
                       socket_errors={})
    return Round(result, cpu_us, cpu_us / 3, 12_000.0, 12.0)


def test_verdict_is_the_median_of_the_rounds_own_ratios(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    # Rounds' ratios 1.30, 0.95, 1.20 (median 1.20: a miss), while the ratio of the two
    # columns' medians, 190 / 200, would pass.
    plain = [_round(cpu) for cpu in (100.0, 200.0, 300.0)]
    streamed = [_round(cpu) for cpu in (130.0, 190.0, 360.0)]
    assert not _verdict(plain, streamed)
    out = capsys.readouterr().out
    assert "median of the rounds' ratios: 1.200" in out
    assert "ratio of the medians 0.950" in out


def test_verdict_passes_when_most_rounds_are_within_the_target(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Rounds' ratios 1.05, 1.05, 1.05, 1.05, 2.0: one disturbed round does not decide.
    plain = [_round(cpu) for cpu in (100.0, 100.0, 200.0, 200.0, 200.0)]
    streamed = [_round(cpu) for cpu in (105.0, 105.0, 210.0, 210.0, 400.0)]
    assert _verdict(plain, streamed)
    out = capsys.readouterr().out
    assert "1.050" in out and "PASS" in out


def test_verdict_misses_when_the_rounds_ratios_do(capsys: pytest.CaptureFixture[str]) -> None:
    plain = [_round(100.0)] * 3
    streamed = [_round(120.0)] * 3
    assert not _verdict(plain, streamed)
    assert "MISS" in capsys.readouterr().out


def test_counter_reads_a_counter_line_and_refuses_a_missing_one() -> None:
    text = ("# HELP atoll_writes_total Write jobs committed\n# TYPE atoll_writes_total counter\n"
            "atoll_writes_total 1234.0\natoll_write_batches_total 99.0\n")
    assert _counter(text, "atoll_writes_total") == 1234
    assert _counter(text, "atoll_write_batches_total") == 99
    with pytest.raises(RuntimeError):
        _counter(text, "atoll_other_total")
