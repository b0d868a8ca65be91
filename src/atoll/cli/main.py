"""`atoll` — the command-line entry point (subcommands live in sibling modules)."""

from __future__ import annotations

import click

from atoll import __version__
from atoll.cli.backup import backup
from atoll.cli.certs import certs
from atoll.cli.cluster import cluster
from atoll.cli.drill import drill
from atoll.cli.keys import keys
from atoll.cli.proxy import proxy
from atoll.cli.repairs import repairs
from atoll.cli.restore import restore
from atoll.cli.serve import serve
from atoll.cli.status import conflicts, status
from atoll.cli.streams import streams
from atoll.cli.terminal import configure_logging
from atoll.cli.topology import topology
from atoll.cli.verify import verify


@click.group()
@click.version_option(__version__, prog_name="atoll")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_level: str) -> None:
    """Atoll: a DynamoDB-compatible database that runs active-active across regions."""
    configure_logging(log_level)  # through rich on a terminal: progress bars stay whole


cli.add_command(serve)
cli.add_command(cluster)
cli.add_command(status)
cli.add_command(conflicts)
cli.add_command(verify)
cli.add_command(repairs)
cli.add_command(topology)
cli.add_command(proxy)
cli.add_command(drill)
cli.add_command(certs)
cli.add_command(keys)
cli.add_command(backup)
cli.add_command(restore)
cli.add_command(streams)


def main() -> None:
    cli()
