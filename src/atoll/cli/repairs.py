"""`atoll repairs` — the repair log: what verify wrote into which region, and why.

Reads each region's log (`/_atoll/repairs`, a page of 1,000 at a time) and prints each
repair with its key as the application wrote it: the region repaired, why (missing,
older, deleted, corrupt, content), the version written and the region it came from,
the version it replaced, and the outcome (applied; already: the region held it;
skipped: the row had moved on to a version as new).
"""

from __future__ import annotations

import json

import click

from atoll.cli.keys import connection_options
from atoll.cli.status import TIMEOUT_S, Signer, _config, iso_ms, region_logs
from atoll.cli.verify import key_text
from atoll.client.signing import resolve_credentials


@click.command()
@click.option("--config", "config_path", default="./data/cluster.toml", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--region", default=None, help="Only this region's repair log.")
@click.option("--table", "table_name", default=None, help="Only repairs in this table.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--timeout", "timeout_s", default=TIMEOUT_S, show_default=True,
              type=click.FloatRange(0.1))
@connection_options
def repairs(config_path: str, region: str | None, table_name: str | None, as_json: bool,
            timeout_s: float, profile: str | None, credentials_file: str | None,
            ca_file: str | None) -> None:
    """The repair log: keys verify repaired, oldest first (signed: an admin key)."""
    config = _config(config_path)
    signer = Signer(resolve_credentials(profile, credentials_file), ca_file)
    found = [r for log in region_logs(config, region, "repairs", timeout_s, signer).values()
             for r in log if table_name is None or r["table"] == table_name]
    found.sort(key=lambda r: r["repaired_ms"])
    for r in found:
        if as_json:
            click.echo(json.dumps({"repaired": iso_ms(r["repaired_ms"]), **r}, sort_keys=True,
                                  ensure_ascii=False))
            continue
        click.echo(f"{iso_ms(r['repaired_ms'])}  {r['table']}  {key_text(r)}")
        click.echo(f"    {r['region']}: {r['reason']}; wrote {r['winner']} from {r['source']}"
                   f" over {r['replaced'] or 'nothing'}"
                   f"{' (a concurrent write)' if r['conflict'] else ''}: {r['outcome']}")
    click.echo(f"{len(found)} repair(s)", err=True)
