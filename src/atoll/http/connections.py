"""A listener's open connections and what its limits did to them (`limits.py` says why).

Theory of operation
- `ConnectionTable.open` keeps the open connections in the order they last made
  progress (accepted, or an answer sent): the server calls `open.move_to_end` once per
  answer (a C call of about 0.1 us), so the connection that made progress longest ago
  is always at the head, and nothing is sorted or scanned per request.
- `admit` registers a new connection. At the cap it looks at the first EVICTION_SCAN
  connections from the head and closes the first with nothing in progress (idle, or
  lingering after a refusal), else the first whose request is still arriving; one whose
  request is being answered is never closed. If all of those are being answered, the
  new connection is refused instead.
- Pressure (open connections at `pressure_fraction` of the cap, or a connection closed
  or refused at the cap since the last sweep) shortens the timeouts in force
  (`request_timeout_s`, `idle_timeout_s`), which the server's sweep applies.
- Every limit's action is counted (`stats`) and noted in a `PressureLog`, which the
  sweep turns into at most one log line per kind per interval (`report`).
- A flood (pressure, a refusal, many body bytes arriving) marks memory to hand back;
  once it is over, the sweep calls `release_after_flood`.

No sockets here: the table tells a connection to `evict()` itself, and time is an
argument, so the policy is tested with plain objects.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Protocol

from atoll.http.limits import (
    ConnectionLimits,
    PressureLog,
    default_max_connections,
    open_file_limits,
    release_free_memory,
)

log = logging.getLogger("atoll.http.server")

# Admission looks at this many of the connections that made progress longest ago.
EVICTION_SCAN = 32
# Bodies arriving at a sweep past this, like any refusal or pressure, mark a flood: once
# it is over (RELEASE_BELOW_BYTES or less still arriving) freed memory is handed back.
FLOOD_BODY_BYTES = 32 * 1024 * 1024
RELEASE_BELOW_BYTES = 1024 * 1024

# What each kind of pressure is logged as (its count, then what `report` adds).
_LINES = {
    "began": "connection pressure began %d time(s): %d open, cap %d; stalled requests now "
             "time out after %.0f s, idle connections after %.0f s",
    "ended": "connection pressure ended %d time(s): %d open, cap %d",
    "evicted": "%d connections closed to admit new ones (those that made progress longest "
               "ago first); %d open, cap %d",
    "refused": "%d new connections refused: at the cap (%d open, cap %d) and the oldest "
               "connections were all being answered",
    "head": "%d requests refused (414/431): request line over %d bytes, head over %d bytes "
            "or over %d header fields",
    "body": "%d requests refused (413): body over %d bytes",
    "busy": "%d requests refused (503): bodies still arriving over %d bytes in all",
    "slow": "%d requests timed out (408): not received in full in time (%d open, cap %d)",
    "idle": "%d idle connections closed early under pressure (idle over %.0f s)",
}


class Evictable(Protocol):
    """What the table needs of a connection."""

    closed: bool  # nothing more is written to it (closing, or lingering)
    begun: float | None  # when the request it is receiving began, if any
    busy: bool  # a handler is working on one of its requests
    queue: collections.deque[Any]  # requests received, not answered yet

    def evict(self) -> None: ...


class ConnectionTable:
    """The open connections of one listener, its limits and their counters."""

    def __init__(self, limits: ConnectionLimits, max_body_bytes: int) -> None:
        self.limits = limits
        self.max_body_bytes = max_body_bytes  # (only reported)
        self.max_connections = (limits.max_connections
                                or default_max_connections(open_file_limits()[0]))
        self.pressure_threshold = max(1, int(self.max_connections * limits.pressure_fraction))
        # the open connections, the one that made progress longest ago first
        self.open: collections.OrderedDict[Any, None] = collections.OrderedDict()
        self.buffered_body_bytes = 0  # of requests whose body is still arriving
        self.under_pressure = False
        # the timeouts in force (shorter under pressure)
        self.request_timeout_s = limits.request_timeout_s
        self.idle_timeout_s = limits.idle_timeout_s
        self.pressure_log = PressureLog(limits.log_interval_s)
        self.flooded = False  # memory to hand back once the flood is over
        self._crowded_at_sweep = 0  # evicted + refused as of the last sweep
        self.peak_open = 0
        self.accepted_total = 0
        self.evicted_total = 0
        self.refused_total = 0
        self.head_refusals_total = 0
        self.body_refusals_total = 0
        self.timed_out_total = 0
        self.idle_closed_total = 0
        self.memory_releases_total = 0

    # --- per connection ----------------------------------------------------------------
    def admit(self, connection: Evictable) -> bool:
        """Register a new connection; at the cap, evict one to make room (or, if the
        oldest are all being answered, refuse the new one: False)."""
        connections = self.open
        if len(connections) >= self.max_connections and not self._evict_one():
            self.refused_total += 1
            self.pressure_log.note("refused")
            return False
        connections[connection] = None
        self.accepted_total += 1
        open_now = len(connections)
        if open_now > self.peak_open:
            self.peak_open = open_now
        if open_now >= self.pressure_threshold and not self.under_pressure:
            self._set_pressure(True)  # at once, not at the next sweep
        return True

    def discard(self, connection: Evictable) -> None:
        self.open.pop(connection, None)

    def _evict_one(self) -> bool:
        victim: Evictable | None = None
        receiving: Evictable | None = None
        for scanned, candidate in enumerate(self.open):
            if scanned >= EVICTION_SCAN:
                break
            answering = candidate.busy or bool(candidate.queue)
            if candidate.closed or (candidate.begun is None and not answering):
                victim = candidate
                break
            if receiving is None and not answering:
                receiving = candidate
        victim = victim or receiving
        if victim is None:
            return False
        self.open.pop(victim, None)
        victim.evict()
        self.evicted_total += 1
        self.pressure_log.note("evicted")
        return True

    def refused_request(self, kind: str) -> None:
        """A request refused for breaking a limit: `kind` is "head" (414/431), "body"
        (413) or "busy" (503: the budget for bodies still arriving is spent)."""
        if kind == "head":
            self.head_refusals_total += 1
        else:
            self.body_refusals_total += 1
        self.pressure_log.note(kind)
        self.flooded = True

    def timed_out(self) -> None:
        self.timed_out_total += 1
        self.pressure_log.note("slow")

    def closed_idle(self) -> None:
        """An idle connection closed by the idle timeout in force."""
        if self.under_pressure:
            self.idle_closed_total += 1
            self.pressure_log.note("idle")

    # --- per sweep ---------------------------------------------------------------------
    def judge_pressure(self) -> None:
        crowded = self.evicted_total + self.refused_total
        self._set_pressure(len(self.open) >= self.pressure_threshold
                           or crowded != self._crowded_at_sweep)
        self._crowded_at_sweep = crowded
        if self.buffered_body_bytes > FLOOD_BODY_BYTES:
            self.flooded = True

    def _set_pressure(self, pressed: bool) -> None:
        if pressed != self.under_pressure:
            self.under_pressure = pressed
            self.pressure_log.note("began" if pressed else "ended")
        if pressed:
            self.flooded = True
        limits = self.limits
        self.request_timeout_s = limits.request_timeout_s
        self.idle_timeout_s = limits.idle_timeout_s
        if pressed:
            self.request_timeout_s = min(limits.pressure_request_timeout_s, self.request_timeout_s)
            self.idle_timeout_s = min(limits.pressure_idle_timeout_s, self.idle_timeout_s)

    def release_after_flood(self) -> None:
        """Hand freed memory back once a flood is over (limits.release_free_memory)."""
        if (self.flooded and not self.under_pressure
                and self.buffered_body_bytes <= RELEASE_BELOW_BYTES):
            self.flooded = False
            if release_free_memory():
                self.memory_releases_total += 1

    def report(self, now_s: float) -> None:
        """Log what pressure did since the last report, one line per kind, if one is due."""
        limits, open_now, cap = self.limits, len(self.open), self.max_connections
        for kind, count in self.pressure_log.due(now_s):
            arguments: tuple[Any, ...] = (count, open_now, cap)
            if kind == "began":
                arguments += (self.request_timeout_s, self.idle_timeout_s)
            elif kind == "head":
                arguments = (count, limits.max_request_line_bytes, limits.max_head_bytes,
                             limits.max_header_fields)
            elif kind == "body":
                arguments = (count, self.max_body_bytes)
            elif kind == "busy":
                arguments = (count, limits.max_buffered_body_bytes)
            elif kind == "idle":
                arguments = (count, limits.pressure_idle_timeout_s)
            log.warning(_LINES[kind], *arguments)

    def stats(self) -> dict[str, Any]:
        """Counters for /_atoll/status."""
        return {
            "open": len(self.open), "max": self.max_connections, "peak": self.peak_open,
            "under_pressure": self.under_pressure,
            "request_timeout_s": self.request_timeout_s,
            "accepted_total": self.accepted_total,
            "evicted_total": self.evicted_total, "refused_total": self.refused_total,
            "header_limit_refusals_total": self.head_refusals_total,
            "body_limit_refusals_total": self.body_refusals_total,
            "body_bytes_arriving": self.buffered_body_bytes,
            "slow_requests_timed_out_total": self.timed_out_total,
            "idle_closed_under_pressure_total": self.idle_closed_total,
            "memory_releases_total": self.memory_releases_total,
        }
