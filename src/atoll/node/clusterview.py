"""The whole cluster at a glance, from each region's figures (pure: no I/O, no clock).

Theory of operation: the console (atoll.node.console) and `atoll status` both fetch
every region's figures (atoll.node.figures) and hand them here with the topology's list
of regions; `cluster_view` decides each region's health the same way for both:
- "down": it did not answer (the fetch's error is kept as the reason);
- "degraded": it answered, and says it is degraded (rows failing their checksum, writes
  refused because its clock is off: its own `health`), with its reasons;
- "lagging": it answered, but trails a region that is up by more than `max_lag_s`
  seconds (or `max_lag_records` records, when given);
- "up" otherwise.
A region that is down makes the others' lag to it grow ("unreachable"), but it does not
make them lagging: the failed region is the one shown failed. Records behind are
re-counted against every answering region's cursors (the freshest heads there are), so
the console and the CLI agree with each region's own `/metrics` or show more.
Warnings name smaller problems: no replication from a region that is up, an older
topology generation than another region holds, a disk nearly full.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from atoll.replication.lag import newest_reported

UP = "up"
LAGGING = "lagging"
DEGRADED = "degraded"
DOWN = "down"
DEFAULT_MAX_LAG_S = 10.0
RECENT_CONFLICTS = 20
DISK_WARN_FRACTION = 0.10  # warn when less than this share of the file system is free


def _vector(figures: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    replication = figures.get("replication") or {}
    return {o: (int(v[0]), int(v[1])) for o, v in (replication.get("cursor_vector") or {}).items()}


def _lags(region: str, figures: Mapping[str, Any], heads: Mapping[str, tuple[int, int]]
          ) -> dict[str, dict[str, Any]]:
    """The region's own lag per origin, its records re-counted against `heads`."""
    replication = figures.get("replication") or {}
    own = _vector(figures)
    lags = {}
    for origin, lag in (replication.get("lag") or {}).items():
        behind = max(0, heads.get(origin, (0, 0))[0] - own.get(origin, (0, 0))[0])
        lags[origin] = {**lag, "records": max(int(lag["records"]), behind)}
    return lags


def _warnings(figures: Mapping[str, Any], newest_generation: int, up: set[str]) -> list[str]:
    found = []
    replication = figures.get("replication") or {}
    cut = sorted(p for p, s in (replication.get("peers") or {}).items()
                 if not s["connected"] and p in up)  # (a region that is down says so itself)
    if cut:
        found.append("no replication from " + ", ".join(cut) + ", which is up")
    generation = (figures.get("topology") or {}).get("generation")
    if generation is not None and generation < newest_generation:
        found.append(f"topology generation {generation} (another region holds "
                     f"{newest_generation})")
    disk = figures.get("disk") or {}
    if disk.get("free_bytes") is not None and disk.get("total_bytes"):
        if disk["free_bytes"] < DISK_WARN_FRACTION * disk["total_bytes"]:
            found.append(f"disk {100 - 100 * disk['free_bytes'] / disk['total_bytes']:.0f}% full")
    return found


def cluster_view(regions: Sequence[Mapping[str, Any]],
                 answers: Mapping[str, Mapping[str, Any] | str],
                 max_lag_s: float = DEFAULT_MAX_LAG_S, max_lag_records: int | None = None,
                 rates: Mapping[str, Mapping[str, float | None]] | None = None
                 ) -> dict[str, Any]:
    """`regions`: the topology's regions ({"id", "client_endpoints", "peer_endpoints"});
    `answers`: per region id, its figures or the error that kept them from us."""
    figures = {r: a for r, a in answers.items() if not isinstance(a, str)}
    heads = newest_reported([r["id"] for r in regions], [_vector(f) for f in figures.values()])
    generations = [int((f.get("topology") or {}).get("generation") or 0)
                   for f in figures.values()]
    newest_generation = max(generations, default=0)
    up = set(figures)
    view_regions = []
    for region in regions:
        rid = region["id"]
        answer = answers.get(rid, "not asked")
        entry: dict[str, Any] = {"id": rid, "client_endpoints": list(region["client_endpoints"]),
                                 "peer_endpoints": list(region["peer_endpoints"]),
                                 "rates": dict((rates or {}).get(rid) or {})}
        if isinstance(answer, str):
            entry.update(health=DOWN, reason=answer, figures=None, lag={}, trails=[],
                         warnings=[])
            view_regions.append(entry)
            continue
        lags = _lags(rid, answer, heads)
        behind = sorted(o for o, lag in lags.items() if o in up and (
            lag["seconds"] > max_lag_s
            or (max_lag_records is not None and lag["records"] > max_lag_records)))
        degraded = list((answer.get("health") or {}).get("reasons") or [])
        reasons = [*degraded, *(["trails " + ", ".join(behind)] if behind else [])]
        entry.update(health=DEGRADED if degraded else LAGGING if behind else UP,
                     reason="; ".join(reasons),
                     figures=answer, lag=lags, trails=behind,
                     warnings=_warnings(answer, newest_generation, up))
        view_regions.append(entry)
    return {"regions": view_regions, "generation": newest_generation,
            "max_lag_s": max_lag_s, "max_lag_records": max_lag_records,
            "healthy": all(r["health"] == UP for r in view_regions),
            "conflicts": merged_conflicts(figures)[:RECENT_CONFLICTS]}


def merged_conflicts(figures: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every region's recent conflicts, newest first. Each region that applied both
    writes logs the same conflict: it is listed once, with the regions that logged it."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rid, f in sorted(figures.items()):
        for c in f.get("conflicts") or []:
            same = (c["table"], c.get("pk"), c.get("sk"), c["winner"]["hlc"],
                    c["winner"]["origin"], c["loser"]["hlc"], c["loser"]["origin"])
            if same in merged:
                merged[same]["regions"].append(rid)
                merged[same]["detected_ms"] = min(merged[same]["detected_ms"], c["detected_ms"])
            else:
                entry = {k: v for k, v in c.items() if k not in ("id", "region")}
                merged[same] = {**entry, "regions": [rid]}
    return sorted(merged.values(), key=lambda c: c["detected_ms"], reverse=True)
