"""The node's wall clock: the one `now_ms` its engine reads, with an offset.

The offset is fixed at start for clock-skew drills (`atoll serve --clock-offset-ms`), and
a node started with the hidden `--settable-clock` also lets `POST /_atoll/clock` move it
forward, so live tests of anything that waits on time (stream retention, iterator
expiry, TTL) advance the node's clock instead of sleeping. The clock never moves back:
the hybrid logical clock and every expiry assume time does not.
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll.engine.context import wall_clock_ms

CLOCK_PATH = "/_atoll/clock"
MAX_ADVANCE_MS = 366 * 24 * 3600 * 1000


class OffsetClock:
    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def __call__(self) -> int:
        return wall_clock_ms() + self.offset_ms

    def handle_post(self, body: bytes) -> tuple[int, bytes]:
        """`{"advance_ms": N}` (0 <= N <= a year): move forward; answers the new now."""
        try:
            request: Any = orjson.loads(body)
            advance = request["advance_ms"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return 400, b'{"message":"expected {\\"advance_ms\\": N}"}'
        if type(advance) is not int or not 0 <= advance <= MAX_ADVANCE_MS:
            return 400, b'{"message":"advance_ms must be an integer from 0 to a year"}'
        self.offset_ms += advance
        return 200, orjson.dumps({"now_ms": self(), "offset_ms": self.offset_ms})
