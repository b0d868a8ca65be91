"""`atoll serve` — run one node (a drop-in local DynamoDB).

Security (DESIGN.md decision 11): `--auth required` makes every DynamoDB request and
every `/_atoll/...` page need an AWS Signature Version 4 with a key of the cluster
(`atoll keys`); `warn` serves and counts what would have been refused; `off` checks
nothing. The default is `off` only for a node alone on loopback (a local DynamoDB, as
DynamoDB Local is), and `required` for a region of a cluster or a node listening beyond
loopback. A node listening beyond loopback with `--auth off`, or a region whose peer
port listens beyond loopback without `--certs`, refuses to start unless `--insecure`.
"""

from __future__ import annotations

import tomllib

import click

from atoll.antientropy.settings import VerifySettings, verify_settings
from atoll.api.access import MODES, OFF, REQUIRED
from atoll.clock.offset import DEFAULT_MAX_OFFSET_MS
from atoll.engine.tabledef import DEFAULT_ACCOUNT
from atoll.errors import ValidationError
from atoll.http.server import ListenError
from atoll.node.node import NodeConfig
from atoll.node.node import serve as run_node
from atoll.node.security import is_loopback
from atoll.replication.config import ReplicationConfig, replication_config
from atoll.topology.config import load_cluster_config


def _check_account(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if len(value) != 12 or not value.isdigit():
        raise click.BadParameter(f"an AWS account id is 12 digits, got {value!r}")
    return value


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1, or the "
              "region's client endpoint with --config].")
@click.option("--port", default=None, type=click.IntRange(0, 65535),
              help="Port [default: 8000, or the region's client endpoint with --config].")
@click.option("--data-dir", default="./data", show_default=True,
              type=click.Path(file_okay=False), help="Directory of the SQLite database.")
@click.option("--in-memory", is_flag=True, help="Keep data in memory only (lost at exit).")
@click.option("--storage", "storage_url", default=None, metavar="postgresql://...",
              help="Keep the region's data in this PostgreSQL database instead of SQLite "
              "(any number of nodes of one region may share it; see docs/postgresql.md). "
              "With --config, the config's [storage] table may name it per region.")
@click.option("--region", default=None, help="This node's region id [default: local].")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Cluster config (TOML): run as one region of a multi-region cluster.")
@click.option("--ttl-interval", default=30.0, show_default=True, type=click.FloatRange(0.05),
              help="Seconds between sweeps that delete items whose TTL has passed.")
@click.option("--peer-listen", default=None, metavar="HOST:PORT",
              help="Bind the peer listener here instead of the region's advertised peer "
              "endpoint (when a proxy sits at the advertised address).")
@click.option("--clock-offset-ms", default=0, type=int, hidden=True,
              help="Add this to the wall clock (clock-skew drills).")
@click.option("--max-clock-offset-ms", default=DEFAULT_MAX_OFFSET_MS, show_default=True,
              type=click.IntRange(1), help="Refuse writes (a retryable 503) while this "
              "region's clock differs from a majority of its peers' by more than this.")
@click.option("--settable-clock", is_flag=True, hidden=True,
              help="Let POST /_atoll/clock move this node's clock forward (tests).")
@click.option("--max-connections", default=None, type=click.IntRange(1),
              help="Client connections held open at most; at the cap the one idle longest "
              "is closed to admit a new one [default: from the open-file limit].")
@click.option("--fault-drop-every", default=0, type=click.IntRange(0), hidden=True,
              help="A deliberate defect: drop every Nth replicated item write (drill tests).")
@click.option("--account-id", default=DEFAULT_ACCOUNT, show_default=True,
              callback=_check_account, help="The AWS account id in table and backup ARNs.")
@click.option("--backup-dir", default=None, type=click.Path(file_okay=False),
              help="Where table backups and point-in-time recovery data live "
              "[default: DATA_DIR/backups].")
@click.option("--pitr-window", "pitr_window_s", default=None, type=click.FloatRange(1),
              help="Cap every table's point-in-time recovery window at this many seconds "
              "[default: its RecoveryPeriodInDays, 35 days unless set].")
@click.option("--pitr-snapshot-interval", "pitr_snapshot_interval_s", default=86_400.0,
              show_default=True, type=click.FloatRange(0.1),
              help="Seconds between the table snapshots point-in-time recovery replays from.")
@click.option("--no-trees", is_flag=True, hidden=True,
              help="Keep no hash trees (and verify nothing): to measure what they cost.")
@click.option("--auth", "auth_mode", default=None, type=click.Choice(MODES),
              help="Request signatures: required, warn (serve and count refusals) or off "
              "[default: off for a lone node on loopback, else required].")
@click.option("--certs", "certs_dir", default=None,
              type=click.Path(file_okay=False, exists=True),
              help="The `atoll certs` directory: the cluster data key and, in a cluster, the "
              "CA and this region's certificate (mutual TLS between regions).")
@click.option("--tls-cert", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Serve HTTPS on the client port with this certificate (PEM).")
@click.option("--tls-key", default=None, type=click.Path(dir_okay=False, exists=True),
              help="The private key of --tls-cert (PEM).")
@click.option("--admin-credentials", default=None, type=click.Path(dir_okay=False),
              help="Make an admin key at start-up and write it to this file as an AWS "
              "shared-credentials profile 'atoll' (nothing is made if the file exists).")
@click.option("--insecure", is_flag=True,
              help="Allow listening beyond loopback without authentication.")
@click.option("--peer-source", default=None, hidden=True,
              help="Local address for connections to peers (drills tell regions apart by it).")
def serve(host: str | None, port: int | None, data_dir: str, in_memory: bool, region: str | None,
          config_path: str | None, ttl_interval: float, peer_listen: str | None,
          clock_offset_ms: int, max_clock_offset_ms: int, settable_clock: bool,
          max_connections: int | None, storage_url: str | None, fault_drop_every: int,
          account_id: str, backup_dir: str | None, pitr_window_s: float | None,
          pitr_snapshot_interval_s: float, no_trees: bool, auth_mode: str | None,
          certs_dir: str | None, tls_cert: str | None, tls_key: str | None,
          admin_credentials: str | None, insecure: bool, peer_source: str | None) -> None:
    """Serve the DynamoDB API over HTTP(S) on HOST:PORT."""
    cluster = None
    verify = VerifySettings()
    replication = ReplicationConfig()
    if config_path is not None:
        if region is None:
            raise click.UsageError("--config needs --region to say which region this node is")
        try:
            cluster = load_cluster_config(config_path)
            client_host, client_port = cluster.region(region).client_address
            verify = verify_settings(cluster.options)
            replication = replication_config(cluster.options)
        except ValidationError as exc:
            raise click.UsageError(exc.message) from None
        except ValueError as exc:  # (BadSettings is one)
            raise click.UsageError(f"{config_path}: {exc}") from None
        host = host or client_host
        port = port if port is not None else client_port
        storage_url = storage_url or _configured_storage(config_path, region)
    if storage_url is not None and (in_memory or not storage_url.startswith(
            ("postgresql://", "postgres://"))):
        raise click.UsageError("--storage takes a postgresql:// URL (and excludes --in-memory)")
    host = host or "127.0.0.1"
    if auth_mode is None:
        auth_mode = OFF if cluster is None and is_loopback(host) else REQUIRED
    try:
        run_node(NodeConfig(host=host, port=8000 if port is None else port,
                            data_dir=data_dir, in_memory=in_memory, region=region or "local",
                            cluster=cluster, ttl_interval_s=ttl_interval,
                            peer_listen=_host_port(peer_listen), clock_offset_ms=clock_offset_ms,
                            max_clock_offset_ms=max_clock_offset_ms,
                            settable_clock=settable_clock,
                            max_connections=max_connections, storage_url=storage_url,
                            fault_drop_every=fault_drop_every,
                            account_id=account_id, backup_dir=backup_dir,
                            pitr_window_s=pitr_window_s,
                            pitr_snapshot_interval_s=pitr_snapshot_interval_s,
                            verify=verify, replication=replication, trees=not no_trees,
                            auth=auth_mode, certs_dir=certs_dir, tls_cert=tls_cert,
                            tls_key=tls_key, admin_credentials=admin_credentials,
                            insecure=insecure, peer_source=peer_source))
    except ValidationError as exc:  # e.g. the data directory belongs to another cluster
        raise click.ClickException(exc.message) from None
    except ListenError as exc:
        raise click.ClickException(str(exc)) from None


def _configured_storage(config_path: str, region: str) -> str | None:
    """The region's storage URL from the cluster config's [storage] table (region id =
    "postgresql://..."): read by the region's own nodes only, never part of the
    replicated topology (a URL may carry credentials)."""
    with open(config_path, "rb") as f:
        value = tomllib.load(f).get("storage", {}).get(region)
    if value is not None and not isinstance(value, str):
        raise click.UsageError(f"[storage] {region} must be a postgresql:// URL string")
    return value


def _host_port(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--peer-listen")
    return host, int(port)
