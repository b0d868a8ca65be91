"""`atoll topology get|set` — read or update a running cluster's topology.

Any node answers (client or peer endpoint). `set` posts a whole topology (JSON or TOML,
the same shape as the cluster config); the node accepts it only if it is valid and its
generation is higher than the node's (DESIGN.md decision 8), then spreads it to the
other regions. A refusal prints the node's reason and exits with status 1.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from atoll.errors import ValidationError
from atoll.topology.config import parse_topology_text

TIMEOUT_S = 5.0
PATH = "/_atoll/topology"


def _call(url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url.rstrip("/") + PATH, data=body,
                                     method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"reason": raw.decode(errors="replace")[:300]}
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{url}: {exc}") from None


@click.group()
def topology() -> None:
    """Read or update the cluster topology (regions, endpoints, generation)."""


@topology.command("get")
@click.option("--endpoint", required=True, help="Any node's URL, e.g. http://127.0.0.1:8000.")
def get(endpoint: str) -> None:
    """Print the node's current topology as JSON."""
    status, body = _call(endpoint)
    if status != 200:
        raise click.ClickException(f"{endpoint}: HTTP {status}: {body}")
    click.echo(json.dumps(body, indent=2))


@topology.command("set")
@click.option("--endpoint", required=True, help="Any node's URL, e.g. http://127.0.0.1:8000.")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The new topology, JSON or TOML.")
@click.option("--generation", type=click.IntRange(1), default=None,
              help="Use this generation instead of the file's.")
def set_(endpoint: str, path: str, generation: int | None) -> None:
    """Propose a new topology; it applies only with a higher generation and if valid."""
    try:
        proposed = parse_topology_text(Path(path).read_text(), path)
    except (OSError, ValidationError) as exc:
        raise click.ClickException(str(getattr(exc, "message", exc))) from None
    if generation is not None:
        proposed = proposed.with_generation(generation)
    status, body = _call(endpoint, json.dumps(proposed.to_dict()).encode())
    if status == 200 and body.get("accepted"):
        note = "" if body.get("changed", True) else " (the node already had it)"
        click.echo(f"accepted: generation {body['generation']}{note}")
        return
    click.echo(f"refused (HTTP {status}): {body.get('reason', body)}"
               f" [node is at generation {body.get('current_generation', '?')}]", err=True)
    raise SystemExit(1)
