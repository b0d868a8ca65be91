"""`atoll drill` — re-enact an outage against a fresh local cluster."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click


def _seconds(text: str) -> float:
    value = text.strip().lower().removesuffix("s")
    try:
        seconds = float(value)
    except ValueError:
        raise click.BadParameter(f"expected seconds like 30s, got {text!r}") from None
    if seconds < 4:
        raise click.BadParameter("a drill needs at least 4 seconds")
    return seconds


@click.command()
@click.argument("scenario", type=click.Choice(
    ["region-down", "dns-empty", "partition", "slow-wan", "clock-skew", "all"]))
@click.option("--regions", default=3, show_default=True, type=click.IntRange(2, 5))
@click.option("--duration", default="60s", show_default=True,
              help="Workload time per scenario (e.g. 30s).")
@click.option("--rate", default=500.0, show_default=True, type=click.FloatRange(1, 5000),
              help="Target requests per second over all client threads.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--report", "report_dir", default=None, type=click.Path(file_okay=False),
              help="Write drill.json and drill.html here.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Where the drill's cluster keeps its data [default: a temporary dir].")
def drill(scenario: str, regions: int, duration: str, rate: float, seed: int,
          report_dir: str | None, data_dir: str | None) -> None:
    """Run SCENARIO (or all of them) against a fresh local cluster and check that every
    acknowledged write survived. Exit status 1 if an invariant fails."""
    from atoll.drill import report
    from atoll.drill.runner import SCENARIOS, DrillOptions, Recorder, run_scenario

    root = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="atoll-drill-"))
    options = DrillOptions(regions=regions, duration_s=_seconds(duration), rate=rate,
                           seed=seed, root=root)
    scenarios = list(SCENARIOS) if scenario == "all" else [scenario]
    results = []
    last_print = [0.0]

    def progress(phase: str, elapsed: float, recorder: Recorder) -> None:
        if time.monotonic() - last_print[0] < 1.0 or not sys.stderr.isatty():
            return
        last_print[0] = time.monotonic()
        ops = recorder.ops
        ok = sum(1 for o in ops if o["ok"])
        click.echo(f"\r  {elapsed:5.1f}s {phase:12} requests {len(ops)} ok {ok} "
                   f"errors {len(ops) - ok}   ", nl=False, err=True)

    started = time.monotonic()
    for name in scenarios:
        click.echo(f"drill {name}: {regions} regions, {options.duration_s:.0f}s at "
                   f"{rate:.0f} ops/s (data in {root / name})", err=True)
        result: dict[str, Any] = run_scenario(name, options, progress)
        click.echo("", err=True)
        for line in report.summary_lines(result):
            click.echo(line)
        results.append(result)
    passed = all(r["passed"] for r in results)
    click.echo(f"drill {'PASSED' if passed else 'FAILED'}: {len(results)} scenario(s) in "
               f"{time.monotonic() - started:.0f}s")
    if report_dir:
        data, page = report.write(Path(report_dir), results)
        click.echo(f"report: {data}, {page}")
    sys.exit(0 if passed else 1)
