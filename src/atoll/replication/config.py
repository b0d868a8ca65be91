"""`ReplicationConfig`: every bound, interval and batch size of replication, in one place.

The node runs with the defaults, but for what the cluster config's `[replication]`
table sets (`replication_config`: the peer connect timeout); the simulator uses the same class with smaller values
(short waits, tiny batches and snapshot pages) so that a few hundred simulated
milliseconds exercise long polls, timeouts, backoff, paging and bounded purges. All
durations are milliseconds of whatever clock the shell passes in (monotonic time in the
node, fake time in the simulator).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from atoll.invariant import invariant

MAX_BATCH_CHANGES = 1000  # the protocol's bound on records per Batch (protocol.py)


@dataclass(frozen=True, slots=True)
class ReplicationConfig:
    # Pulling: one Pull in flight per peer, answered by at most this many records. A
    # thousand records make one storage write job: catch-up speed comes from big batches.
    max_batch_changes: int = 1000
    # Long poll: a server holds a Pull it has nothing for this long (the puller asks for
    # it), so a change travels as soon as it committed; never longer than the maximum.
    pull_wait_ms: int = 1000
    # Applies of one peer's batches submitted at once: with two, a batch that arrives
    # while the previous one waits for its fsync joins the next group commit instead of
    # waiting for that fsync (one fsync less of lag per batch under steady writes).
    applies_in_flight: int = 2
    max_pull_wait_ms: int = 5000
    # A Pull or snapshot request unanswered this long has failed (the wait included).
    request_timeout_ms: int = 11_000
    # Opening a TCP connection to a peer endpoint takes at most this long; then the
    # region's next endpoint is tried within the same request. The node's every peer
    # client has it (pulls, snapshots, verify, topology, clock probes): an endpoint that
    # silently drops connections would otherwise cost a whole request timeout per
    # attempt. A live host's kernel answers TCP's handshake at once whatever its load;
    # TLS's handshake, which waits for the peer process, has the request's timeout.
    connect_timeout_ms: int = 1000
    # A peer whose pulls have failed this long is "stale": its changes are then also
    # asked of every other peer (changelogs relay: a partial partition does not stop them).
    direct_stale_ms: int = 3000
    # Between failed pulls: doubling from the minimum up to the maximum.
    backoff_min_ms: int = 50
    backoff_max_ms: int = 2000
    # After a batch that could not be used whole (refused records, a gap, an unknown
    # table) with nothing more waiting: no hot loop asking for it again.
    held_pause_ms: int = 200
    # Retention: a pass every interval deletes at most `purge_limit` changelog records
    # per origin and `purge_limit` tombstones. Small passes, because a purge is a write
    # job, and a long one holds back every write and apply behind it (lag p99 went from
    # ~100 ms to ~380 ms with 20,000-record passes).
    retention_interval_ms: int = 1000
    purge_limit: int = 2000
    # The bounded maximum (DESIGN.md decision 6): kept even if some region never acks.
    max_records_per_origin: int = 1_000_000
    max_tombstone_age_ms: int = 7 * 24 * 3600 * 1000
    # Folding the counter contributions of regions that left the topology
    # (atoll.replication.fold): a pass every interval while there is something to fold,
    # reading pages of `fold_scan_rows` rows (at most `fold_pages_per_step` before the
    # shell gets control back: the node reads and decodes them on its event loop) and
    # writing one change per `fold_batch_items` items.
    fold_interval_ms: int = 1000
    fold_scan_rows: int = 200
    fold_batch_items: int = 100
    fold_pages_per_step: int = 1
    # The node's shell sizes each page and each job to take about `fold_slice_ms` (from
    # their measured cost; at most the sizes above) and pauses after each so that the
    # walk takes at most `fold_share` of the event loop and of the writer thread
    # (atoll.replication.pacing): requests served meanwhile wait for at most one slice.
    fold_slice_ms: int = 5
    fold_share: float = 0.5
    # The same walk compacts item states whose every dot every region acknowledged
    # (itemstate.compact): a sweep of every stored state at most this often, when the
    # stable cut moved since the last one.
    compact_interval_ms: int = 60_000
    # Rebuilding from a peer's snapshot: rows per page, and a bound on pages per table.
    snapshot_page_rows: int = 2000
    max_snapshot_pages: int = 100_000

    def __post_init__(self) -> None:
        invariant(0 < self.max_batch_changes <= MAX_BATCH_CHANGES, "max_batch_changes out of bounds")
        invariant(0 <= self.pull_wait_ms <= self.max_pull_wait_ms, "pull wait above its maximum")
        invariant(self.request_timeout_ms > self.max_pull_wait_ms,
                  "a request must be allowed to outlast the longest long poll")
        # (one at or above the request timeout leaves the request's the only bound)
        invariant(self.connect_timeout_ms > 0, "a connect timeout must be positive")
        invariant(1 <= self.applies_in_flight <= 4, "applies_in_flight out of bounds")
        invariant(0 < self.backoff_min_ms <= self.backoff_max_ms, "backoff bounds out of order")
        invariant(self.purge_limit > 0 and self.snapshot_page_rows > 0, "limits must be positive")
        invariant(self.retention_interval_ms > 0 and self.held_pause_ms >= 0, "bad interval")
        invariant(self.max_snapshot_pages > 0 and self.direct_stale_ms > 0, "bad bound")
        invariant(self.fold_interval_ms > 0 and self.fold_scan_rows > 0
                  and 0 < self.fold_batch_items <= MAX_BATCH_CHANGES
                  and self.fold_pages_per_step > 0 and self.compact_interval_ms > 0
                  and self.fold_slice_ms > 0 and 0 < self.fold_share <= 1,
                  "fold bounds must be positive")


REPLICATION_KEYS = ("connect_timeout_ms", "compact_interval_ms")
MIN_CONNECT_TIMEOUT_MS = 50
COMPACT_INTERVAL_MS_RANGE = (100, 86_400_000)


def replication_config(options: Mapping[str, Any]) -> ReplicationConfig:
    """The node's ReplicationConfig from a cluster config's other keys: the defaults,
    with what its `[replication]` table sets (ValueError saying what does not fit).

        [replication]
        connect_timeout_ms = 1000   # opening a connection to a peer endpoint, at most
        compact_interval_ms = 60000 # item-state compaction sweeps, at most this often
    """
    raw = options.get("replication", {})
    if not isinstance(raw, dict):
        raise ValueError("[replication] must be a table")
    unknown = sorted(set(raw) - set(REPLICATION_KEYS))
    if unknown:
        raise ValueError(f"[replication] has unknown keys: {', '.join(unknown)}")
    defaults = ReplicationConfig()
    connect = raw.get("connect_timeout_ms", defaults.connect_timeout_ms)
    if isinstance(connect, bool) or not isinstance(connect, int) \
            or not MIN_CONNECT_TIMEOUT_MS <= connect < defaults.request_timeout_ms:
        raise ValueError(f"[replication] connect_timeout_ms must be an integer in "
                         f"{MIN_CONNECT_TIMEOUT_MS}..{defaults.request_timeout_ms - 1}")
    compact = raw.get("compact_interval_ms", defaults.compact_interval_ms)
    low, high = COMPACT_INTERVAL_MS_RANGE
    if isinstance(compact, bool) or not isinstance(compact, int) or not low <= compact <= high:
        raise ValueError(f"[replication] compact_interval_ms must be an integer in "
                         f"{low}..{high}")
    return replace(defaults, connect_timeout_ms=connect, compact_interval_ms=compact)
