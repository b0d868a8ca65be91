"""`atoll proxy` — a local failover sidecar for any SDK or tool."""

from __future__ import annotations

import asyncio

import click

from atoll.cli.keys import connection_options
from atoll.client.routing import FAILOVER_BUDGET_S, DiscoveryError
from atoll.client.signing import resolve_credentials
from atoll.http.server import ListenError


@click.command()
@click.option("--listen", default="127.0.0.1:8100", show_default=True,
              help="HOST:PORT to serve on; point endpoint_url here.")
@click.option("--seed", "seeds", multiple=True, required=True,
              help="A node's client endpoint to fetch the topology from (repeatable).")
@click.option("--prefer", default="", help="Region ids in order of preference, comma-separated "
              "[default: the topology's order].")
@click.option("--cache", "cache_path", default=None, type=click.Path(dir_okay=False),
              help="Where to cache the last good topology [default: ~/.cache/atoll/].")
@click.option("--failover-budget", "budget_s", default=FAILOVER_BUDGET_S, show_default=True,
              type=click.FloatRange(0.1, 300), metavar="SECONDS",
              help="Time one request may take across all the regions it tries.")
@connection_options
def proxy(listen: str, seeds: tuple[str, ...], prefer: str, cache_path: str | None,
          budget_s: float, profile: str | None, credentials_file: str | None,
          ca_file: str | None) -> None:
    """Forward DynamoDB requests to the preferred healthy region, failing over.

    Point any SDK or tool at it (endpoint_url / --endpoint-url http://127.0.0.1:8100).
    The regions come from the cluster's topology (fetched from the first --seed that
    answers, cached on disk), never from DNS; each region's /health is probed every
    0.5 s. Reads and idempotent writes move to the next region on a connection failure,
    a timeout or a 5xx; other writes only when they certainly did not reach the region.
    Metrics: GET /_atoll/proxy/metrics (JSON), GET /metrics (Prometheus).

    With a key (--profile/--credentials, the AWS environment, or ./data/credentials)
    the application signs its requests with that key; the proxy verifies them and
    signs them again for the region it sends them to (atoll.client.proxy says why).
    """
    from atoll.client.proxy import run_proxy

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {listen!r}", param_hint="--listen")
    preference = [p.strip() for p in prefer.split(",") if p.strip()]
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        pass
    try:
        asyncio.run(run_proxy(host, int(port), seeds, preference, cache_path, budget_s,
                              resolve_credentials(profile, credentials_file), ca_file))
    except (DiscoveryError, ListenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
