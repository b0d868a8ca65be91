"""bench/wrk.py's parser and bench/report.py's summaries: pure, on canned wrk output."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root holds bench/

from bench.report import (  # noqa: E402
    Summary,
    floor_cpu_fractions,
    floor_fractions,
    targets,
    write_path_line,
)
from bench.wrk import WrkError, WrkResult, parse_output  # noqa: E402

WRK_STDOUT = """\
Running 3s test @ http://127.0.0.1:4567/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.88ms    1.20ms  37.45ms   90.00%
  23244 requests in 2.00s, 10.78MB read
  Non-2xx or 3xx responses: 44
Requests/sec:  11605.22
BENCH_RESULT {"requests":23244,"duration_us":2000000,"bytes":11308585,\
"latency_us":{"p50":2579,"p90":3664,"p99":8854,"max":37453,"mean":2875.3},\
"socket_errors":{"connect":0,"read":1,"write":0,"timeout":2},\
"status":{"200":23200,"400":44},"error_samples":["400 {\\"__type\\":\\"x#ValidationException\\"}"]}
"""


def test_parse_counts_only_2xx_as_operations() -> None:
    r = parse_output(WRK_STDOUT)
    assert r.requests == 23244
    assert r.duration_s == 2.0
    assert r.status == {200: 23200, 400: 44}
    assert r.ok == 23200
    assert r.ok_per_s == 11600.0
    assert r.errors == 44 + 3          # non-2xx plus socket errors
    assert r.error_samples == ['400 {"__type":"x#ValidationException"}']


def test_parse_latency_is_in_milliseconds() -> None:
    r = parse_output(WRK_STDOUT)
    assert (r.latency_p50_ms, r.latency_p90_ms, r.latency_p99_ms) == (2.579, 3.664, 8.854)
    assert r.latency_max_ms == 37.453


def test_parse_without_result_line_is_an_error() -> None:
    with pytest.raises(WrkError, match="no BENCH_RESULT"):
        parse_output("Running 3s test @ http://127.0.0.1:1/\nunable to connect\n")


def test_the_last_result_line_wins() -> None:
    second = WRK_STDOUT.splitlines()[-1].replace('"requests":23244', '"requests":5')
    assert parse_output(WRK_STDOUT + second + "\n").requests == 5


def test_summary_takes_medians_and_sums_errors() -> None:
    fast = parse_output(WRK_STDOUT)
    slow = parse_output(WRK_STDOUT.replace('"duration_us":2000000', '"duration_us":4000000'))
    s = Summary.of([fast, slow, fast], items_per_request=25)
    assert s.ops_per_s == 11600.0
    assert s.items_per_s == 11600.0 * 25
    assert s.errors == 3 * 47
    assert s.rounds == 3


def test_a_target_with_errors_is_a_miss_even_when_fast() -> None:
    clean = parse_output(WRK_STDOUT.replace(',"400":44', "").replace('"read":1', '"read":0')
                         .replace('"timeout":2', '"timeout":0')
                         .replace('"requests":23244', '"requests":23200'))
    assert clean.errors == 0
    slow = parse_output(WRK_STDOUT.replace('"200":23200', '"200":1000'))
    results = {"get": {"atoll": Summary.of([clean]), "dynalite-mem": Summary.of([slow])}}
    verdicts = {t.name: t.verdict for t in targets(results, ceiling=None)}
    assert verdicts["GetItem ≥ 2× dynalite (in memory)"] == "MISS"   # dynalite had errors
    assert verdicts["get p99 < 20 ms"] == "PASS"
    assert verdicts["Query ≥ 3× dynalite (in memory)"] == "SKIP"


def test_atoll_is_read_as_a_fraction_of_the_floor() -> None:
    clean = WRK_STDOUT.replace(',"400":44', "").replace('"read":1', '"read":0').replace(
        '"timeout":2', '"timeout":0').replace('"requests":23244', '"requests":23200')

    def at(ops_per_s: float) -> Summary:   # 23,200 ok requests in 2 s = 11,600 ops/s
        return Summary.of([parse_output(clean.replace(
            '"duration_us":2000000', f'"duration_us":{round(23200 / ops_per_s * 1e6)}'))])

    results = {"get": {"atoll": at(11600), "floor-sqlite": at(11000)},
               "query": {"atoll": at(7000), "floor-sqlite": at(10000)},
               "scan": {"atoll": at(700), "floor-sqlite": at(1000)},
               "put": {"atoll": at(5000)}}
    fractions = floor_fractions(results)
    assert set(fractions) == {"get", "query", "scan"}   # put: the floor did not run
    assert round(fractions["query"], 2) == 0.7
    verdicts = {t.name: t.verdict for t in targets(results, ceiling=None)}
    assert verdicts["GetItem ≥ 100% of the floor (minimal SQLite server)"] == "PASS"
    assert verdicts["Query ≥ 80% of the floor (minimal SQLite server)"] == "MISS"
    assert verdicts["Scan ≥ 70% of the floor (minimal SQLite server)"] == "PASS"
    assert not any(name.startswith("BatchGetItem") for name in verdicts)  # not run


def test_server_cpu_per_request_is_a_median_and_read_against_the_floor() -> None:
    def run(cpu_s: float | None) -> WrkResult:   # 23,200 ok responses
        return dataclasses.replace(parse_output(WRK_STDOUT), server_cpu_s=cpu_s)

    atoll = Summary.of([run(2.32), run(4.64), run(None), run(0.232)])
    assert atoll.cpu_us_per_op == 100.0   # median of 10, 100 and 200 µs; None not counted
    floor = Summary.of([run(1.16)])
    assert floor.cpu_us_per_op == 50.0
    assert Summary.of([run(None)]).cpu_us_per_op is None
    results = {"query": {"atoll": atoll, "floor-sqlite": floor}}
    assert floor_cpu_fractions(results) == {"query": 0.5}


def test_write_path_line_gives_each_stage_median_in_order() -> None:
    stages = {name: {"p50": p50, "p90": p50 * 2, "p99": p50 * 3} for name, p50 in
              [("wait", 0.9), ("run", 0.6), ("to_writer", 0.55), ("commit", 0.5),
               ("fsync", 0.7), ("answer", 0.37), ("total", 3.8)]}
    line = write_path_line({"window_s": 2.0, "batches": 800, "batches_total": 9000,
                            "writes_per_batch": {"p50": 15, "p90": 20, "p99": 25},
                            "stages_ms": stages})
    assert line == ("write path p50 ms over the last 2 s: wait 0.90, run 0.60, to writer 0.55, "
                    "COMMIT 0.50, fsync 0.70, answer 0.37; total p50 3.80 p99 11.40; "
                    "15 writes per batch")
    compiled = write_path_line({"window_s": 2.0, "batches": 800, "batches_total": 9000,
                                "writes_per_batch": {"p50": 15}, "stages_ms": stages,
                                "compiled": True})
    assert compiled is not None and compiled.endswith("15 writes per batch (compiled)")
    rewound = write_path_line({"window_s": 2.0, "batches": 800, "batches_total": 9000,
                               "writes_per_batch": {"p50": 15}, "stages_ms": stages,
                               "wal": {"frames": 900, "rewind_frames": 32000, "rewinds": 7,
                                       "rewind_pause_ms": {"p50": 2.5, "p90": 26.75,
                                                           "p99": 30.0, "max": 30.0}}})
    assert rewound is not None and rewound.endswith(
        "15 writes per batch; 7 WAL rewinds so far, the writer's pause before each"
        " p50 2.50 p90 26.75 ms")
    no_rewind = write_path_line({"window_s": 2.0, "batches": 800, "batches_total": 9000,
                                 "writes_per_batch": {"p50": 15}, "stages_ms": stages,
                                 "wal": {"frames": 900, "rewind_frames": 32000, "rewinds": 0,
                                         "rewind_pause_ms": {}}})
    assert no_rewind is not None and no_rewind.endswith("15 writes per batch")


def test_write_path_line_is_none_without_batches() -> None:
    assert write_path_line(None) is None
    assert write_path_line({"window_s": 2.0, "batches": 0, "batches_total": 10,
                            "writes_per_batch": {}, "stages_ms": {}}) is None
