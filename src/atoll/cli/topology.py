"""`atoll topology get|set` — read or update a running cluster's topology.

Any node answers (client or peer endpoint). `set` posts a whole topology (JSON or TOML,
the same shape as the cluster config); the node accepts it only if it is valid and its
generation is higher than the node's (DESIGN.md decision 8) but not by more than
MAX_GENERATION_STEP, then spreads it to the other regions. A refusal prints the node's
reason and exits with status 1. Both are signed: `get` with any key, `set` with an
admin key.

Recovering from a bad plan (one that was accepted but is wrong): write the right plan
and post it with `--next`, which takes the node's current generation + 1. Since no
plan can jump more than MAX_GENERATION_STEP generations, nor past 2^53, the current
generation + 1 is always within reach.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from atoll.cli.keys import connection_options
from atoll.client.signing import call, refusal, resolve_credentials
from atoll.errors import ValidationError
from atoll.topology.config import parse_topology_text

TIMEOUT_S = 5.0
PATH = "/_atoll/topology"


def _call(url: str, options: dict[str, Any], body: bytes | None = None) -> tuple[int, Any]:
    credentials = resolve_credentials(options["profile"], options["credentials_file"])
    try:
        status, answer = call(url.rstrip("/") + PATH, credentials, body, TIMEOUT_S,
                              options["ca_file"])
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{url}: {exc}") from None
    if isinstance(answer, dict) and "__type" in answer:  # refused by auth
        answer = {"reason": refusal(answer)}
    return status, answer


@click.group()
def topology() -> None:
    """Read or update the cluster topology (regions, endpoints, generation)."""


@topology.command("get")
@click.option("--endpoint", required=True, help="Any node's URL, e.g. http://127.0.0.1:8000.")
@connection_options
def get(endpoint: str, **options: Any) -> None:
    """Print the node's current topology as JSON."""
    status, body = _call(endpoint, options)
    if status != 200:
        raise click.ClickException(f"{endpoint}: HTTP {status}: {body}")
    click.echo(json.dumps(body, indent=2))


@topology.command("set")
@click.option("--endpoint", required=True, help="Any node's URL, e.g. http://127.0.0.1:8000.")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The new topology, JSON or TOML.")
@click.option("--generation", type=click.IntRange(1), default=None,
              help="Use this generation instead of the file's.")
@click.option("--next", "next_generation", is_flag=True,
              help="Use the node's current generation + 1 (replacing a bad plan).")
@connection_options
def set_(endpoint: str, path: str, generation: int | None, next_generation: bool,
         **options: Any) -> None:
    """Propose a new topology; it applies only with a higher generation and if valid.
    Needs an admin key."""
    try:
        proposed = parse_topology_text(Path(path).read_text(), path)
    except (OSError, ValidationError) as exc:
        raise click.ClickException(str(getattr(exc, "message", exc))) from None
    if next_generation:
        status, current = _call(endpoint, options)
        if status != 200:
            raise click.ClickException(f"{endpoint}: HTTP {status}: {current}")
        generation = int(current["generation"]) + 1
    if generation is not None:
        proposed = proposed.with_generation(generation)
    status, body = _call(endpoint, options, json.dumps(proposed.to_dict()).encode())
    if status == 200 and body.get("accepted"):
        note = "" if body.get("changed", True) else " (the node already had it)"
        click.echo(f"accepted: generation {body['generation']}{note}")
        return
    click.echo(f"refused (HTTP {status}): {body.get('reason', body)}"
               f" [node is at generation {body.get('current_generation', '?')}]", err=True)
    raise SystemExit(1)
