"""`atoll status` and `atoll conflicts` — look at a running cluster.

Both ask every region named in the cluster config directly (its client endpoint), so a
region that does not answer is shown as down, never hidden. Both sign their calls with
a key (`--profile`/`--credentials`, the AWS environment, or ./data/credentials): any key
reads the figures; the conflict log shows the tables the key may read.

`atoll status` reads each region's figures (`/_atoll/console/region`, the same ones the
console and `/metrics` show) and judges them like the console does
(atoll.node.clusterview): a region is DOWN when it does not answer within
--timeout, LAGGING when it trails a region that is up by more than --max-lag
seconds (or --max-lag-records). It exits 0 when every region is up, 1 otherwise, so
scripts and probes can use it. The table fits an 80-column terminal; what is not known
(a region that is down) reads "unknown".

`atoll conflicts` reads each region's conflict log (`/_atoll/conflicts`, a page of
1,000 at a time) and shows each conflict once — with the regions that logged it — its
key as the attribute values the application wrote, and times as ISO 8601 (UTC).
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import click
from botocore.credentials import Credentials
from rich import box
from rich.console import Console
from rich.table import Table

from atoll.cli.keys import connection_options
from atoll.client.signing import call, refusal, resolve_credentials
from atoll.errors import ValidationError
from atoll.node.clusterview import (
    DEFAULT_MAX_LAG_S,
    DEGRADED,
    DOWN,
    LAGGING,
    cluster_view,
    merged_conflicts,
)
from atoll.topology.config import ClusterConfig, load_cluster_config

TIMEOUT_S = 2.0
LOG_PAGE = 1000  # entries a region answers per page of its conflict or repair log
MAX_LOG_PAGES = 1000  # 1,000,000 records per region and log at most
WIDTH = 80


class Signer:
    """How the CLI signs its calls and trusts https:// endpoints."""

    def __init__(self, credentials: Credentials | None = None, ca_file: str | None = None
                 ) -> None:
        self.credentials = credentials
        self.ca_file = ca_file


def _fetch(url: str, timeout_s: float, signer: Signer | None = None) -> Any:
    """The JSON at `url`, or a short reason string if there is none."""
    signer = signer or Signer()
    try:
        status, answer = call(url, signer.credentials, timeout_s=timeout_s,
                              ca_file=signer.ca_file)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, TimeoutError):
            return f"no answer within {timeout_s:.1f} s"
        return f"unreachable: {reason}"
    except TimeoutError:
        return f"no answer within {timeout_s:.1f} s"
    except (OSError, ValueError) as exc:
        return f"unreachable: {exc}"
    if status != 200:
        return f"answered {status}: {refusal(answer)}"
    return answer


def _config(path: str) -> ClusterConfig:
    try:
        return load_cluster_config(path)
    except ValidationError as exc:
        raise click.UsageError(exc.message) from None


def gather(config: ClusterConfig, timeout_s: float, max_lag_s: float,
           max_lag_records: int | None, signer: Signer | None = None) -> dict[str, Any]:
    """Every region's figures, fetched concurrently, judged into a cluster view."""
    regions = list(config.regions)
    with ThreadPoolExecutor(max_workers=len(regions)) as pool:
        answers = list(pool.map(lambda r: _fetch(r.client_endpoint + "/_atoll/console/region",
                                                 timeout_s, signer), regions))
    view = cluster_view(
        [{"id": r.id, "client_endpoints": r.client_endpoints,
          "peer_endpoints": r.peer_endpoints} for r in regions],
        {r.id: a if isinstance(a, (dict, str)) else "answered an unexpected shape"
         for r, a in zip(regions, answers, strict=True)},
        max_lag_s=max_lag_s, max_lag_records=max_lag_records)
    view["cluster_id"] = config.cluster_id
    return view


def _bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _count(n: int) -> str:
    """At most 7 characters: 99,999 exactly, then 123.4k, 12.3M, 1.2G."""
    if n < 100_000:
        return f"{n:,}"
    for unit, size in (("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        if n < size * 1000 or unit == "T":
            return f"{n / size:.1f}{unit}"
    return str(n)


def _worst_lag(region: Mapping[str, Any], up: set[str]) -> tuple[str, str]:
    """(worst lag in seconds, records behind in all) over the origins that are up."""
    lags = [lag for origin, lag in region["lag"].items() if origin in up]
    if region["figures"] is None:
        return "unknown", "unknown"
    if not lags:
        return "-", "-"
    return (f"{max(lag['seconds'] for lag in lags):.1f}",
            _count(sum(int(lag["records"]) for lag in lags)))


def status_table(view: Mapping[str, Any]) -> Table:
    """One row per region; every cell known or "unknown" (never None)."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    # every column but the region's keeps its width ("unknown", "LAGGING", counts of at
    # most 7 characters); a long region id folds onto a second line instead
    table.add_column("region", overflow="fold")
    for column, justify in (("health", "left"), ("lag s", "right"), ("behind", "right"),
                            ("conflicts", "right"), ("requests", "right"),
                            ("disk free", "right")):
        table.add_column(column, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                         min_width=max(len(column), 7))
    up = {r["id"] for r in view["regions"] if r["health"] != DOWN}
    for region in view["regions"]:
        f = region["figures"]
        lag_s, behind = _worst_lag(region, up)
        health = {DOWN: "[bold red]DOWN[/]", LAGGING: "[yellow]LAGGING[/]",
                  DEGRADED: "[bold yellow]DEGRADED[/]"}.get(
            region["health"], "[green]up[/]")
        if f is None:
            table.add_row(region["id"], health, *["unknown"] * 5)
            continue
        replication = f.get("replication") or {}
        conflicts = replication.get("conflicts_total")
        table.add_row(region["id"], health, lag_s, behind,
                      "unknown" if conflicts is None else _count(conflicts),
                      _count(f["requests_total"]),
                      _bytes((f.get("disk") or {}).get("free_bytes")))
    return table


def problem_lines(view: Mapping[str, Any]) -> list[str]:
    """What is wrong, one line each (empty when every region is up)."""
    lines = [f"{r['id']} is DOWN: {r['reason']} ({', '.join(r['client_endpoints'])})"
             for r in view["regions"] if r["health"] == DOWN]
    for region in view["regions"]:
        rid = region["id"]
        if region["health"] == DOWN:
            continue
        if region["health"] == DEGRADED:
            lines.extend(f"{rid} is DEGRADED: {reason}" for reason in
                         (region["figures"].get("health") or {}).get("reasons") or [])
        for origin in region["trails"]:
            lag = region["lag"][origin]
            lines.append(f"{rid} trails {origin} by {lag['seconds']:.1f} s, "
                         f"{int(lag['records']):,} records ({lag['state'].replace('_', ' ')})")
        lines.extend(f"{rid}: {warning}" for warning in region["warnings"])
    return lines


def verify_lines(view: Mapping[str, Any], now_s: float) -> list[str]:
    """Per region, its nodes' latest background verify with each peer: the verdict and
    how long ago (atoll.node.verifier); the tables behind a verdict other than MATCH."""
    lines = []
    for region in view["regions"]:
        figures = region["figures"]
        results = None if figures is None else figures.get("verify")
        if results is None:
            continue
        parts = []
        for peer, result in sorted(results.items()):
            verdict = str(result["verdict"]).upper()
            if result.get("divergent_items"):
                verdict += f" {int(result['divergent_items']):,}"
            tables = [t for t, r in sorted((result.get("tables") or {}).items())
                      if r.get("verdict") != "match"]
            where = f" in {', '.join(tables)}" if tables and verdict != "MATCH" else ""
            parts.append(f"{peer} {verdict}{where} "
                         f"{max(0.0, now_s - float(result['finished_unix_s'])):.0f} s ago")
        lines.append(f"verify {region['id']}: " + (", ".join(parts) if parts
                                                    else "no comparison finished yet"))
    return lines


def fold_lines(view: Mapping[str, Any]) -> list[str]:
    """Per region folding the counters of regions that left the topology
    (atoll.replication.fold): what it folds or waits for, and how many items so far."""
    lines = []
    for region in view["regions"]:
        figures = region["figures"] or {}
        fold = (figures.get("replication") or {}).get("fold")
        if not fold or (fold["state"] == "idle" and not fold["folded_items"]):
            continue
        waiting = f", waiting for {', '.join(fold['waiting_for'])}" \
            if fold["waiting_for"] else ""
        lines.append(f"fold {region['id']}: {fold['state']} ({', '.join(fold['departed'])} "
                     f"left), {int(fold['folded_items']):,} items folded{waiting}")
    return lines


@click.command()
@click.option("--config", "config_path", default="./data/cluster.toml", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--max-lag", "max_lag_s", default=DEFAULT_MAX_LAG_S, show_default=True,
              type=click.FloatRange(0), help="Seconds a region may trail another before it "
              "counts as lagging.")
@click.option("--max-lag-records", default=None, type=click.IntRange(0),
              help="Records a region may trail another before it counts as lagging.")
@click.option("--timeout", "timeout_s", default=TIMEOUT_S, show_default=True,
              type=click.FloatRange(0.1), help="Seconds to wait for each region.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole view as JSON.")
@connection_options
def status(config_path: str, max_lag_s: float, max_lag_records: int | None, timeout_s: float,
           as_json: bool, profile: str | None, credentials_file: str | None,
           ca_file: str | None) -> None:
    """Regions, health, replication lag, conflicts and verify results of a running cluster.

    Exit status: 0 when every region is up and within the lag limits, 1 when a region is
    down, degraded or lagging."""
    config = _config(config_path)
    signer = Signer(resolve_credentials(profile, credentials_file), ca_file)
    view = gather(config, timeout_s, max_lag_s, max_lag_records, signer)
    if as_json:
        click.echo(json.dumps(view, indent=2))
    else:
        console = Console(width=min(WIDTH, Console().width))
        down = sum(1 for r in view["regions"] if r["health"] == DOWN)
        lagging = sum(1 for r in view["regions"] if r["health"] == LAGGING)
        degraded = sum(1 for r in view["regions"] if r["health"] == DEGRADED)
        console.print(f"cluster {config.cluster_id}: {len(view['regions'])} regions, "
                      f"topology generation {view['generation'] or 'unknown'}, "
                      f"max lag {max_lag_s:g} s", highlight=False)
        console.print(status_table(view))
        for line in problem_lines(view) + verify_lines(view, time.time()) + fold_lines(view):
            console.print(line, highlight=False, markup=False)
        verdict = ("all regions up" if view["healthy"] else
                   ", ".join(p for p in (f"{down} down" if down else "",
                                         f"{degraded} degraded" if degraded else "",
                                         f"{lagging} lagging" if lagging else "") if p))
        console.print(verdict, highlight=False)
    sys.exit(0 if view["healthy"] else 1)


# --- conflicts -------------------------------------------------------------------------

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])\Z")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_ms(text: str, now_s: float) -> int:
    """An ISO 8601 date or time (UTC unless it says otherwise), or a span ago such as
    `30s`, `10m`, `2h`, `1d`; as Unix milliseconds."""
    match = _AGO.match(text.strip().lower())
    if match:
        return int((now_s - float(match.group(1)) * _UNIT_S[match.group(2)]) * 1000)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected an ISO date/time or a span like 10m, got {text!r}"
                                 ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds"
                                                            ).replace("+00:00", "Z")


def hlc_iso(hlc: int) -> str:
    return iso_ms(hlc >> 16)  # the HLC's physical milliseconds (atoll.clock.hlc)


def value_text(value: Mapping[str, Any]) -> str:
    kind, v = next(iter(value.items()))
    return json.dumps(v, ensure_ascii=False) if kind == "S" else str(v) if kind == "N" \
        else f"b64:{v}"


def key_text(conflict: Mapping[str, Any]) -> str:
    """`Artist="Arvo Pärt", Song="Für Alina"`, or the raw key when its table is gone."""
    key = conflict.get("key")
    if not key:
        return f"pk={conflict.get('pk')} sk={conflict.get('sk')} (table gone: raw key)"
    return ", ".join(f"{name}={value_text(value)}" for name, value in key.items())


def key_matches(conflict: Mapping[str, Any], wanted: tuple[str, ...]) -> bool:
    """Every `wanted` is either NAME=VALUE (that key attribute has that value) or a VALUE
    that some key attribute has (strings unquoted)."""
    key = conflict.get("key") or {}
    values = {name: str(next(iter(v.values()))) for name, v in key.items()}
    for want in wanted:
        name, equals, value = want.partition("=")
        if equals and name in values:
            if values[name] != value:
                return False
        elif want not in values.values():
            return False
    return True


def read_log(endpoint: str, log: str, timeout_s: float, signer: Signer | None = None
             ) -> list[dict[str, Any]] | str:
    """A region's whole `log` (conflicts, repairs: `/_atoll/<log>/after/<id>`, pages of
    LOG_PAGE entries, MAX_LOG_PAGES at most), or why it could not be read."""
    entries: list[dict[str, Any]] = []
    after = 0
    for _ in range(MAX_LOG_PAGES):
        page = _fetch(f"{endpoint}/_atoll/{log}/after/{after}", timeout_s, signer)
        if isinstance(page, str):
            return page
        batch = page.get(log) or []
        entries.extend(batch)
        if len(batch) < LOG_PAGE:
            break
        after = batch[-1]["id"]
    return entries


def region_logs(config: ClusterConfig, region: str | None, log: str, timeout_s: float,
                signer: Signer | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per region (every one, or only `region`), its whole `log` (conflicts, repairs); a
    region whose log could not be read is named on stderr, with why, and left out."""
    logs: dict[str, list[dict[str, Any]]] = {}
    for entry in config.regions:
        if region is not None and entry.id != region:
            continue
        found = read_log(entry.client_endpoint, log, timeout_s, signer)
        if isinstance(found, str):
            click.echo(f"{entry.id}: {log.removesuffix('s')} log not read: {found}", err=True)
            continue
        logs[entry.id] = found
    return logs


@click.command()
@click.option("--config", "config_path", default="./data/cluster.toml", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--region", default=None, help="Only this region's conflict log.")
@click.option("--table", "table_name", default=None, help="Only conflicts in this table.")
@click.option("--key", "keys", multiple=True, metavar="[NAME=]VALUE",
              help="Only conflicts whose key has this value (repeat to narrow down).")
@click.option("--since", default=None, metavar="WHEN",
              help="Detected at or after: ISO date/time (UTC) or a span ago (10m, 2h, 1d).")
@click.option("--until", default=None, metavar="WHEN", help="Detected before: same forms.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line (per region that logged it).")
@click.option("--timeout", "timeout_s", default=TIMEOUT_S, show_default=True,
              type=click.FloatRange(0.1))
@connection_options
def conflicts(config_path: str, region: str | None, table_name: str | None,
              keys: tuple[str, ...], since: str | None, until: str | None, as_json: bool,
              timeout_s: float, profile: str | None, credentials_file: str | None,
              ca_file: str | None) -> None:
    """The conflict log: concurrent writes that lost last-writer-wins, oldest first (of
    the tables the signing key may read)."""
    config = _config(config_path)
    signer = Signer(resolve_credentials(profile, credentials_file), ca_file)
    now_s = time.time()
    since_ms = parse_time_ms(since, now_s) if since else None
    until_ms = parse_time_ms(until, now_s) if until else None

    def wanted(c: Mapping[str, Any]) -> bool:
        return ((table_name is None or c["table"] == table_name)
                and (since_ms is None or c["detected_ms"] >= since_ms)
                and (until_ms is None or c["detected_ms"] < until_ms)
                and key_matches(c, keys))

    logs = {rid: [c for c in found if wanted(c)] for rid, found
            in region_logs(config, region, "conflicts", timeout_s, signer).items()}
    if as_json:
        for rid, found in logs.items():
            for c in found:
                click.echo(json.dumps({"region": rid, "detected": iso_ms(c["detected_ms"]), **c},
                                      sort_keys=True, ensure_ascii=False))
        return
    merged = sorted(merged_conflicts({rid: {"conflicts": c} for rid, c in logs.items()}),
                    key=lambda c: c["detected_ms"])
    for c in merged:
        click.echo(f"{iso_ms(c['detected_ms'])}  {c['table']}  {key_text(c)}")
        click.echo(f"    kept {c['winner']['origin']}'s write of {hlc_iso(c['winner']['hlc'])}, "
                   f"overwrote {c['loser']['origin']}'s of {hlc_iso(c['loser']['hlc'])}")
        click.echo(f"    logged by {', '.join(c['regions'])}")
    click.echo(f"{len(merged)} conflict(s)", err=True)
