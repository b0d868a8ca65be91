"""`atoll cluster` — N regions on one machine, as separate processes.

Writes a cluster config (TOML) under the data directory, starts one `atoll serve
--config ... --region R` process per region, each with its own data directory and its
own client and peer ports, prints the endpoints, and stops them all cleanly on Ctrl-C.

Nodes keep the newest topology they accepted (atoll.node.topology), so the config
written here takes the generation of the newest one stored under the data directory —
or the next one if the regions changed, so that the change applies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

from atoll.node.topology import TopologyFile, topology_file_path
from atoll.topology.config import ClusterConfig, local_cluster

DEFAULT_REGIONS = "us-east,eu-west,ap-south"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@click.command()
@click.option("--regions", default=DEFAULT_REGIONS, show_default=True,
              help="Comma-separated region ids.")
@click.option("-n", "--count", type=click.IntRange(1, 9), default=None,
              help="Number of regions (takes the first N default names, or region-1..N).")
@click.option("--data-dir", default="./data", show_default=True, type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--base-port", default=8000, show_default=True, help="First region's client port.")
@click.option("--peer-base-port", default=9000, show_default=True,
              help="First region's peer (replication) port.")
@click.option("--account-id", default=None,
              help="The AWS account id in ARNs [default: 000000000000].")
def cluster(regions: str, count: int | None, data_dir: str, host: str, base_port: int,
            peer_base_port: int, account_id: str | None) -> None:
    """Run a local multi-region cluster until Ctrl-C."""
    names = [r.strip() for r in regions.split(",") if r.strip()]
    if count is not None:
        names = names[:count] if count <= len(names) else [f"region-{i + 1}" for i in range(count)]
    config = local_cluster(names, host=host, client_port=base_port, peer_port=peer_base_port)
    problems = config.problems()
    if problems:  # no regions, a repeated or malformed id: refuse before starting any
        raise click.BadParameter("; ".join(problems), param_hint="--regions")
    root = Path(data_dir)
    config = _next_generation(config, root)
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "cluster.toml"
    config_path.write_text(config.to_toml())
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for region in config.regions:
        region_dir = root / region.id
        log = open(root / f"{region.id}.log", "ab")
        processes[region.id] = subprocess.Popen(
            [sys.executable, "-m", "atoll", "serve", "--config", str(config_path),
             "--region", region.id, "--data-dir", str(region_dir),
             *(["--account-id", account_id] if account_id else [])],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = {r.id: r.client_endpoint for r in config.regions}
    while pending and time.monotonic() < deadline and not stopping:
        for region_id, url in list(pending.items()):
            if processes[region_id].poll() is not None:
                click.echo(f"region {region_id} exited; see {root / (region_id + '.log')}", err=True)
                pending.pop(region_id)
            elif _healthy(url):
                pending.pop(region_id)
        time.sleep(0.1)
    click.echo(f"atoll cluster '{config.cluster_id}' ({len(config.regions)} regions, "
               f"config {config_path}):")
    for region in config.regions:
        state = "up" if processes[region.id].poll() is None else "DOWN"
        click.echo(f"  {region.id:<12} {region.client_endpoint:<24} peers: {region.peer_endpoint}"
                   f"  [{state}]")
    click.echo("Ctrl-C stops every region.", err=True)
    try:
        while not stopping:
            time.sleep(0.2)
            for region_id, process in processes.items():
                if process.poll() is not None and not getattr(process, "_reported", False):
                    process._reported = True  # type: ignore[attr-defined]
                    click.echo(f"region {region_id} exited with {process.returncode}", err=True)
    finally:
        _stop_all(processes)


def _next_generation(config: ClusterConfig, root: Path) -> ClusterConfig:
    """`config` at the generation that makes it apply over what the nodes stored."""
    stored = [t for path in sorted(root.glob("*/topology-*.json"))
              if (t := TopologyFile(path).load()) is not None
              and t.cluster_id == config.cluster_id
              and path == topology_file_path(path.parent, path.parent.name)]
    if not stored:
        return config
    newest = max(stored, key=lambda t: t.generation)
    if newest.same_layout(config):
        return config.with_generation(newest.generation)
    click.echo(f"regions or endpoints changed since topology generation {newest.generation}: "
               f"writing generation {newest.generation + 1}", err=True)
    return config.with_generation(newest.generation + 1)


def _stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for region_id, process in processes.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"region {region_id} did not stop in time; killing it", err=True)
            process.kill()
            process.wait()
    click.echo("atoll cluster stopped.", err=True)
