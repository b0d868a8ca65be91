"""The drill's report: a terminal summary, `drill.json`, and `drill.html` — one
self-contained page (no script, nothing fetched) that fits the window: per scenario, what
happened in words, a table of its figures with what each one means, and a timeline chart
(inline SVG: successes and errors per second per region, the fault window shaded, the
replication lag on its own scale), scaled to the page's width."""

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
    security = result.get("security")
    if security:
        modes = sorted({s["auth"] for s in security.values()})
        tls = all(s["mutual_tls"] for s in security.values())
        lines.append(f"   security: auth {'/'.join(modes)} on every client port; peers "
                     f"{'over mutual TLS' if tls else 'NOT all over mutual TLS'}")
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
    verified = result.get("verify")
    if verified is not None:
        pairs = sorted({p["summary"] for p in verified["pairs"]})
        lines.append(f"   verify of every region pair: {', '.join(pairs) or 'none'} "
                     f"(exit {verified['exit_code']}, diverged keys "
                     f"{verified['diverged_keys']}){': ' + verified['error'] if verified['error'] else ''}")
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
    passed = all(r["passed"] for r in results)
    verdict = (f"All {len(results)} scenario(s) passed: no acknowledged write was lost and "
               "every region ended with the same data." if passed else
               "At least one scenario FAILED: its section names the writes or items at fault.")
    page.write_text(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>atoll drill</title><style>{_STYLE}</style></head>
<body><main><h1>atoll drill</h1>
<p class="{'pass' if passed else 'fail'}">{html.escape(verdict)}</p>
<p>Each scenario starts a fresh cluster, runs a recorded workload through failover
clients, injects the fault at a quarter of the run and heals it at 60%, then checks every
acknowledged write against every region. {_READING}</p>
{panels}
<details><summary>The same figures as the terminal printed them</summary>
<pre>{summary}</pre></details></main></body></html>
""")
    return data, page


_STYLE = """body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2939;background:#fff}
main{max-width:980px;margin:0 auto;padding:16px 20px}
h2{margin-top:34px;border-bottom:1px solid #d0d5dd;padding-bottom:4px}
svg{width:100%;height:auto;display:block}
table{border-collapse:collapse;width:100%;margin:10px 0}
th,td{border:1px solid #d0d5dd;padding:4px 8px;text-align:left;vertical-align:top}
td.v{white-space:nowrap;font-variant-numeric:tabular-nums;font-weight:600}
.pass{color:#1a7f37;font-weight:600}.fail{color:#c62828;font-weight:600}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f7f9;padding:8px;font-size:13px}
.legend span{margin-right:14px}"""

_READING = ("The chart of each scenario shows requests answered per second, stacked by the "
            "region that answered them, errors in red on top, the fault window shaded and the "
            "replication lag (orange, its own scale).")


def _number(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def figures_explained(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, what it means) rows for one scenario."""
    check = result["check"]
    failover = result["clients"].get("failover", {})
    lag = result["replication_lag_ms"]
    moved = result.get("failover_time_s")
    rows = [
        ("availability", f"{failover.get('availability_pct', 0)}% "
         f"({_number(failover.get('succeeded', 0))} of {_number(failover.get('attempted', 0))})",
         "Requests through the failover clients that got an answer. Reads and safe writes "
         "should all succeed; at most the writes in flight when a region dies may fail."),
        ("longest gap", _number(failover.get("longest_gap_s"), " s"),
         "The longest time any client went without a successful answer: what an "
         "application would notice."),
        ("failover time", "not needed" if moved is None else _number(moved, " s", 3),
         "From the fault until the clients' requests were answered by another region "
         "(not needed when the preferred region kept answering)."),
        ("replication lag before the fault", f"p50 {_number(lag.get('p50'), ' ms', 0)}, "
         f"p99 {_number(lag.get('p99'), ' ms', 0)}",
         "From a write's commit in one region to its apply in another, in normal running."),
        ("worst replication lag", _number(lag.get("max"), " ms", 0),
         "The same over the whole run: changes held back by the fault arrive this late."),
        ("caught up after the heal", _number(result.get("caught_up_after_heal_s"), " s", 1),
         "Until every change made before the heal was in every region."),
        ("identical after the workload", _number(result.get("converge_after_stop_s"), " s", 3),
         "Until all regions held the same data once the clients stopped."),
        ("acknowledged writes", _number(check["acknowledged_writes"]),
         "Writes the clients were told had succeeded; each is looked for in every region."),
        ("lost", _number(check["acknowledged_writes_lost"]),
         "Acknowledged writes missing from some region and not overwritten by a later or "
         "recorded concurrent write. Must be 0."),
        ("divergent items", _number(check["divergent_items"]),
         "Items whose value differs between regions at the end. Must be 0."),
        ("phantom reads", _number(check["phantom_reads"]),
         "Reads that returned a value nobody wrote. Must be 0."),
        ("counter problems", f"{_number(check['counter_problems'])} of "
         f"{_number(check['counters_checked'])}",
         "Counters whose final value differs from their acknowledged increments."),
        ("conflicts recorded", _number(result.get("conflicts_recorded", 0)),
         "Concurrent writes to one item that lost last-writer-wins; each is in the "
         "conflict log (atoll conflicts)."),
    ]
    naive = result["clients"].get("naive")
    if naive:
        rows.insert(2, ("naive client", f"{naive['availability_pct']}% ok, longest gap "
                        f"{_number(naive['longest_gap_s'], ' s')}",
                        "A plain boto3 client that uses the region's DNS name, for comparison."))
    return rows


def story(result: dict[str, Any]) -> str:
    """What happened in one scenario, in a few sentences."""
    start, end = result["fault_window_s"]
    failover = result["clients"].get("failover", {})
    check = result["check"]
    moved = result.get("failover_time_s")
    victim = result.get("victim")
    parts = [f"The fault ({result['scenario']}{f' on {victim}' if victim else ''}) lasted "
             f"from {start:.1f} s to {end:.1f} s of a {result.get('duration_s', 0):.0f} s run "
             f"across {result['regions']} regions."]
    parts.append(f"The failover clients made {failover.get('attempted', 0):,} requests and "
                 f"{failover.get('succeeded', 0):,} succeeded; the longest wait for a "
                 f"successful answer was {failover.get('longest_gap_s', 0):.2f} s.")
    parts.append("They never needed another region." if moved is None else
                 f"They were answered by another region {moved:.2f} s after the fault.")
    lost = check["acknowledged_writes_lost"]
    parts.append(f"Of {check['acknowledged_writes']:,} acknowledged writes, "
                 + ("none was lost" if not lost else f"{lost:,} were LOST")
                 + (", and every region ended with the same data." if not
                    check["divergent_items"] else
                    f"; {check['divergent_items']:,} items DIFFER between regions."))
    return " ".join(parts)


def _panel(result: dict[str, Any]) -> str:
    regions = sorted({k for row in result["timeline"] for k in row["ok"]})
    legend = "".join(f'<span style="color:{_COLOURS[i % len(_COLOURS)]}">&#9632; {html.escape(r)}'
                     "</span>" for i, r in enumerate(regions))
    legend += f'<span style="color:{_ERROR_COLOUR}">&#9632; errors</span>'
    rows = "".join(f"<tr><th>{html.escape(name)}</th><td class='v'>{html.escape(value)}</td>"
                   f"<td>{html.escape(meaning)}</td></tr>"
                   for name, value, meaning in figures_explained(result))
    verdict = "PASS" if result["passed"] else "FAIL"
    return (f"<h2>{html.escape(result['scenario'])} — <span class="
            f"'{verdict.lower()}'>{verdict}</span></h2><p>{html.escape(story(result))}</p>"
            f"<div class='legend'>{legend}</div>{_chart(result)}"
            f"<table><tr><th>figure</th><th>value</th><th>what it means</th></tr>{rows}"
            f"</table>")


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
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'xmlns="http://www.w3.org/2000/svg">',
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
        worst = max(v for _t, v in series)
        lag_peak = max(worst, 1)  # (the scale: a run with no lag at all draws a flat line)
        y_lag = lambda v: height - bottom - (height - bottom - 10) * v / lag_peak  # noqa: E731
        points = " ".join(f"{x(t):.1f},{y_lag(v):.1f}" for t, v in series)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{_LAG_COLOUR}" '
                     'stroke-width="2"/>')
        peak_t = next(t for t, v in series if v == worst)
        parts.append(f'<text x="{x(peak_t) - 6:.1f}" y="{y_lag(worst) + 12:.1f}" '
                     f'font-size="11" text-anchor="end" fill="{_LAG_COLOUR}">'
                     f'lag peak {worst} ms</text>')
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
