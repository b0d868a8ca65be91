"""`atoll serve` — run one node (a drop-in local DynamoDB)."""

from __future__ import annotations

import click

from atoll.server.app import NodeConfig
from atoll.server.app import serve as run_node


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--data-dir", default="./data", show_default=True,
              type=click.Path(file_okay=False), help="Directory of the SQLite database.")
@click.option("--in-memory", is_flag=True, help="Keep data in memory only (lost at exit).")
@click.option("--region", default="local", show_default=True, help="This node's region id.")
def serve(host: str, port: int, data_dir: str, in_memory: bool, region: str) -> None:
    """Serve the DynamoDB API over HTTP on HOST:PORT."""
    run_node(NodeConfig(host=host, port=port, data_dir=data_dir, in_memory=in_memory,
                        region=region))
