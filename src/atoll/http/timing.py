"""Server-side request time for /_atoll/status: from a request's first bytes parsed to
its answer handed to the socket.

A client's latency adds what the server cannot see: the time a request sits in socket
buffers before the server reads it, and its answer after; this summary lets a run tell
the two apart. (It did not show the WAL rewind pauses that made PutItem's p99 under wrk:
README "Performance".) Recording costs a clock read and a deque append per request.
"""

from __future__ import annotations

import collections
from typing import Any

from atoll.storage.writepath import WINDOW_S, now_ns, percentiles_ms

# ~1.6 s of requests at 10,000/s; a summary sorts at most this many spans.
RING_REQUESTS = 16384


class RequestTimes:
    """(answered at, ns from first bytes to answer) of the recent requests (loop thread)."""

    def __init__(self, ring: int = RING_REQUESTS) -> None:
        self._recent: collections.deque[tuple[int, int]] = collections.deque(maxlen=ring)
        self.answered = 0  # since start

    def add(self, began: int, at: int) -> None:
        self._recent.append((at, at - began))
        self.answered += 1

    def summary(self, window_s: float = WINDOW_S, at: int | None = None) -> dict[str, Any]:
        """Percentiles and max (ms) over the requests answered in the last `window_s`
        seconds (at most the last RING_REQUESTS)."""
        since = (now_ns() if at is None else at) - int(window_s * 1e9)
        spans = sorted(span for answered, span in self._recent if answered >= since)
        result: dict[str, Any] = {"window_s": window_s, "requests": len(spans),
                                  "requests_total": self.answered}
        if spans:
            result.update(percentiles_ms(spans, with_max=True))
        return result
