"""`atoll status` and `atoll conflicts` — look at a running cluster.

Both read each region's HTTP endpoints (`/_atoll/status`, `/_atoll/conflicts`) named in
the cluster config, signed with a key (any key for status; conflicts shows the tables
the key may read); a region that does not answer is shown as down, never hidden, and one
that refuses the key says so.
"""

from __future__ import annotations

import json
from typing import Any

import click
from botocore.credentials import Credentials
from rich.console import Console
from rich.table import Table

from atoll.cli.keys import connection_options
from atoll.client.signing import call, refusal, resolve_credentials
from atoll.errors import ValidationError
from atoll.topology.config import ClusterConfig, load_cluster_config

TIMEOUT_S = 2.0


class Refused(dict[str, Any]):
    """A region's answer refusing the request (shown, never mistaken for a status)."""


def _fetch(url: str, credentials: Credentials | None = None, ca_file: str | None = None
           ) -> Any:
    try:
        status, answer = call(url, credentials, timeout_s=TIMEOUT_S, ca_file=ca_file)
    except (OSError, ValueError):
        return None
    if status != 200:
        return Refused(reason=f"HTTP {status}: {refusal(answer)}")
    return answer


def _config(path: str) -> ClusterConfig:
    try:
        return load_cluster_config(path)
    except ValidationError as exc:
        raise click.UsageError(exc.message) from None


def cluster_status(config: ClusterConfig, credentials: Credentials | None = None,
                   ca_file: str | None = None) -> dict[str, Any]:
    """Every region's status, plus per region the records it lacks that another holds."""
    statuses = {r.id: _fetch(r.client_endpoint + "/_atoll/status", credentials, ca_file)
                for r in config.regions}
    best: dict[str, int] = {}
    for status in statuses.values():
        if isinstance(status, Refused):
            continue
        cursors = ((status or {}).get("replication") or {}).get("cursors") or {}
        for origin, seq in cursors.items():
            best[origin] = max(best.get(origin, 0), seq)
    for status in statuses.values():
        if status and not isinstance(status, Refused) and "replication" in status:
            cursors = status["replication"]["cursors"]
            status["replication"]["behind_records"] = sum(
                max(0, seq - cursors.get(origin, 0)) for origin, seq in best.items())
    return statuses


@click.command()
@click.option("--config", "config_path", default="./data/cluster.toml", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print raw JSON.")
@connection_options
def status(config_path: str, as_json: bool, profile: str | None, credentials_file: str | None,
           ca_file: str | None) -> None:
    """Regions, health, replication lag and conflicts of a running cluster."""
    config = _config(config_path)
    statuses = cluster_status(config, resolve_credentials(profile, credentials_file), ca_file)
    if as_json:
        click.echo(json.dumps(statuses, indent=2))
        return
    table = Table(title=f"atoll cluster {config.cluster_id}")
    for column in ("region", "endpoint", "health", "peers up", "behind (records)",
                   "lag p50/p99 ms", "conflicts", "writes"):
        table.add_column(column)
    for region in config.regions:
        status = statuses[region.id]
        if status is None:
            table.add_row(region.id, region.client_endpoint, "[red]DOWN[/red]", "", "", "", "", "")
            continue
        if isinstance(status, Refused):
            table.add_row(region.id, region.client_endpoint,
                          f"[yellow]refused: {status['reason'][:60]}[/yellow]",
                          "", "", "", "", "")
            continue
        replication = status.get("replication") or {}
        peers = replication.get("peers") or {}
        lag = replication.get("lag_ms") or {}
        table.add_row(
            region.id, region.client_endpoint, "[green]up[/green]",
            f"{sum(1 for p in peers.values() if p['connected'])}/{len(peers)}",
            str(replication.get("behind_records", "")),
            f"{lag.get('p50')}/{lag.get('p99')}", str(replication.get("conflicts_detected", "")),
            str(status.get("writes_committed", "")))
    Console().print(table)


@click.command()
@click.option("--config", "config_path", default="./data/cluster.toml", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--region", default=None, help="Only this region's conflict log.")
@connection_options
def conflicts(config_path: str, region: str | None, profile: str | None,
              credentials_file: str | None, ca_file: str | None) -> None:
    """Print the conflict log: concurrent writes that lost last-writer-wins (JSON lines)."""
    config = _config(config_path)
    credentials = resolve_credentials(profile, credentials_file)
    for entry in config.regions:
        if region is not None and entry.id != region:
            continue
        found = _fetch(entry.client_endpoint + "/_atoll/conflicts", credentials, ca_file)
        if found is None or isinstance(found, Refused):
            error = "unreachable" if found is None else found["reason"]
            click.echo(json.dumps({"region": entry.id, "error": error}))
            continue
        for conflict in found["conflicts"]:
            click.echo(json.dumps({"region": entry.id, **conflict}, sort_keys=True))
