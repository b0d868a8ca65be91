"""The simulated network: seeded delays, loss, duplication, reordering, corruption and
partitions (full or partial), between regions in one process.

Theory of operation: what travels is an `Envelope`: a request (a Pull, a snapshot
request) or the answer to one, with the reference a real connection would give (which
request of which incarnation of the sender it answers) and the bytes the node would put
in an HTTP body. `send` schedules an envelope for delivery at now + a random delay;
`due(now)` hands back, in (time, send order) order, the envelopes whose time has come.
Random delays reorder them; `drop_p`, `dup_p` and `corrupt_p` lose, duplicate and damage
them (only the bytes: the checksums in every message must catch it); `forge_p` puts a
forged, correctly checksummed record into a Batch (atoll.sim.forgery: admission must
refuse it). A cut between two
regions (`cut(a, b)`) drops everything between them, including envelopes already in
flight when they arrive, so A–C can be cut while both still reach B. Every random choice
comes from the `random.Random` given by the caller, so a seed replays the same run.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import NamedTuple

from atoll.replication.protocol import Batch, decode_message, encode_message
from atoll.sim.forgery import forge_batch

MAX_IN_FLIGHT = 20_000  # a full "wire" drops new messages, like a full socket buffer

PULL = "pull"  # request: a Pull
BATCH = "batch"  # answer: a Batch
SNAPSHOT = "snapshot"  # request: a snapshot request
SNAPSHOT_ANSWER = "snapshot-answer"  # answer: a snapshot head or page
REFUSED = "refused"  # answer: the request was refused (the node's 400 or 403)


class Envelope(NamedTuple):
    kind: str
    ref: tuple[int, int]  # (incarnation of the requesting region, its request number)
    body: bytes


@dataclass(frozen=True, slots=True)
class LinkFaults:
    drop_p: float = 0.0
    dup_p: float = 0.0
    corrupt_p: float = 0.0
    delay_min_ms: int = 1
    delay_max_ms: int = 20
    forge_p: float = 0.0
    forge_table: str = "t0"  # forgeries write into this table (one never deleted)


class SimNetwork:
    def __init__(self, rng: random.Random, faults: LinkFaults, trace: list[str]) -> None:
        self.rng = rng
        self.faults = faults
        self.trace = trace
        self.cuts: set[frozenset[str]] = set()
        self._queue: list[tuple[int, int, str, str, Envelope]] = []
        self._sent = 0
        self.stats = {"sent": 0, "dropped": 0, "duplicated": 0, "corrupted": 0, "forged": 0,
                      "delivered": 0}

    # --- partitions --------------------------------------------------------------------
    def cut(self, a: str, b: str) -> None:
        self.cuts.add(frozenset((a, b)))

    def heal(self) -> None:
        self.cuts.clear()

    def connected(self, a: str, b: str) -> bool:
        return frozenset((a, b)) not in self.cuts

    def calm(self) -> None:
        """No more loss, duplication or corruption (the healing phase)."""
        self.faults = LinkFaults(delay_min_ms=self.faults.delay_min_ms,
                                 delay_max_ms=self.faults.delay_max_ms,
                                 forge_table=self.faults.forge_table)

    # --- traffic -----------------------------------------------------------------------
    def send(self, now_ms: int, src: str, dst: str, data: Envelope) -> None:
        f, rng = self.faults, self.rng
        self.stats["sent"] += 1
        if not self.connected(src, dst) or rng.random() < f.drop_p or len(self._queue) >= MAX_IN_FLIGHT:
            self.stats["dropped"] += 1
            return
        copies = 2 if rng.random() < f.dup_p else 1
        self.stats["duplicated"] += copies - 1
        for _ in range(copies):
            payload = data
            if data.body and rng.random() < f.corrupt_p:
                payload = data._replace(body=self._corrupt(data))
                self.stats["corrupted"] += 1
            elif f.forge_p and data.kind == BATCH and rng.random() < f.forge_p:
                forged = forge_batch(rng, data.body, f.forge_table)
                if forged is not None:
                    payload = data._replace(body=forged[0])
                    self.stats["forged"] += 1
                    self.trace.append(f"{now_ms} {src}>{dst} forged {forged[1]}")
            at = now_ms + rng.randint(f.delay_min_ms, f.delay_max_ms)
            self._sent += 1
            heapq.heappush(self._queue, (at, self._sent, src, dst, payload))

    def due(self, now_ms: int) -> list[tuple[str, str, Envelope]]:
        out = []
        while self._queue and self._queue[0][0] <= now_ms:
            _, _, src, dst, data = heapq.heappop(self._queue)
            if self.connected(src, dst):
                out.append((src, dst, data))
                self.stats["delivered"] += 1
            else:
                self.stats["dropped"] += 1
        return out

    def in_flight(self) -> int:
        return len(self._queue)

    def _corrupt(self, envelope: Envelope) -> bytes:
        """Half the time damage the frame (the message checksum catches it); otherwise,
        for a Batch, damage one record inside a well-framed message, as a buggy peer or
        a bad disk would (the record's own checksum catches it)."""
        rng, data = self.rng, envelope.body
        if rng.random() < 0.5 or envelope.kind != BATCH:
            return _flip(rng, data)
        message = decode_message(data)
        if not isinstance(message, Batch) or not message.records:
            return _flip(rng, data)
        records = list(message.records)
        i = rng.randrange(len(records))
        records[i] = _flip(rng, records[i])
        damaged = Batch(message.request_id, tuple(records), message.has_more, message.log_start)
        return encode_message(damaged)


def _flip(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + bytes((data[i] ^ (1 << rng.randrange(8)),)) + data[i + 1:]
