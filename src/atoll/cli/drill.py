"""`atoll drill` — re-enact an outage against a fresh local cluster."""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from atoll.cli.keys import connection_options
from atoll.client.signing import resolve_credentials

if TYPE_CHECKING:
    from atoll.topology.config import ClusterConfig

MIN_PORT_RANGE = 100  # a drill of 5 regions takes 15 listeners


def _admin_key(config_path: str, profile: str | None, credentials_file: str | None
               ) -> tuple[str, str] | None:
    """The running cluster's admin key: --profile/--credentials, else the file `atoll
    cluster` writes beside its config (profile `atoll`), else the SDKs' usual places."""
    beside = Path(config_path).parent / "credentials"
    if profile is None and credentials_file is None and beside.exists():
        profile, credentials_file = "atoll", str(beside)
    found = resolve_credentials(profile, credentials_file)
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    return frozen.access_key, frozen.secret_key


def _port_range(_ctx: click.Context, _param: click.Parameter, text: str | None
                ) -> tuple[int, int] | None:
    """LOW-HIGH: loopback ports [LOW, HIGH) with room for a cluster's listeners."""
    if text is None:
        return None
    try:
        low, high = (int(part) for part in text.split("-"))
    except ValueError:
        raise click.BadParameter(f"expected LOW-HIGH like 20000-21000, got {text!r}") from None
    if not 1024 <= low < high <= 65536 or high - low < MIN_PORT_RANGE:
        raise click.BadParameter(f"expected {MIN_PORT_RANGE} or more ports between 1024 and "
                                 f"65536, got {text!r}")
    return low, high


def _seconds(text: str) -> float:
    value = text.strip().lower().removesuffix("s")
    try:
        seconds = float(value)
    except ValueError:
        raise click.BadParameter(f"expected seconds like 30s, got {text!r}") from None
    if seconds < 4:
        raise click.BadParameter("a drill needs at least 4 seconds")
    return seconds


def _running_cluster(config_path: str, scenario: str) -> tuple[ClusterConfig, list[str]]:
    """The running cluster's config and the scenarios to drill on it (those that restart
    no region process), or a usage error."""
    from atoll.drill.cluster import ExistingCluster
    from atoll.errors import ValidationError
    from atoll.topology.config import load_cluster_config
    try:
        config = load_cluster_config(config_path)
    except ValidationError as exc:
        raise click.UsageError(exc.message) from None
    if scenario == "all":
        return config, list(ExistingCluster.SCENARIOS)
    if scenario not in ExistingCluster.SCENARIOS:
        raise click.UsageError(f"{scenario} restarts region processes: with --config only "
                               f"{', '.join(ExistingCluster.SCENARIOS)} can run")
    return config, [scenario]


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
              help="Write drill.json, drill.html and one SVG chart per scenario here.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Where the drill's cluster keeps its data [default: a temporary dir].")
@click.option("--config", "config_path", default=None,
              type=click.Path(dir_okay=False, exists=True),
              help="Drill a running cluster (its TOML config, e.g. data/cluster.toml from "
              "`make run`) instead of a fresh one: dns-empty, partition and slow-wan only; "
              "the drill's tables are dropped afterwards and the topology restored.")
@click.option("--port-range", default=None, metavar="LOW-HIGH", callback=_port_range,
              help="Loopback ports for the drill's listeners [default: from 10000 up to "
              "the kernel's ephemeral range].")
@connection_options
def drill(scenario: str, regions: int, duration: str, rate: float, seed: int,
          report_dir: str | None, data_dir: str | None, config_path: str | None,
          port_range: tuple[int, int] | None, profile: str | None,
          credentials_file: str | None, ca_file: str | None) -> None:
    """Run SCENARIO (or all of them) against a fresh local cluster and check that every
    acknowledged write survived. Exit status 1 if an invariant fails."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from atoll.cli.terminal import stderr_console
    from atoll.drill import report
    from atoll.drill.ports import PortPicker
    from atoll.drill.runner import SCENARIOS, DrillOptions, run_scenario
    from atoll.drill.workload import Recorder

    config = None
    scenarios = list(SCENARIOS) if scenario == "all" else [scenario]
    if config_path is not None:
        config, scenarios = _running_cluster(config_path, scenario)
        regions = len(config.regions)
    credentials = (_admin_key(config_path, profile, credentials_file)
                   if config_path is not None else None)  # a fresh cluster makes its own
    duration_s = _seconds(duration)
    # made once the arguments are accepted: a refused command leaves nothing behind
    root = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="atoll-drill-"))
    options = DrillOptions(regions=regions, duration_s=duration_s, rate=rate,
                           seed=seed, root=root, config=config, credentials=credentials,
                           ports=None if port_range is None
                           else PortPicker(*port_range, random.Random()))
    results: list[dict[str, Any]] = []
    console = stderr_console()  # the one log lines go through (atoll.cli.terminal)
    started = time.monotonic()
    for name in scenarios:
        console.print(f"[bold]drill {name}[/]: {regions} regions, {options.duration_s:.0f}s at "
                      f"{rate:.0f} ops/s (data in {root / name})")
        with Progress(TextColumn("  {task.fields[phase]:<12}"), BarColumn(),
                      TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                      console=console, transient=True, disable=not console.is_terminal
                      ) as progress:
            task = progress.add_task(name, total=options.duration_s, phase="starting",
                                     counts="")

            def show(phase: str, elapsed: float, recorder: Recorder,
                     task: Any = task, progress: Progress = progress) -> None:
                ops = recorder.ops
                ok = sum(1 for o in ops if o.ok)
                progress.update(task, completed=min(elapsed, options.duration_s), phase=phase,
                                counts=f"requests {len(ops):>6}  ok {ok:>6}  "
                                       f"errors {len(ops) - ok:>5}")

            result = run_scenario(name, options, show)
        for line in report.summary_lines(result):
            click.echo(line)
        results.append(result)
    passed = all(r["passed"] for r in results)
    Console().print(report.summary_table(results))
    click.echo(f"drill {'PASSED' if passed else 'FAILED'}: {len(results)} scenario(s) in "
               f"{time.monotonic() - started:.0f}s")
    if report_dir:
        data, page = report.write(Path(report_dir), results)
        click.echo(f"report: {data}, {page}")
    sys.exit(0 if passed else 1)
