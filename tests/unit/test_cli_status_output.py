"""`atoll status` and `atoll conflicts` output: fits 80 columns, says "unknown" (never
None), exits non-zero when a region is down or lagging, shows keys as written and ISO
times. Regions are stood in for by a small HTTP server answering canned figures."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from atoll.cli.status import (
    conflicts,
    iso_ms,
    key_matches,
    key_text,
    parse_time_ms,
    problem_lines,
    status,
    status_table,
    verify_lines,
)
from atoll.node.clusterview import cluster_view
from atoll.topology.config import ClusterConfig, RegionConfig
from tests.support import free_port


def region_figures(region: str, lag: dict[str, Any]) -> dict[str, Any]:
    return {"region": region, "requests_total": 1234567, "writes_total": 10,
            "topology": {"generation": 4}, "conflicts": [],
            "disk": {"free_bytes": 81_000_000_000, "total_bytes": 250_000_000_000,
                     "database_bytes": 1000},
            "replication": {"cursor_vector": {}, "lag": lag, "conflicts_total": 3,
                            "peers": {p: {"connected": True} for p in lag}}}


def live(seconds: float = 0.0, state: str = "live") -> dict[str, Any]:
    return {"seconds": seconds, "records": 0, "state": state, "last_heard_s": 0.2}


REGION_IDS = ("us-east-1-long-name", "eu-west", "ap-south")
REGIONS = [{"id": r, "client_endpoints": [f"http://10.0.0.{i}:8000"],
            "peer_endpoints": [f"http://10.0.0.{i}:9000"]} for i, r in enumerate(REGION_IDS)]


def test_the_status_table_fits_80_columns_and_says_unknown() -> None:
    view = cluster_view(REGIONS, {
        "us-east-1-long-name": region_figures("us-east-1-long-name",
                                              {"eu-west": live(), "ap-south": live(30, "unreachable")}),
        "eu-west": region_figures("eu-west", {"us-east-1-long-name": live(12.5, "catching_up"),
                                              "ap-south": live(30, "unreachable")}),
        "ap-south": "connection refused"})
    console = Console(width=80, record=True, color_system=None)
    console.print(status_table(view))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "None" not in text and "…" not in text  # nothing cut short
    ap_south = next(line for line in text.splitlines() if line.lstrip().startswith("ap-south"))
    assert "DOWN" in ap_south and ap_south.count("unknown") == 5
    assert "LAGGING" in text and "1.2M" in text and "75.4 GB" in text
    region_cells = [line.split()[0] for line in text.splitlines()[3:] if line.strip()]
    assert "".join(region_cells[:2]) == "us-east-1-long-name"  # folded onto two lines, whole


def test_a_degraded_region_is_shown_degraded_with_each_reason() -> None:
    degraded = region_figures("eu-west", {"us-east-1-long-name": live(), "ap-south": live()})
    degraded["health"] = {"status": "degraded", "reasons": [
        "1 stored row failed the checksum (not served)", "Writes are refused: clock"]}
    view = cluster_view(REGIONS, {
        "us-east-1-long-name": region_figures("us-east-1-long-name",
                                              {"eu-west": live(), "ap-south": live()}),
        "eu-west": degraded,
        "ap-south": region_figures("ap-south", {"eu-west": live(),
                                                "us-east-1-long-name": live()})})
    assert not view["healthy"]
    console = Console(width=80, record=True, color_system=None)
    console.print(status_table(view))
    eu_west = next(line for line in console.export_text().splitlines()
                   if line.lstrip().startswith("eu-west"))
    assert "DEGRADED" in eu_west
    assert problem_lines(view) == [
        "eu-west is DEGRADED: 1 stored row failed the checksum (not served)",
        "eu-west is DEGRADED: Writes are refused: clock"]


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A cluster config of three regions: two answered by a stub server (their figures
    in the dict, changeable), the third on a port nobody listens on."""
    answers: dict[str, Any] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            region = self.headers["Host"].split(":")[0]
            body = answers.get((region, self.path))
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dead = free_port()
    # the stub tells regions apart by the host name they are asked under
    config = ClusterConfig("test", (
        RegionConfig("a", f"http://localhost:{port}", "http://127.0.0.1:1"),
        RegionConfig("b", f"http://127.0.0.1:{port}", "http://127.0.0.1:2"),
        RegionConfig("c", f"http://127.0.0.1:{dead}", "http://127.0.0.1:3")))
    path = tmp_path / "cluster.toml"
    path.write_text(config.to_toml())
    answers[("localhost", "/_atoll/console/region")] = region_figures("a", {"b": live(),
                                                                            "c": live()})
    answers[("127.0.0.1", "/_atoll/console/region")] = region_figures("b", {"a": live(),
                                                                            "c": live()})
    try:
        yield path, answers
    finally:
        server.shutdown()


def test_status_exits_1_when_a_region_is_down_and_0_when_all_are_up(
        regions: tuple[Path, dict[str, Any]]) -> None:
    path, answers = regions
    result = CliRunner().invoke(status, ["--config", str(path), "--timeout", "1"])
    assert result.exit_code == 1, result.output
    assert "c is DOWN: connection refused" in result.output and "1 down" in result.output
    config = ClusterConfig("test", tuple(r for r in _load(path).regions if r.id != "c"))
    path.write_text(config.to_toml())
    answers[("localhost", "/_atoll/console/region")] = region_figures("a", {"b": live()})
    answers[("127.0.0.1", "/_atoll/console/region")] = region_figures("b", {"a": live()})
    result = CliRunner().invoke(status, ["--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "all regions up" in result.output


def test_status_exits_1_when_a_region_lags_beyond_the_limit(
        regions: tuple[Path, dict[str, Any]]) -> None:
    path, answers = regions
    config = ClusterConfig("test", tuple(r for r in _load(path).regions if r.id != "c"))
    path.write_text(config.to_toml())
    answers[("localhost", "/_atoll/console/region")] = region_figures(
        "a", {"b": live(25.0, "catching_up")})
    answers[("127.0.0.1", "/_atoll/console/region")] = region_figures("b", {"a": live()})
    result = CliRunner().invoke(status, ["--config", str(path), "--max-lag", "20"])
    assert result.exit_code == 1 and "a trails b by 25.0 s" in result.output
    assert CliRunner().invoke(status, ["--config", str(path), "--max-lag", "30"]).exit_code == 0
    as_json = CliRunner().invoke(status, ["--config", str(path), "--json", "--max-lag", "20"])
    assert json.loads(as_json.output)["regions"][0]["health"] == "lagging"


def _load(path: Path) -> ClusterConfig:
    from atoll.topology.config import load_cluster_config
    return load_cluster_config(path)


def test_conflicts_show_keys_as_written_once_with_iso_times_and_filters(
        regions: tuple[Path, dict[str, Any]]) -> None:
    path, answers = regions
    base = {"table": "Music", "pk": "00", "sk": "01", "winner": {"hlc": 1_796_621_969_254 << 16,
                                                               "origin": "a", "item": None},
            "loser": {"hlc": (1_796_621_969_250 << 16) + 3, "origin": "b", "item": None}}
    first = {**base, "id": 1, "detected_ms": 1_796_621_969_300,
             "key": {"Artist": {"S": "Arvo Pärt"}, "Year": {"N": "1978"}}}
    second = {**base, "id": 2, "detected_ms": 1_796_625_000_000, "sk": "02",
              "key": {"Artist": {"S": "Hildegard"}, "Year": {"N": "1150"}}}
    for host in ("localhost", "127.0.0.1"):
        answers[(host, "/_atoll/conflicts/after/0")] = {"conflicts": [first, second]}
    result = CliRunner().invoke(conflicts, ["--config", str(path), "--timeout", "1"])
    assert result.exit_code == 0, result.output
    assert 'Artist="Arvo Pärt", Year=1978' in result.output
    assert "2026-12-07T05:39:29.300Z" in result.output
    assert "kept a's write of 2026-12-07T05:39:29.254Z, overwrote b's of " \
           "2026-12-07T05:39:29.250Z" in result.output
    assert result.output.count("Arvo Pärt") == 1 and "logged by a, b" in result.output
    assert "c: conflict log not read: connection refused" in result.output
    narrowed = CliRunner().invoke(conflicts, ["--config", str(path), "--key", "Year=1150"])
    assert "Hildegard" in narrowed.output and "Arvo" not in narrowed.output
    early = CliRunner().invoke(conflicts, ["--config", str(path),
                                           "--until", "2026-12-07T06:00:00Z", "--json"])
    lines = [json.loads(line) for line in early.output.splitlines() if line.startswith("{")]
    assert {(c["region"], c["id"]) for c in lines} == {("a", 1), ("b", 1)}
    assert lines[0]["detected"] == "2026-12-07T05:39:29.300Z"


def test_key_text_matching_and_times() -> None:
    conflict = {"key": {"Artist": {"S": "Arvo Pärt"}, "Year": {"N": "-1.5"},
                        "Blob": {"B": "AAE="}}}
    assert key_text(conflict) == 'Artist="Arvo Pärt", Year=-1.5, Blob=b64:AAE='
    assert key_text({"pk": "61", "sk": ""}) == "pk=61 sk= (table gone: raw key)"
    assert key_matches(conflict, ("Arvo Pärt",)) and key_matches(conflict, ("Year=-1.5",))
    assert not key_matches(conflict, ("Year=2",)) and not key_matches(conflict, ("Arvo",))
    assert key_matches(conflict, ())
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert parse_time_ms("1970-01-01T00:00:01Z", 0) == 1000
    assert parse_time_ms("1970-01-02", 0) == 86_400_000
    assert parse_time_ms("10m", 3600.0) == 3_000_000
    with pytest.raises(click.BadParameter):
        parse_time_ms("yesterday", 0)


def test_status_says_each_regions_latest_verify_with_each_peer() -> None:
    figures = region_figures("eu-west", {"us-east": live()})
    figures["verify"] = {
        "us-east": {"finished_unix_s": 1000.0, "verdict": "match", "divergent_items": 0,
                    "repaired_items": 0, "tables": {"orders": {"verdict": "match"}}},
        "ap-south": {"finished_unix_s": 990.0, "verdict": "diverged", "divergent_items": 2,
                     "repaired_items": 0, "tables": {"orders": {"verdict": "match"},
                                                     "users": {"verdict": "diverged"}}}}
    quiet = region_figures("us-east", {"eu-west": live()})
    quiet["verify"] = {}
    view = cluster_view(REGIONS[:2] + [{"id": "us-east", "client_endpoints": ["x"],
                                         "peer_endpoints": ["y"]}],
                        {"us-east-1-long-name": region_figures("us-east-1-long-name", {}),
                         "eu-west": figures, "us-east": quiet})
    assert verify_lines(view, 1012.4) == [
        "verify eu-west: ap-south DIVERGED 2 in users 22 s ago, us-east MATCH 12 s ago",
        "verify us-east: no comparison finished yet"]
