"""Checkpointer: WAL checkpoints off the commit path, and rewinds of the WAL between batches.

Theory of operation
- WAL checkpoints (copying the WAL into the main file, with its own fsyncs) run on a
  separate checkpointer thread every CHECKPOINT_INTERVAL_S, not inside a COMMIT. Under
  steady writes such a checkpoint never catches up with the WAL's end, and SQLite only
  rewinds the WAL (starts writing it from the beginning again) at a write that finds it
  wholly copied. So once the WAL holds REWIND_FRAMES, the checkpointer checkpoints again
  until a pass finds few new frames, then asks for a rewind: the writer thread, between
  two batches, checkpoints the frames written since (with its fsync of the main file),
  and the next batch starts the WAL over. Left to itself, the WAL would grow to the
  backstop size (connection.py) and a COMMIT would run the autocheckpoint, with an fsync
  of everything not yet copied: COMMIT stalls of 20-30 ms, several a second.
- The writer's pause before a rewind stalls every write in flight, so it is PutItem's
  tail (with no checkpoint at all, wrk PutItem's p99 is ~7 ms instead of ~33). Its length
  follows the frames left for it (REWIND_REST_FRAMES, CATCH_UP_PASSES), and how often it
  comes follows REWIND_FRAMES. Measured (wrk PutItem, 32 connections, 20 s, medians of 3
  interleaved rounds): with 20 catch-up passes down to 50 frames, rewinds at 16,000,
  32,000 or 64,000 frames give p99 9-14, 10 and 8 ms at about the same throughput; 4
  passes down to 200 frames, or rewinds every 8,000 frames, give p99 24-37 ms.
- `summary()` gives /_atoll/status the WAL's frames at the last checkpoint, the rewinds
  so far and the percentiles of the writer's pauses before the last REWINDS_KEPT.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from atoll.storage.sqlite.connection import connect
from atoll.storage.writepath import now_ns, percentiles_ms

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 0.05
REWIND_FRAMES = 32_000  # ~128 MB of WAL: a rewind every ~1.5 s under wrk PutItem
REWIND_REST_FRAMES = 50  # what the writer's pause before a rewind aims to copy at most
CATCH_UP_PASSES = 20
REWINDS_KEPT = 64  # the last rewinds whose pauses /_atoll/status summarises


class Checkpointer:
    """The checkpointer thread (its own connection) and the writer's rewinds."""

    def __init__(self, path: str, durable: bool) -> None:
        self.path = path
        self.durable = durable
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        # The WAL, for /_atoll/status: the frames it held at the last checkpoint, and the
        # writer's pauses before the last rewinds (ns).
        self.wal_frames = 0
        self.rewind_pauses: collections.deque[int] = collections.deque(maxlen=REWINDS_KEPT)
        self.rewinds_done = 0

    def start(self, want_rewind: Callable[[], None]) -> None:
        """Start the thread; it calls `want_rewind()` (on its own thread) when the WAL
        is ready to start over, for the writer to `rewind` between two batches."""
        self._worker = threading.Thread(target=self._run, args=(want_rewind,),
                                        name="atoll-checkpointer", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join()

    def _run(self, want_rewind: Callable[[], None]) -> None:
        conn = connect(self.path, self.durable)
        failing = ""  # the error of the failing streak (logged once, not ten times a second)
        try:
            while not self._stop.wait(CHECKPOINT_INTERVAL_S):
                try:
                    frames = self.checkpoint(conn)
                    if frames >= REWIND_FRAMES and self._catch_up(conn, frames):
                        want_rewind()
                except sqlite3.Error as exc:  # busy or I/O trouble: the next round retries
                    if str(exc) != failing:
                        log.warning("checkpoints failing (retried every %.1f s): %s",
                                    CHECKPOINT_INTERVAL_S, exc)
                    failing = str(exc)
                    continue
                if failing:
                    log.warning("checkpoints succeed again")
                    failing = ""
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> int:
        """One PASSIVE checkpoint; returns the frames the WAL holds, all of them copied
        into the database (0 if a reader's older snapshot or another checkpoint kept
        some back: no rewind can happen then). Notes the WAL's frames for the status."""
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.wal_frames = int(frames)
        return int(frames) if not busy and copied == frames else 0

    def _catch_up(self, conn: sqlite3.Connection, frames: int) -> bool:
        """Checkpoint again until a pass finds at most REWIND_REST_FRAMES new frames, so
        the writer's pause before a rewind copies only those; False if held back. After
        CATCH_UP_PASSES passes it answers True anyway: under heavy writes (~10,000 puts/s)
        passes may not converge, and the pause then copies what is left."""
        for _pass in range(CATCH_UP_PASSES):
            more = self.checkpoint(conn)
            if more == 0:
                return False
            if more - frames <= REWIND_REST_FRAMES:
                return True
            frames = more
        return True

    def rewind(self, writer: sqlite3.Connection) -> None:
        """Writer thread, between batches: copy what the WAL holds beyond the last
        checkpoint; with nothing left uncopied, the next write rewinds the WAL."""
        began = now_ns()
        try:
            self.checkpoint(writer)
        except sqlite3.Error as exc:  # the checkpointer's next round asks again
            log.warning("checkpoint before rewinding the WAL failed: %s", exc)
        self.rewind_pauses.append(now_ns() - began)
        self.rewinds_done += 1

    def summary(self) -> dict[str, Any]:
        """The WAL's frames at the last checkpoint, the rewinds so far, and percentiles
        (ms) of the writer's pause before each of the last REWINDS_KEPT."""
        pauses = sorted(self.rewind_pauses)
        return {
            "frames": self.wal_frames, "rewind_frames": REWIND_FRAMES,
            "rewinds": self.rewinds_done,
            "rewind_pause_ms": percentiles_ms(pauses, with_max=True) if pauses else {},
        }
