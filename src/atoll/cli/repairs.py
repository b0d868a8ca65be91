"""`atoll repairs` — the repair log: what verify wrote into which region, and why.

Reads each region's log (`/_atoll/repairs`, a page of 1,000 at a time) and prints each
repair with its key as the application wrote it: the region repaired, why (missing,
older, deleted, corrupt, content), the version written and the region it came from,
the version it replaced, and the outcome (applied; already: the region held it;
skipped: the row had moved on to a version as new).
"""

from __future__ import annotations

import json
from typing import Any

import click

from atoll.cli.keys import connection_options
from atoll.cli.status import TIMEOUT_S, Signer, _config, _fetch, iso_ms
from atoll.cli.verify import key_text
from atoll.client.signing import resolve_credentials

MAX_PAGES = 1000


def read_repairs(endpoint: str, timeout_s: float, signer: Signer | None = None
                 ) -> list[dict[str, Any]] | str:
    """A region's whole repair log, or why it could not be read."""
    entries: list[dict[str, Any]] = []
    after = 0
    for _ in range(MAX_PAGES):
        page = _fetch(f"{endpoint}/_atoll/repairs/after/{after}", timeout_s, signer)
        if isinstance(page, str):
            return page
        batch = page.get("repairs") or []
        entries.extend(batch)
        if len(batch) < 1000:
            break
        after = batch[-1]["id"]
    return entries


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
    found: list[dict[str, Any]] = []
    for entry in config.regions:
        if region is not None and entry.id != region:
            continue
        log = read_repairs(entry.client_endpoint, timeout_s, signer)
        if isinstance(log, str):
            click.echo(f"{entry.id}: repair log not read: {log}", err=True)
            continue
        found += [r for r in log if table_name is None or r["table"] == table_name]
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
