"""Verify runs asked for by an operator (`atoll verify`), and reports as JSON.

Theory of operation: `POST /_atoll/verify/runs` on any node of a cluster starts a run
there: for each table, one session over every region of the topology — this region
answered locally, the others over the peer link — then, if that pass found differences
below the cut (UNCONFIRMED), a second session focused on their buckets, which confirms
them (DIVERGED) or not (atoll.antientropy.verdict: a difference must be seen by two
sessions, the second starting after the first completed). With `repair`, the second
pass repairs what it confirms. A `deep` run scrubs every region's rows first, so rows
changed behind Atoll's back are found even if no background scrub reached them yet;
it is the default of `atoll verify` (`--quick` compares the trees alone).

`GET /_atoll/verify/runs/<id>` shows a run: its progress while it runs (tables done,
the current table and phase, buckets scrubbed), then per table the report — per pair of
regions MATCH / TRANSIENT n / DIVERGED n, keys compared, bytes exchanged, time — the
differing keys as the application wrote them, corrupt rows, repairs and what could not
be repaired, and the exit code `atoll verify` returns (0 match, 1 diverged, 2 could not
complete). One run at a time per node; the last MAX_RUNS are kept.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from atoll.antientropy import (
    UNCONFIRMED_KIND,
    Session,
    SessionConfig,
    TableReport,
    VerdictBook,
    exit_code,
)
from atoll.antientropy.hashing import bucket_of
from atoll.antientropy.messages import Request, Scrub
from atoll.antientropy.results import combine_passes
from atoll.engine.catalog import Catalog
from atoll.node.conflictlog import readable_key
from atoll.node.verifylink import Transport, now_ms, run_session
from atoll.storage.treeprotocol import TREE_BUCKETS

MAX_RUNS = 8
MAX_LISTED_DIFFERENCES = 1000
ITEMS_PER_MESSAGE = 32  # repairs carry items whole: 32 of DynamoDB's 400 KB fit 16 MiB


def session_config(deep: bool = False, repair: bool = False) -> SessionConfig:
    return SessionConfig(deep=deep, repair=repair, fetch_batch=ITEMS_PER_MESSAGE,
                         repair_batch=ITEMS_PER_MESSAGE)


@dataclass(frozen=True)
class RunRequest:
    tables: tuple[str, ...] | None  # None: every table
    deep: bool = True
    repair: bool = False


@dataclass
class Progress:
    tables_total: int = 0
    tables_done: int = 0
    table: str = ""
    phase: str = "starting"
    scrubbed_buckets: int = 0
    scrub_buckets_total: int = 0

    def as_dict(self) -> dict[str, Any]:
        scrub = (self.scrubbed_buckets / self.scrub_buckets_total
                 if self.scrub_buckets_total else 1.0)
        within = {"scrub": 0.8 * scrub, "compare": 0.8, "confirm": 0.9}.get(self.phase, 0.0)
        done = min(self.tables_total, self.tables_done + within)
        return {"tables_total": self.tables_total, "tables_done": self.tables_done,
                "table": self.table, "phase": self.phase,
                "scrubbed_buckets": self.scrubbed_buckets,
                "scrub_buckets_total": self.scrub_buckets_total,
                "fraction": round(done / self.tables_total, 4) if self.tables_total else 1.0}


@dataclass
class VerifyRun:
    id: int
    request: RunRequest
    region: str
    started_unix_s: float = field(default_factory=time.time)
    finished_unix_s: float | None = None
    state: str = "running"  # running, done, failed
    error: str = ""
    progress: Progress = field(default_factory=Progress)
    reports: list[TableReport] = field(default_factory=list)

    def view(self, catalog: Catalog) -> dict[str, Any]:
        done = self.state != "running"
        return {"id": self.id, "state": self.state, "region": self.region,
                "deep": self.request.deep, "repair": self.request.repair,
                "started_unix_s": round(self.started_unix_s, 3),
                "finished_unix_s": None if self.finished_unix_s is None
                else round(self.finished_unix_s, 3),
                "error": self.error, "progress": self.progress.as_dict(),
                "tables": [report_json(r, catalog) for r in self.reports],
                "exit_code": (2 if self.state == "failed" else exit_code(self.reports))
                if done else None}


class Runs:
    """The runs of one node (event-loop thread)."""

    def __init__(self) -> None:
        self.runs: dict[int, VerifyRun] = {}
        self._ids = itertools.count(1)

    def running(self) -> VerifyRun | None:
        return next((r for r in self.runs.values() if r.state == "running"), None)

    def new(self, request: RunRequest, region: str) -> VerifyRun:
        run = VerifyRun(next(self._ids), request, region)
        self.runs[run.id] = run
        for old in sorted(self.runs)[:-MAX_RUNS]:
            del self.runs[old]
        return run


def parse_run_request(body: dict[str, Any]) -> RunRequest:
    """ValueError for a body that is not {"tables": [names] | null, "deep": bool,
    "repair": bool}."""
    tables = body.get("tables")
    if tables is not None and (not isinstance(tables, list)
                               or not all(isinstance(t, str) for t in tables)):
        raise ValueError("tables must be a list of table names or null")
    deep, repair = body.get("deep", True), body.get("repair", False)
    if not isinstance(deep, bool) or not isinstance(repair, bool):
        raise ValueError("deep and repair must be true or false")
    return RunRequest(None if tables is None else tuple(tables), deep, repair)


async def execute(run: VerifyRun, tables: list[str], regions: list[str],
                  transports: Mapping[str, Transport], damage: Callable[[str], set[int]],
                  sids: itertools.count[int]) -> None:
    """Every table, two passes at most each (see the module doc)."""
    progress = run.progress
    progress.tables_total = len(tables)
    remote = [r for r in regions if r != run.region]
    for table in tables:
        progress.table = table
        book = VerdictBook()
        deep = run.request.deep
        progress.phase = "scrub" if deep else "compare"
        progress.scrubbed_buckets = 0
        progress.scrub_buckets_total = len(regions) * TREE_BUCKETS if deep else 0

        def watch(region: str, request: Request, seconds: float) -> None:
            if isinstance(request, Scrub):
                progress.scrubbed_buckets += request.count
            elif progress.phase == "scrub":
                progress.phase = "compare"

        first = await run_session(
            Session(table, regions, next(sids), now_ms(), book,
                    config=session_config(deep=deep), remote=remote,
                    damage={run.region: damage(table)}), transports, watch=watch)
        report = first
        focus = {bucket_of(d.pk) for d in first.differences if d.kind == UNCONFIRMED_KIND}
        if focus and not first.error:
            progress.phase = "confirm"
            second = await run_session(
                Session(table, regions, next(sids), now_ms(), book,
                        config=session_config(repair=run.request.repair),
                        remote=remote, focus=focus, damage={run.region: damage(table)}),
                transports)
            report = combine_passes(first, second, focus, bucket_of)
        run.reports.append(report)
        progress.tables_done += 1
    progress.phase = "done"


def _key(catalog: Catalog, table: str, pk: bytes, sk: bytes) -> dict[str, Any]:
    return {"pk": pk.hex(), "sk": sk.hex(),
            "key": readable_key(catalog, table, pk.hex(), sk.hex())}


def report_json(report: TableReport, catalog: Catalog) -> dict[str, Any]:
    """One table's report as `atoll verify` and `GET /_atoll/verify/runs/<id>` show it."""
    table = report.table
    return {
        "table": table, "regions": list(report.regions), "status": report.status.value,
        "error": report.error, "elapsed_ms": report.finished_ms - report.started_ms,
        "round_trips": report.round_trips, "bytes_by_region": report.bytes_by_region,
        "pairs": [{"a": p.a, "b": p.b, "status": p.status.value, "summary": p.summary(),
                   "transient": p.transient, "unconfirmed": p.unconfirmed,
                   "diverged": p.diverged, "keys_compared": p.keys_compared,
                   "bytes_exchanged": p.bytes_exchanged, "elapsed_ms": p.elapsed_ms,
                   "error": p.error} for p in report.pairs],
        "diverged_keys": [_key(catalog, table, pk, sk) for pk, sk in report.diverged_keys()],
        "differences": [{**_key(catalog, table, d.pk, d.sk), "a": d.a, "b": d.b,
                         "kind": d.kind, "a_state": d.a_state, "b_state": d.b_state,
                         "reason": d.reason}
                        for d in report.differences[:MAX_LISTED_DIFFERENCES]],
        "differences_not_listed": max(0, len(report.differences) - MAX_LISTED_DIFFERENCES)
        + report.differences_dropped,
        "corrupt": [{"region": region, **_key(catalog, table, pk, sk)}
                    for region, (pk, sk) in report.corrupt],
        "damaged_buckets": report.damaged_buckets,
        "repairs": [{"region": e.region, **_key(catalog, table, e.pk, e.sk), "winner": e.winner,
                     "source": e.source, "replaced": e.replaced, "reason": e.reason,
                     "conflict": e.conflict, "outcome": e.outcome} for e in report.repairs],
        "unrepairable": [{**_key(catalog, table, pk, sk), "reason": why}
                         for (pk, sk), why in report.unrepairable],
    }
