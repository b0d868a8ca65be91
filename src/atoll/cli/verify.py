"""`atoll verify` — prove the regions of a running cluster hold the same data.

The command asks one node (the first region of the config that answers, or --region)
to run a verify over every region (atoll.node.verifyruns: per table, a session over all
regions, and a second, focused one that confirms what the first found below the stable
cut), follows its progress, and prints per table and pair of regions MATCH / TRANSIENT n
/ DIVERGED n with the keys compared, the bytes exchanged and the time taken, then the
DIVERGED keys as the application wrote them, rows failing their checksum, repairs made
(`--repair`) and keys that could not be repaired.

By default the run is deep: every region re-hashes its rows first, which finds rows
changed or deleted behind Atoll's back even before the nodes' background scrub reaches
them. `--quick` compares the hash trees alone (seconds for millions of items).

Exit status: 0 when everything matches below the cut (differences still in flight are
TRANSIENT, not failures), 1 when anything DIVERGED, 2 when the verify could not complete
(a region down, a tree still being built, no node answering).

Starting and following a run are signed (--profile/--credentials) and need an admin key.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from atoll.cli.keys import connection_options
from atoll.cli.status import WIDTH, Signer, _bytes, _config, _fetch, value_text
from atoll.client.signing import call, refusal, resolve_credentials
from atoll.topology.config import ClusterConfig

POLL_S = 0.25
START_TIMEOUT_S = 10.0


def _post(url: str, body: dict[str, Any], timeout_s: float, signer: Signer) -> tuple[int, Any]:
    """POST a verify request, signed (runs need an admin key: node/admin.py)."""
    status, answer = call(url, signer.credentials, json.dumps(body).encode(),
                          timeout_s=timeout_s, ca_file=signer.ca_file)
    if isinstance(answer, dict) and "__type" in answer:  # a refusal: say what it was
        answer = {"message": refusal(answer)}
    return status, answer


def start_run(config: ClusterConfig, region: str | None, body: dict[str, Any],
              signer: Signer | None = None) -> tuple[str, int]:
    """(endpoint, run id) on the first node that starts the run; ClickException if none."""
    regions = [r for r in config.regions if region is None or r.id == region]
    if not regions:
        raise click.UsageError(f"no region {region} in the cluster config")
    reasons = []
    for entry in regions:
        endpoint = entry.client_endpoint
        try:
            status, answer = _post(f"{endpoint}/_atoll/verify/runs", body, START_TIMEOUT_S,
                                   signer or Signer())
        except (OSError, ValueError) as exc:
            reasons.append(f"{entry.id}: {exc}")
            continue
        if status == 202:
            return endpoint, int(answer["id"])
        reasons.append(f"{entry.id}: {answer.get('message', status)}")
        if status in (400, 409):
            break  # the request or the cluster is the problem, not this node
    raise click.ClickException("verify could not start: " + "; ".join(reasons))


def follow(endpoint: str, run_id: int, timeout_s: float, console: Console,
           signer: Signer | None = None) -> dict[str, Any]:
    """Poll the run until it ends, with a progress bar on a terminal."""
    deadline = time.monotonic() + timeout_s
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("starting", total=1.0)
        while True:
            view = _fetch(f"{endpoint}/_atoll/verify/runs/{run_id}", 10.0, signer)
            if isinstance(view, str):
                raise click.ClickException(f"lost the verify run at {endpoint}: {view}")
            progress = view["progress"]
            phase = progress["phase"]
            detail = (f" {progress['scrubbed_buckets']:,}/{progress['scrub_buckets_total']:,} "
                      "buckets" if phase == "scrub" else "")
            bar.update(task, completed=progress["fraction"],
                       description=f"{progress['table'] or 'verify'}: {phase}{detail} "
                                   f"({progress['tables_done']}/{progress['tables_total']} tables)")
            if view["state"] != "running":
                return view
            if time.monotonic() > deadline:
                raise click.ClickException(f"verify run {run_id} at {endpoint} did not finish "
                                           f"within {timeout_s:.0f} s (it goes on there)")
            time.sleep(POLL_S)


def key_text(entry: Mapping[str, Any]) -> str:
    key = entry.get("key")
    if not key:
        return f"pk={entry['pk']} sk={entry['sk']}"
    return ", ".join(f"{name}={value_text(value)}" for name, value in key.items())


def result_table(view: Mapping[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    table.add_column("table", overflow="fold")
    table.add_column("regions", overflow="fold")
    table.add_column("result", no_wrap=True)
    for column in ("keys", "bytes", "time s"):
        table.add_column(column, justify="right", no_wrap=True)
    style = {"MATCH": "green", "TRANSIENT": "yellow", "DIVERGED": "bold red",
             "INCOMPLETE": "bold red"}
    for report in view["tables"]:
        for pair in report["pairs"]:
            summary = pair["summary"] if pair["status"] != "INCOMPLETE" else "INCOMPLETE"
            table.add_row(report["table"], f"{pair['a']} / {pair['b']}",
                          f"[{style[pair['status']]}]{summary}[/]", f"{pair['keys_compared']:,}",
                          _bytes(pair["bytes_exchanged"]), f"{pair['elapsed_ms'] / 1000:.1f}")
    return table


def detail_lines(view: Mapping[str, Any]) -> list[str]:
    lines = []
    for report in view["tables"]:
        name = report["table"]
        if report["error"]:
            lines.append(f"{name}: could not complete: {report['error']}")
        for diff in report["differences"]:
            if diff["kind"] == "diverged":
                lines.append(f"DIVERGED {name} {key_text(diff)} ({diff['a']} vs {diff['b']}): "
                             f"{diff['a_state']} | {diff['b_state']} - {diff['reason']}")
        for row in report["corrupt"]:
            lines.append(f"CORRUPT {name} {key_text(row)} in {row['region']}: fails its "
                         "checksum (not served)")
        for repair in report["repairs"]:
            lines.append(f"REPAIRED {name} {key_text(repair)} in {repair['region']}: "
                         f"{repair['reason']}, {repair['winner']} from {repair['source']} "
                         f"({repair['outcome']})")
        for item in report["unrepairable"]:
            lines.append(f"NOT REPAIRED {name} {key_text(item)}: {item['reason']}")
    return lines


@click.command()
@click.option("--config", "config_path", default="./data/cluster.toml", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--table", "tables", multiple=True, help="Only this table (repeat for more).")
@click.option("--repair", is_flag=True, help="Repair what is confirmed DIVERGED (the merge "
              "rule's winner, sent whole; recorded in the repair log).")
@click.option("--deep/--quick", default=True, show_default=True,
              help="Re-hash every region's rows first (finds rows changed behind Atoll's "
              "back), or compare the hash trees alone.")
@click.option("--region", default=None, help="Run on this region's node [default: the first "
              "that answers].")
@click.option("--json", "as_json", is_flag=True, help="Print the whole run as JSON.")
@click.option("--timeout", "timeout_s", default=3600.0, show_default=True,
              type=click.FloatRange(1), help="Seconds to wait for the run.")
@connection_options
def verify(config_path: str, tables: tuple[str, ...], repair: bool, deep: bool,
           region: str | None, as_json: bool, timeout_s: float, profile: str | None,
           credentials_file: str | None, ca_file: str | None) -> None:
    """Check that every region holds the same data; repair what differs with --repair.

    Exit status: 0 everything matches below the stable cut, 1 something DIVERGED, 2 the
    verify could not complete."""
    config = _config(config_path)
    body = {"tables": list(tables) or None, "deep": deep, "repair": repair}
    signer = Signer(resolve_credentials(profile, credentials_file), ca_file)
    try:
        endpoint, run_id = start_run(config, region, body, signer)
        view = follow(endpoint, run_id, timeout_s, Console(stderr=True), signer)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(2)  # could not complete
    if as_json:
        click.echo(json.dumps(view, indent=2))
    else:
        console = Console(width=min(WIDTH * 2, Console().width))
        console.print(f"verify of cluster {config.cluster_id} ({'deep' if deep else 'quick'}"
                      f"{', repair' if repair else ''}), run {run_id} on {view['region']}",
                      highlight=False)
        console.print(result_table(view))
        for line in detail_lines(view):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        if view["error"]:
            console.print(f"the run failed: {view['error']}", highlight=False, markup=False)
    sys.exit(int(view["exit_code"]))
