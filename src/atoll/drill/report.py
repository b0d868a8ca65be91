"""The drill's report: a terminal summary, `drill.json`, and `drill.html` — a
self-contained timeline chart (inline SVG: successes and errors per second per region,
the fault window shaded), one panel per scenario."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
_ERROR_COLOUR = "#d62728"
_LAG_COLOUR = "#ff7f0e"


def summary_lines(result: dict[str, Any]) -> list[str]:
    check = result["check"]
    lines = [f"== {result['scenario']}: {'PASS' if result['passed'] else 'FAIL'} "
             f"(fault {result['fault_window_s'][0]:.1f}s-{result['fault_window_s'][1]:.1f}s, "
             f"{result['regions']} regions, {result['rate']:.0f} ops/s target)"]
    for kind, c in result["clients"].items():
        lines.append(f"   {kind:9} client: {c['succeeded']}/{c['attempted']} ok "
                     f"({c['availability_pct']}%), longest gap {c['longest_gap_s']:.3f}s, "
                     f"read errors {c['read_errors']}, write errors {c['write_errors']}")
    lag = result["replication_lag_ms"]
    moved = result["failover_time_s"]
    lines.append(f"   failover time {'none needed' if moved is None else f'{moved:.3f}s'}; "
                 f"replication lag before the fault p50 {lag['p50']} ms, p99 {lag['p99']} ms, "
                 f"worst {lag['max']} ms; all pre-heal changes everywhere "
                 f"{result['caught_up_after_heal_s']}s after the heal; identical "
                 f"{result['converge_after_stop_s']}s after the workload stopped; "
                 f"conflicts recorded {result['conflicts_recorded']}")
    lines.append(f"   acknowledged writes {check['acknowledged_writes']}, lost "
                 f"{check['acknowledged_writes_lost']}, divergent items "
                 f"{check['divergent_items']}, phantom reads {check['phantom_reads']}, "
                 f"counter problems {check['counter_problems']} "
                 f"(of {check['counters_checked']}), superseded via conflict log "
                 f"{check['superseded_by_recorded_conflicts']}")
    for lost in check["lost_examples"][:10]:
        lines.append(f"   LOST in {lost['region']}: {lost['table']}/{lost['key']} = "
                     f"{lost['acknowledged_value']!r} ({lost['kind']}, served by "
                     f"{lost['served_by']}); region holds {lost['held']!r}")
    for item in check["divergent_examples"][:5]:
        lines.append(f"   DIVERGENT {item['table']}/{item['key']}: {item['values']}")
    return lines


def summary_table(results: list[dict[str, Any]]) -> Any:
    """One row per scenario (a rich Table, for the terminal)."""
    from rich import box
    from rich.table import Table

    table = Table(title="atoll drill", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
                  collapse_padding=True)
    # short headers: fits 80 columns (gap: longest without success; moved: failover
    # time; lag99: before the fault; healed: all pre-heal changes everywhere after)
    for column in ("scenario", "pass", "avail", "gap", "moved", "lag99", "healed", "acked",
                   "lost", "div"):
        table.add_column(column, justify="left" if column == "scenario" else "right",
                         no_wrap=True)
    for r in results:
        failover = r["clients"].get("failover", {})
        moved = r["failover_time_s"]
        caught = r.get("caught_up_after_heal_s")
        table.add_row(
            r["scenario"], "[green]yes[/]" if r["passed"] else "[red]NO[/]",
            f"{failover.get('availability_pct', 0):.1f}%",
            f"{failover.get('longest_gap_s', 0):.2f}s",
            "-" if moved is None else f"{moved:.2f}s",
            f"{r['replication_lag_ms']['p99']:.0f}ms"
            if r["replication_lag_ms"]["p99"] is not None else "-", "-" if caught is None else f"{caught:.1f}s",
            str(r["check"]["acknowledged_writes"]), str(r["check"]["acknowledged_writes_lost"]),
            str(r["check"]["divergent_items"]))
    return table


def write(report_dir: Path, results: list[dict[str, Any]]) -> tuple[Path, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    data = report_dir / "drill.json"
    data.write_text(json.dumps({"passed": all(r["passed"] for r in results),
                                "scenarios": results}, indent=2, default=str))
    page = report_dir / "drill.html"
    for result in results:  # each chart also on its own (a README can show an SVG)
        (report_dir / f"drill-{result['scenario']}.svg").write_text(_chart(result))
    panels = "\n".join(_panel(r) for r in results)
    summary = "\n".join(html.escape(line) for r in results for line in summary_lines(r))
    page.write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>atoll drill</title><style>body{{font-family:sans-serif;margin:20px}}
pre{{background:#f6f6f6;padding:8px}} .legend span{{margin-right:14px}}</style></head>
<body><h1>atoll drill</h1><pre>{summary}</pre>{panels}</body></html>
""")
    return data, page


def _panel(result: dict[str, Any]) -> str:
    regions = sorted({k for row in result["timeline"] for k in row["ok"]})
    legend = "".join(f'<span style="color:{_COLOURS[i % len(_COLOURS)]}">&#9632; {html.escape(r)}'
                     "</span>" for i, r in enumerate(regions))
    legend += f'<span style="color:{_ERROR_COLOUR}">&#9632; errors</span>'
    lag = result["replication_lag_ms"]
    return (f"<h2>{html.escape(result['scenario'])} — "
            f"{'PASS' if result['passed'] else 'FAIL'}</h2>"
            f"<p>requests per second by the region that answered; replication lag p50 "
            f"{lag['p50']} ms / p99 {lag['p99']} ms; converged "
            f"{result['converge_after_stop_s']} s after the workload stopped</p>"
            f"<div class='legend'>{legend}</div>{_chart(result)}")


def _chart(result: dict[str, Any]) -> str:
    """Successes per second stacked by the region that answered, errors on top, the
    fault window shaded; a legend inside, so the SVG stands alone."""
    width, height, left, bottom = 900, 260, 50, 30
    timeline = result["timeline"]
    regions = sorted({k for row in timeline for k in row["ok"]})
    peak = max([sum(row["ok"].values()) + sum(row["errors"].values()) for row in timeline]
               + [1])
    seconds = max(len(timeline), 1)
    x = lambda s: left + (width - left - 10) * s / seconds  # noqa: E731
    y = lambda v: height - bottom - (height - bottom - 10) * v / peak  # noqa: E731
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    start, end = result["fault_window_s"]
    parts.append(f'<rect x="{x(start):.1f}" y="10" width="{x(end) - x(start):.1f}" '
                 f'height="{height - bottom - 10}" fill="#fbe3c0"/>')
    parts.append(f'<text x="{x(start) + 4:.1f}" y="24" font-size="12">fault</text>')
    for row in timeline:  # stacked bars: regions' successes, then errors
        base = 0.0
        bar = max(1.0, x(1) - x(0) - 1)
        stacks = [(r, row["ok"].get(r, 0), _COLOURS[i % len(_COLOURS)])
                  for i, r in enumerate(regions)]
        stacks.append(("errors", sum(row["errors"].values()), _ERROR_COLOUR))
        for _name, count, colour in stacks:
            if not count:
                continue
            parts.append(f'<rect x="{x(row["t"]):.1f}" y="{y(base + count):.1f}" '
                         f'width="{bar:.1f}" height="{y(base) - y(base + count):.1f}" '
                         f'fill="{colour}"/>')
            base += count
    parts.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
                 f'y2="{height - bottom}" stroke="black"/>')
    for s in range(0, seconds + 1, max(1, seconds // 10)):
        parts.append(f'<text x="{x(s):.1f}" y="{height - 12}" font-size="11" '
                     f'text-anchor="middle">{s}s</text>')
    parts.append(f'<text x="4" y="{y(peak) + 4:.1f}" font-size="11">{peak}/s</text>')
    series = [(sample["t"], max(sample["lag_ms"].values(), default=0))
              for sample in result.get("lag_series", [])]
    if series:  # replication lag, worst region, on its own scale (right axis)
        lag_peak = max(max(v for _t, v in series), 1)
        y_lag = lambda v: height - bottom - (height - bottom - 10) * v / lag_peak  # noqa: E731
        points = " ".join(f"{x(t):.1f},{y_lag(v):.1f}" for t, v in series)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{_LAG_COLOUR}" '
                     'stroke-width="2"/>')
        peak_t = next(t for t, v in series if v == lag_peak)
        parts.append(f'<text x="{x(peak_t) - 6:.1f}" y="{y_lag(lag_peak) + 12:.1f}" '
                     f'font-size="11" text-anchor="end" fill="{_LAG_COLOUR}">'
                     f'lag peak {lag_peak} ms</text>')
    labels = [(r, _COLOURS[i % len(_COLOURS)]) for i, r in enumerate(regions)]
    labels.append(("errors", _ERROR_COLOUR))
    if series:
        labels.append(("replication lag", _LAG_COLOUR))
    for i, (label, colour) in enumerate(labels):
        parts.append(f'<rect x="{width - 120}" y="{14 + 16 * i}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{width - 105}" y="{23 + 16 * i}" '
                     f'font-size="11">{html.escape(label)}</text>')
    parts.append(f'<text x="{left + 4}" y="{height - bottom - 6}" font-size="11">'
                 f'{html.escape(result["scenario"])}: requests/s by answering region</text>')
    parts.append("</svg>")
    return "".join(parts)
