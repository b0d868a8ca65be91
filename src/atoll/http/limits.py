"""Connection limits: how many connections a listener holds, how big and how slow a
request may be, and how pressure on them is reported.

Theory of operation
- Every open connection costs a file descriptor; when a process runs out, accept()
  fails and every new client is shut out (the kernel queues it, the server drops it)
  while the connections holding the descriptors may be doing nothing at all. So a node
  raises its soft open-file limit to the hard limit at start (`raise_open_file_limit`),
  and each listener caps its open connections below that limit
  (`default_max_connections`: the limit less a reserve for the database files, the
  listening sockets, connections to peers and whatever else the process opens).
- At the cap a new connection is still admitted: the listener closes the connection that
  made progress longest ago — idle ones first, then ones whose request is still arriving
  — never one whose request is being answered (`HttpServer`). A client that keeps
  working is never the one closed; one that connected and went quiet, or trickles a
  header byte every few seconds (slowloris), is.
- A request's head (request line and headers) is bounded in bytes and in fields: DynamoDB
  requests carry a dozen short headers, and an unbounded head is memory the client
  chooses. Too long a request line is answered 414, too big a head 431 (RFC 6585).
- A request must arrive in full within `request_timeout_s` of its first byte, or be
  answered 408. Under pressure (open connections at `pressure_fraction` of the cap, or
  connections closed to admit others since the last sweep) it gets
  `pressure_request_timeout_s`, plus one second per `min_body_rate_bytes_per_s` of body
  received (a large body still moving is not a stalled one), and idle connections get
  `pressure_idle_timeout_s`.
- Each kind of pressure is counted and logged at most once per `log_interval_s`, with
  the count (`PressureLog`), never once per connection: a flood cannot flood the log.
- Memory comes back after a flood. Bodies still arriving are bounded across all
  connections (`max_buffered_body_bytes`), a closed connection lets go of what it
  buffered at once (server.py), and once the flood is over the listener asks the C
  allocator to hand its free pages back (`release_free_memory`): glibc keeps freed
  heap memory for reuse, and measured with 200 connections each sending a 1 MB header
  and then 200 sending 8 MB of a body, a node's RSS went 47 -> 90 and 47 -> 300 MB and
  stayed at 76 and 94 MB; with the release it returned to 47 MB both times.

This module is the policy and its bookkeeping; `server.py` applies it to sockets.
"""

from __future__ import annotations

import ctypes
import math
import resource
from dataclasses import dataclass

# Descriptors kept for everything that is not a client connection: the SQLite database
# (two connections, each with the database, WAL and shared-memory files), listening
# sockets, connections to peers and the HTTP clients' pools, the event loop's own
# descriptors, log files. At least this many, or an eighth of the limit if that is more.
RESERVED_FILES_MIN = 128
MIN_CONNECTIONS = 16
# A default past which memory, not descriptors, is the bound (~5 KB per idle connection).
MAX_DEFAULT_CONNECTIONS = 65536


@dataclass(frozen=True)
class ConnectionLimits:
    """A listener's limits; `max_connections=None` derives the cap from the process's
    open-file limit when the server is made."""

    max_connections: int | None = None
    max_head_bytes: int = 16 * 1024  # request line + headers (Node.js's default)
    max_header_fields: int = 100  # Apache's LimitRequestFields
    max_request_line_bytes: int = 8 * 1024
    request_timeout_s: float = 60.0
    pressure_request_timeout_s: float = 5.0
    min_body_rate_bytes_per_s: int = 64 * 1024
    idle_timeout_s: float = 300.0
    pressure_idle_timeout_s: float = 30.0
    pressure_fraction: float = 0.75
    log_interval_s: float = 10.0
    # Bodies still arriving, all connections together: past it a request is answered 503
    # (SDKs retry it) instead of memory growing with the number of slow senders.
    max_buffered_body_bytes: int = 256 * 1024 * 1024
    # After refusing a request whose bytes may still be coming, keep reading (and
    # dropping) them this long, at most this many bytes, so the client reads the answer
    # instead of a connection reset (nginx's lingering close).
    linger_s: float = 2.0
    linger_max_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if not 0 < self.pressure_fraction <= 1:
            raise ValueError("pressure_fraction must be in (0, 1]")
        for name in ("request_timeout_s", "pressure_request_timeout_s", "idle_timeout_s",
                     "pressure_idle_timeout_s", "log_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


def open_file_limits() -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE; RLIM_INFINITY as a very large int."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _finite(soft), _finite(hard)


def _finite(limit: int) -> int:
    return 1 << 62 if limit == resource.RLIM_INFINITY or limit < 0 else limit


def raise_open_file_limit() -> tuple[int, int, int]:
    """Raise the soft open-file limit as far as the hard limit allows; return (soft
    before, soft after, hard). An unlimited hard limit goes as far as the kernel's
    per-process maximum (Linux fs.nr_open); a refusal leaves the soft limit as it was."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        target = _kernel_max_open_files()
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    after, _hard = open_file_limits()
    return _finite(soft), after, _finite(hard)


def _kernel_max_open_files() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1 << 20


def default_max_connections(open_files: int) -> int:
    """Connections a process with `open_files` descriptors can hold and still open its
    database, peers and outgoing connections: the limit less a reserve (see above)."""
    reserve = max(RESERVED_FILES_MIN, open_files // 8)
    return max(MIN_CONNECTIONS, min(MAX_DEFAULT_CONNECTIONS, open_files - reserve))


PEER_CONNECTIONS_MAX = 256


def split_connections(open_files: int, configured: int | None, peers: bool) -> tuple[int, int]:
    """(client cap, peer cap) for a node: both listeners draw on one descriptor budget.
    Peers hold a few connections each, so their listener gets a small share (a flood
    there cannot take the client port's descriptors, nor the other way round);
    `configured` (the operator's cap for the client port) wins when given."""
    budget = default_max_connections(open_files)
    peer_cap = min(PEER_CONNECTIONS_MAX, max(MIN_CONNECTIONS, budget // 16)) if peers else 0
    return configured or max(MIN_CONNECTIONS, budget - peer_cap), peer_cap


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS (glibc's malloc_trim); False where the
    allocator has no such call. Costs milliseconds on a large heap: called after a flood,
    not per request."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


class PressureLog:
    """Counts pressure events by kind and hands each kind back at most once per
    interval, so the caller logs one line per kind with its count: the first event of a
    kind is reported at the next look, later ones gather until its interval has passed.
    Time is an argument (seconds on any monotonic clock)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.counts: dict[str, int] = {}
        self.reported_s: dict[str, float] = {}  # when each kind was last reported

    def note(self, kind: str, count: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + count

    def due(self, now_s: float) -> list[tuple[str, int]]:
        """The kinds whose interval has passed, with their counts since last reported."""
        if not self.counts:
            return []
        report = []
        for kind, count in sorted(self.counts.items()):
            if now_s - self.reported_s.get(kind, -math.inf) >= self.interval_s:
                report.append((kind, count))
                self.reported_s[kind] = now_s
        for kind, _count in report:
            del self.counts[kind]
        return report
