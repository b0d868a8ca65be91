"""`atoll serve` — run one node (a drop-in local DynamoDB)."""

from __future__ import annotations

import click

from atoll.antientropy.settings import BadSettings, VerifySettings, verify_settings
from atoll.errors import ValidationError
from atoll.http.server import ListenError
from atoll.node.node import NodeConfig
from atoll.node.node import serve as run_node
from atoll.topology.config import load_cluster_config


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1, or the "
              "region's client endpoint with --config].")
@click.option("--port", default=None, type=click.IntRange(0, 65535),
              help="Port [default: 8000, or the region's client endpoint with --config].")
@click.option("--data-dir", default="./data", show_default=True,
              type=click.Path(file_okay=False), help="Directory of the SQLite database.")
@click.option("--in-memory", is_flag=True, help="Keep data in memory only (lost at exit).")
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
@click.option("--max-connections", default=None, type=click.IntRange(1),
              help="Client connections held open at most; at the cap the one idle longest "
              "is closed to admit a new one [default: from the open-file limit].")
@click.option("--no-trees", is_flag=True, hidden=True,
              help="Keep no hash trees (and verify nothing): to measure what they cost.")
def serve(host: str | None, port: int | None, data_dir: str, in_memory: bool, region: str | None,
          config_path: str | None, ttl_interval: float, peer_listen: str | None,
          clock_offset_ms: int, max_connections: int | None, no_trees: bool) -> None:
    """Serve the DynamoDB API over HTTP on HOST:PORT."""
    cluster = None
    verify = VerifySettings()
    if config_path is not None:
        if region is None:
            raise click.UsageError("--config needs --region to say which region this node is")
        try:
            cluster = load_cluster_config(config_path)
            client_host, client_port = cluster.region(region).client_address
            verify = verify_settings(cluster.options)
        except ValidationError as exc:
            raise click.UsageError(exc.message) from None
        except BadSettings as exc:
            raise click.UsageError(f"{config_path}: {exc}") from None
        host = host or client_host
        port = port if port is not None else client_port
    try:
        run_node(NodeConfig(host=host or "127.0.0.1", port=8000 if port is None else port,
                            data_dir=data_dir, in_memory=in_memory, region=region or "local",
                            cluster=cluster, ttl_interval_s=ttl_interval,
                            peer_listen=_host_port(peer_listen), clock_offset_ms=clock_offset_ms,
                            max_connections=max_connections, verify=verify,
                            trees=not no_trees))
    except ValidationError as exc:  # e.g. the data directory belongs to another cluster
        raise click.ClickException(exc.message) from None
    except ListenError as exc:
        raise click.ClickException(str(exc)) from None


def _host_port(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--peer-listen")
    return host, int(port)
