"""What a region reports about itself for operators: one snapshot, read when asked.

Theory of operation: `/metrics` (atoll.node.metrics), the console (atoll.node.console)
and `atoll status` show the same figures, so they are gathered in one place,
`region_figures`, from what the node already keeps: its `/_atoll/status` (counters,
write path, WAL, replication, topology), the cursors its peers' pulls reported
(replication lag, atoll.replication.lag), the file system of its data directory and
the newest entries of its conflict log. Nothing here runs on the request path; a
snapshot costs a few SQLite reads and sorts (about a millisecond), once per scrape or
console poll.

Features that are not built yet report `None` ("not available"): authentication
failures and verify results. A component that provides them attaches a source
(`AuthFigures`, `VerifyFigures`) to the node's `OperatorEndpoints`; until then the
console shows "not available" and `/metrics` has no such families.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from typing import Any, Protocol

from atoll.node.conflictlog import RecentConflicts
from atoll.node.replicator import PULL_WAIT_MS
from atoll.replication.lag import origin_lags

# A peer that answers no pull for longer than a long poll takes (plus a margin for a
# loaded machine) counts as silent: see atoll.replication.lag.
LAG_GRACE_S = PULL_WAIT_MS / 1000 + 1.0
RECENT_CONFLICTS = 10
VERIFY_VERDICTS = ("match", "transient", "diverged", "incomplete")


class NodeView(Protocol):
    """What the operator endpoints read of a node (atoll.node.node.Node provides it; a
    protocol, so that these modules do not import the node that serves them)."""

    config: Any  # NodeConfig: region, host, port, in_memory
    api: Any  # Api: per-operation stats
    engine: Any  # Engine: the catalog, to decode conflict keys
    storage: Any  # the node's Storage (conflicts, settle, path)
    replicator: Any  # Replicator | None: the cursors peers acknowledged
    topology: Any  # TopologyKeeper | None

    def status(self) -> dict[str, Any]: ...


class AuthFigures(Protocol):
    """Provided by request authentication once it exists."""

    def auth_failures(self) -> Mapping[str, int]:
        """Requests refused since start, by reason (a small fixed set of reasons)."""


class VerifyFigures(Protocol):
    """Provided by anti-entropy verification once it exists."""

    def verify_results(self) -> Mapping[str, Mapping[str, Any]]:
        """Per peer region, the last finished comparison: {"finished_unix_s": float,
        "verdict": one of VERIFY_VERDICTS (atoll.antientropy.results.Status, lower
        case), "divergent_items": int, "repaired_items": int}."""


def disk_figures(directory: str, database: str | None) -> dict[str, int | None]:
    """Free and total bytes of the file system holding `directory`, and the database's
    size with its WAL (None where unknown)."""
    free: int | None = None
    total: int | None = None
    try:
        usage = shutil.disk_usage(directory)
        free, total = int(usage.free), int(usage.total)
    except OSError:
        pass
    size: int | None = None
    if database is not None:
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += os.stat(database + suffix).st_size
            except OSError:
                pass
    return {"free_bytes": free, "total_bytes": total, "database_bytes": size}


def _claims(node: NodeView) -> list[Mapping[str, tuple[int, int]]]:
    """The cursor vectors peers sent with their latest pulls (their progress, their own
    newest change included)."""
    replicator = node.replicator
    if replicator is None:
        return []
    return [dict(cursors) for cursors in replicator.acked.values()]


def region_figures(node: NodeView, conflicts: RecentConflicts, auth: AuthFigures | None = None,
                   verify: VerifyFigures | None = None) -> dict[str, Any]:
    """This region's figures (JSON-ready). See the module doc."""
    status = node.status()
    replication = status.get("replication")
    topology = node.topology.current if node.topology is not None else None
    result: dict[str, Any] = {
        "region": node.config.region, "version": status["version"],
        "compiled": status["compiled"], "time_unix_s": round(time.time(), 3),
        "tables": status["tables"], "requests_total": status["requests_total"],
        "errors_total": status["errors_total"], "writes_total": status["writes_committed"],
        "write_batches_total": status["write_batches_committed"],
        "requests_ms": status["requests_ms"], "write_path": status["write_path"],
        "disk": disk_figures(os.path.dirname(node.storage.path) or ".",
                             None if node.config.in_memory else node.storage.path),
        "topology": None if topology is None else {
            "cluster_id": topology.cluster_id, "generation": topology.generation,
            "regions": [{"id": r.id, "client_endpoints": list(r.client_endpoints),
                         "peer_endpoints": list(r.peer_endpoints)} for r in topology.regions],
            **{k: status["topology"][k] for k in ("accepted_total", "refused_total")}},
        "replication": None,
        "health": status["health"],
        "integrity": status["integrity"],
        "clock": status.get("clock"),
        "conflicts": conflicts.latest(node.storage.conflicts, node.engine.catalog,
                                      RECENT_CONFLICTS),
        "auth": None if auth is None else {"failures": dict(auth.auth_failures())},
        "verify": None if verify is None else {
            peer: dict(result) for peer, result in verify.verify_results().items()},
    }
    if replication is not None:
        peers = replication["peers"]
        own = {o: (int(v[0]), int(v[1])) for o, v in replication["cursor_vector"].items()}
        lags = origin_lags(list(peers), own, _claims(node),
                           {p: s["last_ok_s_ago"] for p, s in peers.items()}, LAG_GRACE_S)
        result["replication"] = {
            "cursor_vector": replication["cursor_vector"],
            "peers": peers,
            "lag": {origin: lag.as_dict() for origin, lag in lags.items()},
            "applied_total": sum(int(p["applied"]) for p in peers.values()),
            "apply_delay_ms": replication["lag_ms"],
            "conflicts_total": replication["conflicts_detected"],
            "snapshot_rebuilds_total": replication["rebuilds_from_snapshot"],
            "clock_skew_bounded_total": replication["clock_skew_bounded"],
            "changelog": replication["changelog"],
            "fold": replication["fold"],
        }
    return result
