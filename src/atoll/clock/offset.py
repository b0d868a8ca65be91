"""Clock offsets to peers, measured NTP-style, and whether this region's clock is off.

Theory of operation
- A probe is four wall-clock stamps in milliseconds: t0 when this region sent it, t1
  when the peer received it, t2 when the peer answered, t3 when the answer arrived
  here. The peer's clock minus ours is offset = ((t1 - t0) + (t2 - t3)) / 2, and the
  true offset lies within ± round_trip / 2 of it, round_trip = (t3 - t0) - (t2 - t1),
  however the round trip splits between the two directions. A probe with a negative
  round trip (a clock stepped while it was out) is discarded.
- Per peer, the samples of the last `window_ms` are kept (at most MAX_SAMPLES). The
  estimate is the sample with the smallest round trip: its interval is the tightest
  (queueing on a busy machine only widens an interval, it does not move the truth out
  of it). A kept sample whose interval does not overlap the newest one's was taken
  before a clock moved (a step, a correction): it is dropped, so a step is seen at the
  next probe, and a corrected clock counts as corrected at the next probe rather than
  after the window.
- The judgement follows CockroachDB's rule: this region's clock is off when it is
  *certainly* more than `max_offset_ms` away (|offset| - uncertainty > max) from a
  strict majority of the peers it has a fresh estimate for. Peers without one (not
  reachable) do not vote; with no votes at all the region cannot judge and is not off,
  so a partitioned region keeps taking writes (active-active). With a single peer (two
  regions) both regions see the same difference and both are off: nothing can tell
  which of the two clocks is wrong.
- A peer never heard from since it entered this region's view (a node starting, or a
  region joining) is *pending* for one window: it has not voted yet, but may, so the
  majority must hold even if every pending peer turns out within bounds (beyond >
  (voters + pending) / 2). Without it, a correct region that started beside a skewed
  one and measured it first would refuse writes until it heard from the others: the
  verdict would depend on which probe came back first. A peer silent for a whole window
  stops being pending and no longer counts.

Time is an argument everywhere (`now_ms` is a monotonic reading for the ages of
samples; the four stamps are wall-clock readings): nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from atoll.invariant import invariant

DEFAULT_MAX_OFFSET_MS = 500
WINDOW_MS = 10_000  # how long a sample can stand for the current offset
MAX_SAMPLES = 32  # per peer (a probe every 0.5 s fills 20 in the window)


@dataclass(frozen=True, slots=True)
class OffsetSample:
    """One probe's result: the peer's clock minus ours, within ± uncertainty_ms."""

    offset_ms: float
    round_trip_ms: float
    taken_ms: int  # monotonic, for its age

    @property
    def uncertainty_ms(self) -> float:
        return self.round_trip_ms / 2

    def overlaps(self, other: OffsetSample) -> bool:
        """Could both samples describe the same offset (their intervals meet)?"""
        return (abs(self.offset_ms - other.offset_ms)
                <= self.uncertainty_ms + other.uncertainty_ms)

    def beyond(self, max_offset_ms: float) -> bool:
        """Is the offset certainly larger than `max_offset_ms`, either way?"""
        return abs(self.offset_ms) - self.uncertainty_ms > max_offset_ms


def sample_of(sent_ms: int, received_ms: int, answered_ms: int, back_ms: int,
              taken_ms: int) -> OffsetSample | None:
    """The sample of one probe (t0 sent here, t1 received there, t2 answered there, t3
    back here), or None if its round trip is negative (a clock stepped meanwhile)."""
    round_trip = (back_ms - sent_ms) - (answered_ms - received_ms)
    if round_trip < 0 or answered_ms < received_ms:
        return None
    offset = ((received_ms - sent_ms) + (answered_ms - back_ms)) / 2
    return OffsetSample(offset, float(round_trip), taken_ms)


@dataclass(frozen=True, slots=True)
class ClockJudgement:
    """Whether this region's clock is off, and the estimates it was judged on."""

    off: bool
    max_offset_ms: int
    estimates: Mapping[str, OffsetSample | None]  # per peer; None: no fresh sample
    beyond: tuple[str, ...]  # peers this region's clock is certainly too far from
    pending: tuple[str, ...] = ()  # peers not heard from yet, within their first window

    @property
    def voters(self) -> int:
        return sum(1 for e in self.estimates.values() if e is not None)

    def reason(self) -> str:
        """One line for logs and errors."""
        if not self.off:
            return "within bounds"
        offsets = ", ".join(f"{p} {self.estimates[p].offset_ms:+.0f} ms"  # type: ignore[union-attr]
                            for p in self.beyond)
        return (f"this region's clock differs from {len(self.beyond)} of {self.voters} peers "
                f"by more than {self.max_offset_ms} ms (peer minus ours: {offsets})")


@dataclass(slots=True)
class PeerOffsets:
    """Recent samples per peer, the estimate of each, and the judgement."""

    window_ms: int = WINDOW_MS
    max_samples: int = MAX_SAMPLES
    samples: dict[str, list[OffsetSample]] = field(default_factory=dict)
    first_seen_ms: dict[str, int] = field(default_factory=dict)  # monotonic, per peer
    heard: set[str] = field(default_factory=set)  # peers with a sample ever recorded

    def __post_init__(self) -> None:
        invariant(self.window_ms > 0 and self.max_samples > 0, "window and samples must be > 0")

    def record(self, peer: str, sample: OffsetSample) -> None:
        """Keep `sample`; drop the samples it contradicts (taken before a clock moved)
        and the oldest beyond MAX_SAMPLES."""
        kept = [s for s in self.samples.get(peer, ()) if s.overlaps(sample)]
        kept.append(sample)
        self.samples[peer] = kept[-self.max_samples:]
        self.heard.add(peer)

    def estimate(self, peer: str, now_ms: int) -> OffsetSample | None:
        """The fresh sample with the smallest round trip, or None."""
        fresh = [s for s in self.samples.get(peer, ()) if now_ms - s.taken_ms <= self.window_ms]
        self.samples[peer] = fresh  # what aged out never comes back
        return min(fresh, key=lambda s: s.round_trip_ms) if fresh else None

    def keep_only(self, peers: Iterable[str]) -> None:
        """Forget peers that left the topology."""
        wanted = set(peers)
        for gone in [p for p in self.samples if p not in wanted]:
            del self.samples[gone]
        for gone in [p for p in self.first_seen_ms if p not in wanted]:
            del self.first_seen_ms[gone]
        self.heard &= wanted

    def judge(self, peers: Iterable[str], now_ms: int, max_offset_ms: int) -> ClockJudgement:
        """Is this region's clock off from a strict majority of the peers it can judge,
        whatever the peers not heard from yet turn out to say?"""
        estimates = {p: self.estimate(p, now_ms) for p in sorted(peers)}
        for peer in estimates:
            self.first_seen_ms.setdefault(peer, now_ms)
        beyond = tuple(p for p, e in estimates.items()
                       if e is not None and e.beyond(max_offset_ms))
        pending = tuple(p for p in estimates if p not in self.heard
                        and now_ms - self.first_seen_ms[p] <= self.window_ms)
        voters = sum(1 for e in estimates.values() if e is not None)
        off = voters > 0 and 2 * len(beyond) > voters + len(pending)
        return ClockJudgement(off, max_offset_ms, estimates, beyond, pending)
