"""`atoll keys` — create, list and revoke access keys (against any region, admin key).

    atoll keys create --role read-write [--table Orders --table Users] [--session-seconds N]
    atoll keys list
    atoll keys revoke AKAT...

Keys are cluster data: made in one region, they work in every region once replicated
(milliseconds), and a revocation stops a key everywhere as soon as it reaches each
region. The secret is shown once, at creation; the cluster keeps it only sealed under
the cluster data key. Each call is signed with an admin key: `--profile`/`--credentials`,
the AWS environment variables, or `./data/credentials` (written by `make run`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from atoll.auth.keys import ROLES
from atoll.client.signing import call, refusal, resolve_credentials

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--profile, --credentials, --ca-file: how to sign and reach a node."""
    for option in reversed((
            click.option("--profile", default=None, help="AWS profile of the signing key."),
            click.option("--credentials", "credentials_file", default=None,
                         type=click.Path(dir_okay=False, exists=True),
                         help="AWS shared-credentials file [default: the SDKs' usual "
                              "places, then ./data/credentials]."),
            click.option("--ca-file", default=None, type=click.Path(dir_okay=False, exists=True),
                         help="CA certificate to trust for https:// endpoints."))):
        command = option(command)
    return command


def _call(endpoint: str, path: str, profile: str | None, credentials_file: str | None,
          ca_file: str | None, body: dict[str, Any] | None = None) -> Any:
    credentials = resolve_credentials(profile, credentials_file)
    url = endpoint.rstrip("/") + path
    try:
        status, answer = call(url, credentials, None if body is None else
                              json.dumps(body).encode(), ca_file=ca_file)
    except OSError as exc:
        raise click.ClickException(f"{url}: {exc}") from None
    if status != 200:
        raise click.ClickException(f"{url}: HTTP {status}: {refusal(answer)}")
    return answer


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.group()
def keys() -> None:
    """Create, list and revoke access keys (needs an admin key)."""


@keys.command("create")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True,
              help="Any region's client endpoint.")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="admin (everything), read-write (items), read-only (reads).")
@click.option("--table", "tables", multiple=True,
              help="Limit the key to this table (repeatable; not for admin keys).")
@click.option("--session-seconds", default=None, type=click.IntRange(1),
              help="A session key: expires after this long and needs its session token.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@connection_options
def create(endpoint: str, role: str, tables: tuple[str, ...], session_seconds: int | None,
           as_json: bool, profile: str | None, credentials_file: str | None,
           ca_file: str | None) -> None:
    """Make a key; its secret is printed once."""
    body: dict[str, Any] = {"role": role, "tables": list(tables) or None}
    if session_seconds is not None:
        body["session_seconds"] = session_seconds
    answer = _call(endpoint, "/_atoll/keys", profile, credentials_file, ca_file, body)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(f"created {answer['role']} key {answer['key_id']}"
               + (f" for tables {', '.join(answer['tables'])}" if answer.get("tables") else ""))
    click.echo("As an AWS shared-credentials profile (the secret is not shown again):")
    click.echo(f"[{answer['key_id'].lower()}]")
    click.echo(f"aws_access_key_id = {answer['key_id']}")
    click.echo(f"aws_secret_access_key = {answer['secret_access_key']}")
    if answer.get("session_token"):
        click.echo(f"aws_session_token = {answer['session_token']}")
        click.echo(f"# expires {_when(answer['expires_ms'])}")


@keys.command("list")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True,
              help="Any region's client endpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@connection_options
def list_(endpoint: str, as_json: bool, profile: str | None, credentials_file: str | None,
          ca_file: str | None) -> None:
    """List the keys this region holds (never their secrets)."""
    answer = _call(endpoint, "/_atoll/keys", profile, credentials_file, ca_file)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    for key in answer["keys"]:
        state = f"revoked {_when(key['revoked_ms'])}" if key.get("revoked_ms") else "active"
        tables = ",".join(key["tables"]) if key.get("tables") else "*"
        click.echo(f"{key['key_id']}  {key['role']:<10}  tables {tables:<20}  "
                   f"created {_when(key['created_ms'])}  {state}")


@keys.command("revoke")
@click.argument("key_id")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True,
              help="Any region's client endpoint.")
@connection_options
def revoke(key_id: str, endpoint: str, profile: str | None, credentials_file: str | None,
           ca_file: str | None) -> None:
    """Revoke a key: refused in every region once the revocation reaches it."""
    answer = _call(endpoint, "/_atoll/keys/revoke", profile, credentials_file, ca_file,
                   {"key_id": key_id})
    click.echo(f"revoked {answer['key_id']} at {_when(answer['revoked_ms'])}")
