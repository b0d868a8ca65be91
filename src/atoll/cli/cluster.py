"""`atoll cluster` — N regions on one machine, as separate processes.

Writes a cluster config (TOML) under the data directory, starts one `atoll serve
--config ... --region R` process per region, each with its own data directory and its
own client and peer ports, prints the endpoints, and stops them all cleanly on Ctrl-C.

Secure by default, in one command: on first start it makes the cluster's CA, one
certificate per region and the cluster data key under `<data-dir>/certs` (as `atoll
certs` would), so regions talk over mutual TLS; every region runs with `--auth
required`; and the first region makes an admin key and writes it to
`<data-dir>/credentials` as the AWS shared-credentials profile `atoll`, which the
`atoll` commands read by default and SDKs read with AWS_SHARED_CREDENTIALS_FILE. The
cluster is reported ready once that key works in every region. `--https` serves the
client ports over HTTPS too (with the region certificates; trust `certs/ca.crt`).

Nodes keep the newest topology they accepted (atoll.node.topology), so the config
written here takes the generation of the newest one stored under the data directory —
or the next one if the regions changed, so that the change applies.
"""

from __future__ import annotations

import datetime
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from cryptography import x509

from atoll.api.access import MODES, OFF, REQUIRED
from atoll.auth.certs import (
    DEFAULT_HOSTS,
    ClusterFiles,
    cluster_id_of,
    init_cluster,
    issue_region_cert,
)
from atoll.client.signing import call, resolve_credentials
from atoll.node.keys import CREDENTIALS_PROFILE
from atoll.node.topology import TopologyFile, topology_file_path
from atoll.topology.config import ClusterConfig, local_cluster

DEFAULT_REGIONS = "us-east,eu-west,ap-south"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def _healthy(url: str, ca_file: Path) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1,  # noqa: S310
                                    context=ssl.create_default_context(cafile=str(ca_file))
                                    if url.startswith("https") else None) as response:
            return response.status == 200
    except OSError:
        return False


def ensure_certs(files: ClusterFiles, config: ClusterConfig, host: str) -> None:
    """The CA, the data key and every region's certificate under `files` (made if
    missing; a CA of another cluster is refused)."""
    now = datetime.datetime.now(datetime.UTC)
    if not files.ca_cert.exists():
        init_cluster(files, config.cluster_id, now)
    found = cluster_id_of(x509.load_pem_x509_certificate(files.ca_cert.read_bytes()))
    if found != config.cluster_id:
        raise click.ClickException(f"{files.directory} holds the CA of cluster {found!r}, "
                                   f"not {config.cluster_id!r}")
    for region in config.regions:
        if not files.region_cert(region.id).exists():
            issue_region_cert(files, region.id, [host, *DEFAULT_HOSTS], now)


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
@click.option("--auth", "auth_mode", default=REQUIRED, show_default=True,
              type=click.Choice(MODES), help="Request signatures (see `atoll serve --auth`).")
@click.option("--https", is_flag=True,
              help="Serve the client ports over HTTPS too (trust <data-dir>/certs/ca.crt).")
@click.option("--account-id", default=None,
              help="The AWS account id in ARNs [default: 000000000000].")
def cluster(regions: str, count: int | None, data_dir: str, host: str, base_port: int,
            peer_base_port: int, auth_mode: str, https: bool, account_id: str | None) -> None:
    """Run a local multi-region cluster until Ctrl-C."""
    names = [r.strip() for r in regions.split(",") if r.strip()]
    if count is not None:
        names = names[:count] if count <= len(names) else [f"region-{i + 1}" for i in range(count)]
    config = local_cluster(names, host=host, client_port=base_port, peer_port=peer_base_port,
                           client_scheme="https" if https else "http", peer_scheme="https")
    problems = config.problems()
    if problems:  # no regions, a repeated or malformed id: refuse before starting any
        raise click.BadParameter("; ".join(problems), param_hint="--regions")
    root = Path(data_dir)
    config = _next_generation(config, root)
    root.mkdir(parents=True, exist_ok=True)
    files = ClusterFiles(root / "certs")
    ensure_certs(files, config, host)
    config_path = root / "cluster.toml"
    config_path.write_text(config.to_toml())
    credentials = root / "credentials"
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for index, region in enumerate(config.regions):
        args = [sys.executable, "-m", "atoll", "serve", "--config", str(config_path),
                "--region", region.id, "--data-dir", str(root / region.id),
                "--auth", auth_mode, "--certs", str(files.directory)]
        if https:
            args += ["--tls-cert", str(files.region_cert(region.id)),
                     "--tls-key", str(files.region_key(region.id))]
        if index == 0 and auth_mode != OFF:  # the key reaches the others by replication
            args += ["--admin-credentials", str(credentials)]
        if host == "127.0.0.1":  # an address of its own for peer calls: `atoll drill
            args += ["--peer-source", f"127.0.0.{10 + index}"]  # --config` tells them apart
        if account_id:
            args += ["--account-id", account_id]
        log = open(root / f"{region.id}.log", "ab")
        processes[region.id] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)
    _wait_ready(config, processes, root, files.ca_cert, credentials if auth_mode != OFF
                else None, lambda: stopping)
    _report(config, processes, config_path, credentials, files, auth_mode)
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


def _wait_ready(config: ClusterConfig, processes: dict[str, subprocess.Popen[bytes]],
                root: Path, ca_file: Path, credentials: Path | None,
                stopping: Callable[[], bool]) -> None:
    """Until every region answers /health and (with auth) accepts the admin key, which
    the first region made and the others receive by replication; bounded."""
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = {r.id: r.client_endpoint for r in config.regions}
    signer = None
    while pending and time.monotonic() < deadline and not stopping():
        if signer is None and credentials is not None and credentials.exists():
            signer = resolve_credentials(CREDENTIALS_PROFILE, credentials)
        for region_id, url in list(pending.items()):
            if processes[region_id].poll() is not None:
                click.echo(f"region {region_id} exited; see {root / (region_id + '.log')}", err=True)
                pending.pop(region_id)
            elif _healthy(url, ca_file) and (credentials is None or (
                    signer is not None and _signed_ok(url, signer, ca_file))):
                pending.pop(region_id)
        time.sleep(0.1)


def _signed_ok(url: str, credentials: Any, ca_file: Path) -> bool:
    try:
        status, _ = call(url + "/_atoll/status", credentials, timeout_s=1.0, ca_file=ca_file)
    except OSError:
        return False
    return status == 200


def _report(config: ClusterConfig, processes: dict[str, subprocess.Popen[bytes]],
            config_path: Path, credentials: Path, files: ClusterFiles, auth_mode: str) -> None:
    click.echo(f"atoll cluster '{config.cluster_id}' ({len(config.regions)} regions, "
               f"config {config_path}, auth {auth_mode}, mutual TLS between regions):")
    for region in config.regions:
        state = "up" if processes[region.id].poll() is None else "DOWN"
        click.echo(f"  {region.id:<12} {region.client_endpoint:<24} peers: {region.peer_endpoint}"
                   f"  [{state}]")
    first = config.regions[0].client_endpoint
    ca = f" --ca-bundle {files.ca_cert}" if first.startswith("https") else ""
    if auth_mode != OFF:
        click.echo(f"Admin key: {credentials.resolve()} (AWS profile '{CREDENTIALS_PROFILE}'). Use it with:")
        click.echo(f"  export AWS_SHARED_CREDENTIALS_FILE={credentials.resolve()} "
                   f"AWS_PROFILE={CREDENTIALS_PROFILE} AWS_DEFAULT_REGION=us-east-1")
        click.echo(f"  aws dynamodb list-tables --endpoint-url {first}{ca}")
        click.echo("  atoll keys create --role read-write   # a key for an application")


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
