"""Summaries over rounds, ratios to Atoll, the issue's targets, the table and the JSON file.

Everything here except `print_report` and `write_json` is pure: it takes the wrk results
and returns numbers, so what the table says is what the JSON says.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.wrk import WrkResult

REFERENCE = ("atoll", "atoll-mem")   # the first one present is "Atoll" in the ratios
FLOOR = "floor-sqlite"
# Atoll's ops/s as a fraction of the floor's on the same workload (issue 33): at least
# the floor on key lookups, near it where each answer reads a range or many keys.
FLOOR_TARGETS = (("get", "GetItem", 1.0), ("query", "Query", 0.8), ("scan", "Scan", 0.7),
                 ("batchget", "BatchGetItem", 0.7))
P99_TARGET_MS = 20.0


@dataclass(frozen=True)
class Summary:
    """One system on one workload: medians over the rounds, errors summed."""

    ops_per_s: float
    items_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    rounds: int
    error_samples: tuple[str, ...]
    # the server's CPU time per 2xx response (µs), median over the rounds that measured it:
    # steadier than ops/s on a shared machine, where a run may wait for a core
    cpu_us_per_op: float | None = None

    @staticmethod
    def of(results: list[WrkResult], items_per_request: int = 1) -> Summary:
        ops = statistics.median(r.ok_per_s for r in results)
        cpu = [c for c in (r.cpu_us_per_op for r in results) if c is not None]
        samples: list[str] = []
        for r in results:
            samples.extend(s for s in r.error_samples if s not in samples)
        return Summary(
            ops_per_s=ops,
            items_per_s=ops * items_per_request,
            p50_ms=statistics.median(r.latency_p50_ms for r in results),
            p99_ms=statistics.median(r.latency_p99_ms for r in results),
            errors=sum(r.errors for r in results),
            requests=sum(r.requests for r in results),
            rounds=len(results),
            error_samples=tuple(samples[:3]),
            cpu_us_per_op=statistics.median(cpu) if cpu else None,
        )


Results = dict[str, dict[str, Summary]]   # op -> system name -> summary


def reference_system(results: Results) -> str | None:
    present = {name for per_op in results.values() for name in per_op}
    return next((name for name in REFERENCE if name in present), None)


def ratio(results: Results, op: str, system: str) -> float | None:
    """Atoll's ops/s divided by `system`'s (how many times faster Atoll is)."""
    ref = reference_system(results)
    per_op = results.get(op, {})
    if ref is None or ref not in per_op or system not in per_op:
        return None
    other = per_op[system].ops_per_s
    return per_op[ref].ops_per_s / other if other > 0 else None


@dataclass(frozen=True)
class Target:
    name: str
    verdict: str      # PASS, MISS or SKIP (a system or workload was not run)
    detail: str


def _check(name: str, results: Results, op: str, a: str, b: str, factor: float,
           b_op: str | None = None) -> Target:
    """Target: a's ops/s on `op` >= factor × b's ops/s on `b_op` (default the same op)."""
    b_op = b_op or op
    sa, sb = results.get(op, {}).get(a), results.get(b_op, {}).get(b)
    if sa is None or sb is None:
        return Target(name, "SKIP", f"needs {a} on {op} and {b} on {b_op}")
    got = sa.ops_per_s / sb.ops_per_s if sb.ops_per_s > 0 else float("inf")
    detail = (f"{sa.ops_per_s:,.0f} vs {sb.ops_per_s:,.0f} ops/s = {got:.2f}× "
              f"(need ≥ {factor:g}×)")
    if sa.errors or sb.errors:
        return Target(name, "MISS", detail + f"; run had errors ({sa.errors}, {sb.errors})")
    return Target(name, "PASS" if got >= factor else "MISS", detail)


def targets(results: Results, ceiling: str | None) -> list[Target]:
    """The issue's targets, in its words."""
    ref = reference_system(results) or "atoll"
    out = [
        _check("GetItem ≥ 2× dynalite (in memory)", results, "get", ref, "dynalite-mem", 2),
        _check("PutItem (Atoll durable) ≥ 1.5× dynalite (on disk)", results, "put", "atoll",
               "dynalite-disk", 1.5),
        _check("Query ≥ 3× dynalite (in memory)", results, "query", ref, "dynalite-mem", 3),
    ]
    for op in results:
        out.append(_check(f"{op} ≥ 20× moto", results, op, ref, "moto", 20))
    out.append(_check("Atoll GetItem ≥ 20% of the fixed-response ceiling", results, "get", ref,
                      ceiling or "fixed-httptools", 0.2))
    out.append(_check("UpdateItem (3 clauses + condition) ≥ 70% of PutItem", results, "update",
                      ref, ref, 0.7, b_op="put"))
    for op, title, factor in FLOOR_TARGETS:
        if op in results:
            out.append(_check(f"{title} ≥ {factor:.0%} of the floor (minimal SQLite server)",
                              results, op, ref, FLOOR, factor))
    for op, per_op in results.items():
        s = per_op.get(ref)
        name = f"{op} p99 < {P99_TARGET_MS:g} ms"
        if s is None:
            out.append(Target(name, "SKIP", f"needs {ref} on {op}"))
        else:
            verdict = "PASS" if s.p99_ms < P99_TARGET_MS and not s.errors else "MISS"
            out.append(Target(name, verdict, f"p99 {s.p99_ms:.1f} ms"
                              + (f"; {s.errors} errors" if s.errors else "")))
    return out


def floor_fractions(results: Results) -> dict[str, float]:
    """Per workload, Atoll's ops/s as a fraction of the floor's (both must have run)."""
    out = {}
    for op in results:
        r = ratio(results, op, FLOOR)
        if r is not None:
            out[op] = r
    return out


def floor_cpu_fractions(results: Results) -> dict[str, float]:
    """Per workload, the floor's server CPU per request over Atoll's: the fraction of the
    floor Atoll would reach if both had a core to themselves."""
    ref = reference_system(results)
    out = {}
    for op, per_op in results.items():
        a, f = per_op.get(ref or ""), per_op.get(FLOOR)
        if a is not None and f is not None and a.cpu_us_per_op and f.cpu_us_per_op:
            out[op] = f.cpu_us_per_op / a.cpu_us_per_op
    return out


def best_ceiling(results: Results, ceilings: list[str]) -> str | None:
    """The faster fixed-response server on GetItem: the practical ceiling."""
    get = results.get("get", {})
    present = [c for c in ceilings if c in get]
    return max(present, key=lambda c: get[c].ops_per_s) if present else None


# --- output -------------------------------------------------------------------------------

def _fmt_ops(x: float) -> str:
    return f"{x / 1000:,.1f}k" if x >= 10_000 else f"{x:,.0f}"


def print_report(results: Results, labels: dict[str, str], titles: dict[str, str],
                 rss_kib: dict[str, int], found: list[Target]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))   # a pipe would give 80 columns
    ref = reference_system(results)
    table = Table(title="Throughput (median of rounds) and latency", show_lines=False)
    for col, justify in [("workload", "left"), ("system", "left"), ("ops/s", "right"),
                         ("p50 ms", "right"), ("p99 ms", "right"),
                         ("server CPU µs/op", "right"), ("errors", "right"),
                         (f"{ref or 'Atoll'} ÷ system", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for op, per_op in results.items():
        for i, (name, s) in enumerate(per_op.items()):
            r = ratio(results, op, name)
            errors = f"[red]{s.errors}[/red]" if s.errors else "0"
            ops = _fmt_ops(s.ops_per_s) + (f" ({_fmt_ops(s.items_per_s)} items)"
                                           if s.items_per_s != s.ops_per_s else "")
            style = "bold" if name == ref else ("dim" if name.startswith("fixed-") else None)
            cpu = f"{s.cpu_us_per_op:,.0f}" if s.cpu_us_per_op is not None else ""
            table.add_row(titles[op] if i == 0 else "", name, ops, f"{s.p50_ms:.2f}",
                          f"{s.p99_ms:.2f}", cpu, errors, f"{r:.2f}×" if r is not None else "",
                          style=style)
        table.add_section()
    console.print(table)
    fractions = floor_fractions(results)
    if fractions:
        console.print(f"{ref} as a fraction of the floor ({FLOOR}, same run): " + ", ".join(
            f"{op} {f:.0%}" for op, f in fractions.items()))
    by_cpu = floor_cpu_fractions(results)
    if by_cpu:
        console.print(f"  by server CPU per request (floor's ÷ {ref}'s): " + ", ".join(
            f"{op} {f:.0%}" for op, f in by_cpu.items()))

    mem = Table(title="Systems, and the peak RSS of each server's process tree (VmHWM)")
    mem.add_column("system")
    mem.add_column("what it is")
    mem.add_column("MiB", justify="right")
    for name, kib in rss_kib.items():
        mem.add_row(name, labels[name], f"{kib / 1024:,.0f}" if kib else "n/a")
    console.print(mem)

    for op, per_op in results.items():
        for name, s in per_op.items():
            for sample in s.error_samples:
                console.print(f"[red]error sample[/red] {op} on {labels[name]}: {sample[:200]}")
    console.print("[bold]Targets[/bold]")
    colours = {"PASS": "green", "MISS": "red", "SKIP": "yellow"}
    for t in found:
        console.print(f"  [{colours[t.verdict]}]{t.verdict}[/] {t.name}: {t.detail}")


def to_json(results: Results, labels: dict[str, str], rss_kib: dict[str, int],
            found: list[Target], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "reference": reference_system(results),
        "systems": {name: {"label": labels[name], "peak_rss_kib": rss_kib.get(name) or None}
                    for name in labels},
        "results": {op: {name: {**asdict(s), "atoll_ratio": ratio(results, op, name)}
                         for name, s in per_op.items()} for op, per_op in results.items()},
        "targets": [asdict(t) for t in found],
        "floor_fractions": floor_fractions(results),
        "floor_cpu_fractions": floor_cpu_fractions(results),
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# The write path's stages as /_atoll/status names them, in the order a batch meets them.
WRITE_STAGES = (("wait", "wait"), ("run", "run"), ("to_writer", "to writer"),
                ("commit", "COMMIT"), ("fsync", "fsync"), ("answer", "answer"))


def write_path_line(summary: dict[str, Any] | None) -> str | None:
    """One line of where Atoll's write batches spent their time (p50 of each stage, ms),
    from `write_path` in /_atoll/status; None when no batch was answered in its window."""
    if not summary or not summary.get("batches"):
        return None
    stages = summary["stages_ms"]
    parts = [f"{label} {stages[name]['p50']:.2f}" for name, label in WRITE_STAGES
             if name in stages]
    total = stages.get("total", {})
    pauses = (summary.get("wal") or {}).get("rewind_pause_ms")
    rewinds = (f"; {summary['wal']['rewinds']} WAL rewinds so far, the writer's pause before"
               f" each p50 {pauses['p50']:.2f} p90 {pauses['p90']:.2f} ms") if pauses else ""
    return (f"write path p50 ms over the last {summary['window_s']:g} s: " + ", ".join(parts)
            + f"; total p50 {total.get('p50', 0):.2f} p99 {total.get('p99', 0):.2f}"
            + f"; {summary['writes_per_batch'].get('p50', 0)} writes per batch" + rewinds
            + {True: " (compiled)", False: " (interpreted)"}.get(summary.get("compiled"), ""))
