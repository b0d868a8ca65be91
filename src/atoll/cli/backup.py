"""`atoll backup` — a consistent copy of a node's whole database.

With --endpoint the running node makes the copy itself (POST /_atoll/backup: SQLite's
online backup API, while it keeps serving) and writes it to --out on its own machine.
The request is signed (--profile/--credentials): the copy holds every table, so the
node makes it only for an admin key. With --data-dir the copy is made here from the database file, whether its node is
stopped or running (a WAL database gives a reader one committed state either way).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from atoll.cli.keys import connection_options
from atoll.client.signing import call, refusal, resolve_credentials
from atoll.storage.sqlite.filecopy import CopyRefused, copy_database

REQUEST_TIMEOUT_S = 3600.0


def database_in(data_dir: Path, region: str | None) -> tuple[Path, str]:
    """(database file, region) of a node's data directory."""
    if region is not None:
        return data_dir / f"atoll-{region}.db", region
    found = sorted(data_dir.glob("atoll-*.db"))
    if len(found) != 1:
        raise click.UsageError(f"{data_dir} holds {len(found)} node databases; say which "
                               "with --region")
    return found[0], found[0].name.removeprefix("atoll-").removesuffix(".db")


@click.command()
@click.option("--endpoint", default=None, metavar="URL",
              help="A running node's client endpoint: the node writes the copy.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="A node's data directory: copy its database file from here.")
@click.option("--region", default=None, help="Whose database in --data-dir [default: the "
              "only one there].")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The backup file to write.")
@connection_options
def backup(endpoint: str | None, data_dir: Path | None, region: str | None, out: Path,
           profile: str | None, credentials_file: str | None, ca_file: str | None) -> None:
    """Copy a node's whole database to a file (see `atoll restore`)."""
    if (endpoint is None) == (data_dir is None):
        raise click.UsageError("give either --endpoint (a running node) or --data-dir")
    out = out.resolve()
    if endpoint is not None:
        url = endpoint.rstrip("/") + "/_atoll/backup"
        try:
            status, answer = call(url, resolve_credentials(profile, credentials_file),
                                  json.dumps({"path": str(out)}).encode(),
                                  timeout_s=REQUEST_TIMEOUT_S, ca_file=ca_file)
        except OSError as exc:
            raise click.ClickException(f"{endpoint}: {exc}") from None
        if status != 200:
            raise click.ClickException(f"{endpoint}: {status} {refusal(answer)}")
        click.echo(f"backed up region {answer['region']} to {answer['path']} "
                   f"({answer['size_bytes']} bytes, {answer['seconds']} s)")
        return
    assert data_dir is not None
    source, found = database_in(data_dir, region)
    if not source.is_file():
        raise click.ClickException(f"{source}: no such database")
    try:
        size = copy_database(str(source), str(out))
    except (CopyRefused, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up region {found} to {out} ({size} bytes)")
