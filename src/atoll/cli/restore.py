"""`atoll restore` — put a whole-node backup (`atoll backup`) back in a data directory.

Stop the node first. The backup is checked (SQLite's quick_check, the schema version),
then copied into place, replacing the database there (with --force). Point-in-time
recovery data in the directory is removed: it follows the replaced database's changelog.
Table backups there stay (each is a self-contained file).

A node that was part of a cluster (its data directory holds its topology) rejoins it:
its peers are asked what they hold (atoll.backup.rejoin). If they can bring it up to
date from the backup's cursors, the backup goes into place and the node catches up when
it starts; if they moved past the backup (they hold more of this region's own changes,
or purged changes the backup lacks), the node is left to start empty and be rebuilt
from a peer's snapshot, and the command says why. A cluster with mutual TLS between its
regions answers the peer ports only to a certificate of its CA: `--certs` (the `atoll
certs` directory) lets the command ask as the region being restored.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import urllib.request
from pathlib import Path

import click

from atoll.auth.certs import ClusterFiles
from atoll.auth.tls import peer_client_context
from atoll.backup.rejoin import REBUILD, PeerView, plan_rejoin
from atoll.cli.backup import database_in
from atoll.node.topology import TopologyFile, topology_file_path
from atoll.storage.sqlite.filecopy import CopyRefused, check_database, database_cursors

PEER_TIMEOUT_S = 3.0


def _peer_tls(certs: Path | None, region: str) -> ssl.SSLContext | None:
    """TLS as `region` (its certificate, the cluster CA) for https peer endpoints."""
    if certs is None:
        return None
    files = ClusterFiles(certs)
    try:
        return peer_client_context(files.region_cert(region), files.region_key(region),
                                   files.ca_cert)
    except (OSError, ssl.SSLError) as exc:
        raise click.ClickException(f"cannot use the certificates in {certs}: {exc}") from None


def _peer_views(data_dir: Path, region: str, certs: Path | None
                ) -> tuple[list[PeerView], list[str]] | None:
    """What the peers of a cluster member report, and which did not answer; None if the
    directory holds no cluster topology for the region."""
    topology = TopologyFile(topology_file_path(data_dir, region)).load()
    if topology is None or not topology.has_region(region):
        return None
    tls = _peer_tls(certs, region)
    views, silent = [], []
    for peer in topology.peers_of(region):
        view = None
        for endpoint in peer.peer_endpoints:
            request = urllib.request.Request(endpoint.rstrip("/") + "/_atoll/status", headers={
                "X-Atoll-Cluster": topology.cluster_id, "X-Atoll-Region": region})
            try:
                with urllib.request.urlopen(request, timeout=PEER_TIMEOUT_S,
                                            context=tls) as response:
                    replication = json.loads(response.read())["replication"]
                view = PeerView(peer.id, {o: int(s) for o, s in replication["cursors"].items()},
                                {o: int(s) for o, s in
                                 replication["changelog"]["log_start"].items()})
                break
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if view is None:
            silent.append(peer.id)
        else:
            views.append(view)
    return views, silent


def _remove_database(target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(target) + suffix)
        if path.exists():
            path.unlink()


@click.command()
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A backup file made by `atoll backup`.")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The (stopped) node's data directory.")
@click.option("--region", default=None, help="The node's region [default: the database or "
              "topology found in --data-dir, else local].")
@click.option("--force", is_flag=True, help="Replace the database the directory holds.")
@click.option("--without-peers", is_flag=True,
              help="Restore a cluster member even though none of its peers answered.")
@click.option("--certs", default=None, type=click.Path(file_okay=False, exists=True,
                                                       path_type=Path),
              help="The `atoll certs` directory: ask the peers over mutual TLS as this region.")
def restore(source: Path, data_dir: Path, region: str | None, force: bool,
            without_peers: bool, certs: Path | None) -> None:
    """Restore a node's whole database from a backup file (stop the node first)."""
    try:
        check_database(str(source))
    except CopyRefused as exc:
        raise click.ClickException(f"refusing the backup: {exc}") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    if region is None:
        topologies = sorted(data_dir.glob("topology-*.json"))
        if list(data_dir.glob("atoll-*.db")):
            region = database_in(data_dir, None)[1]
        elif len(topologies) == 1:
            region = topologies[0].name.removeprefix("topology-").removesuffix(".json")
        else:
            region = "local"
    target = data_dir / f"atoll-{region}.db"
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists: stop its node and pass --force to "
                                   "replace it")
    action = "restored"
    peers = _peer_views(data_dir, region, certs)
    if peers is not None:
        views, silent = peers
        if not views and not without_peers:
            raise click.ClickException(
                f"none of {region}'s peers answered ({', '.join(silent)}): cannot tell whether "
                "the cluster moved past this backup; start a peer, or pass --without-peers")
        plan = plan_rejoin(region, database_cursors(str(source), region), views)
        if plan.action == REBUILD:
            action = "left out"
            click.echo(f"the cluster moved past this backup ({'; '.join(plan.reasons)}): "
                       f"region {region} will start empty and be rebuilt from a peer")
        else:
            click.echo(f"region {region} will catch up from the backup's cursors "
                       f"({len(views)} peer(s) asked"
                       + (f"; {', '.join(silent)} did not answer" if silent else "") + ")")
    partial = Path(str(target) + ".partial")
    if action == "restored":
        shutil.copyfile(source, partial)
        with open(partial, "rb+") as copied:
            os.fsync(copied.fileno())
    _remove_database(target)
    if action == "restored":
        os.replace(partial, target)
    pitr = data_dir / "backups" / "pitr"
    if pitr.exists():
        shutil.rmtree(pitr)
        click.echo(f"removed point-in-time recovery data ({pitr}): re-enable it per table")
    click.echo(f"backup {source} {action}: {target}")
