"""Clock offset estimation and the judgement (atoll.clock.offset), and the HLC's refusal
to stamp local writes while the clock is judged off. Time is always an argument."""

from __future__ import annotations

import logging

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from atoll.clock import HybridClock
from atoll.clock.offset import WINDOW_MS, OffsetSample, PeerOffsets, sample_of
from atoll.errors import ClockOffsetTooLarge, ServiceUnavailable
from atoll.node.clockwatch import ClockWatch

HOUR_MS = 3_600_000


def probe(true_offset_ms: int, sent_ms: int, out_ms: int, back_ms: int, held_ms: int = 0,
          taken_ms: int = 0) -> OffsetSample | None:
    """The sample of a probe to a peer whose clock is `true_offset_ms` ahead of ours,
    taking `out_ms` there and `back_ms` back, held `held_ms` by the peer."""
    received = sent_ms + out_ms + true_offset_ms
    answered = received + held_ms
    return sample_of(sent_ms, received, answered, sent_ms + out_ms + held_ms + back_ms, taken_ms)


def test_a_symmetric_probe_measures_the_offset_exactly() -> None:
    sample = probe(HOUR_MS, sent_ms=1_000, out_ms=3, back_ms=3, held_ms=7)
    assert sample is not None
    assert sample.offset_ms == HOUR_MS
    assert sample.round_trip_ms == 6  # the peer's hold is not part of the round trip
    assert sample.uncertainty_ms == 3


@given(offset=st.integers(-10 * HOUR_MS, 10 * HOUR_MS), out=st.integers(0, 5_000),
       back=st.integers(0, 5_000), held=st.integers(0, 5_000))
def test_the_true_offset_is_always_within_the_uncertainty(offset: int, out: int, back: int,
                                                          held: int) -> None:
    sample = probe(offset, 10_000, out, back, held)
    assert sample is not None
    assert abs(sample.offset_ms - offset) <= sample.uncertainty_ms


def test_a_probe_whose_round_trip_is_negative_is_discarded() -> None:
    # our clock stepped back while the probe was out: t3 - t0 < t2 - t1
    assert sample_of(sent_ms=10_000, received_ms=10_000, answered_ms=10_050,
                     back_ms=10_020, taken_ms=0) is None


def test_the_estimate_is_the_sample_with_the_smallest_round_trip() -> None:
    offsets = PeerOffsets()
    for taken, (out, back) in enumerate([(40, 2), (1, 1), (2, 30)]):
        sample = probe(200, 1_000 * taken, out, back, taken_ms=taken)
        assert sample is not None
        offsets.record("b", sample)
    best = offsets.estimate("b", now_ms=3)
    assert best is not None and best.round_trip_ms == 2 and best.offset_ms == 200


def test_samples_age_out_of_the_window() -> None:
    offsets = PeerOffsets()
    sample = probe(0, 0, 1, 1, taken_ms=0)
    assert sample is not None
    offsets.record("b", sample)
    assert offsets.estimate("b", now_ms=WINDOW_MS) is not None
    assert offsets.estimate("b", now_ms=WINDOW_MS + 1) is None


def test_a_step_of_the_clock_replaces_the_samples_it_contradicts_at_once() -> None:
    offsets = PeerOffsets()
    for n in range(5):  # tight samples at +1 h
        offsets.record("b", probe(HOUR_MS, n * 500, 1, 1, taken_ms=n * 500))  # type: ignore[arg-type]
    # the clock is corrected: one loose sample at 0 contradicts every tight one at +1 h
    offsets.record("b", probe(0, 3_000, 40, 60, taken_ms=3_000))  # type: ignore[arg-type]
    estimate = offsets.estimate("b", now_ms=3_000)
    assert estimate is not None and abs(estimate.offset_ms) <= estimate.uncertainty_ms


def test_samples_kept_per_peer_are_bounded() -> None:
    offsets = PeerOffsets(max_samples=4)
    for n in range(100):
        offsets.record("b", probe(5, n, 1, 1, taken_ms=n))  # type: ignore[arg-type]
    assert len(offsets.samples["b"]) == 4


def _judged(offsets_ms: dict[str, int | None], max_offset_ms: int = 500, rtt_ms: int = 2,
            since_start_ms: int = WINDOW_MS + 1):
    """The judgement `since_start_ms` after the peers entered the view (by default past
    their first window: a peer without an offset is unreachable, not pending)."""
    offsets = PeerOffsets()
    offsets.judge(offsets_ms, now_ms=0, max_offset_ms=max_offset_ms)  # the start: nobody heard
    now = since_start_ms
    for peer, offset in offsets_ms.items():
        if offset is not None:
            sample = probe(offset, 0, rtt_ms // 2, rtt_ms - rtt_ms // 2, taken_ms=now)
            assert sample is not None
            offsets.record(peer, sample)
    return offsets.judge(offsets_ms, now_ms=now, max_offset_ms=max_offset_ms)


@pytest.mark.parametrize(("peers", "off"), [
    # the skewed region of three: both peers see it an hour behind them
    ({"a": -HOUR_MS, "b": -HOUR_MS}, True),
    # a correct region of three: only the skewed peer differs (1 of 2 is no majority)
    ({"a": HOUR_MS, "b": 0}, False),
    ({"a": 400, "b": -499}, False),  # within the maximum either way
    ({"a": 600, "b": 600, "c": 0}, True),  # 2 of 3
    ({"a": 600, "b": 0, "c": 0}, False),  # 1 of 3
    # unreachable peers do not vote; the one that answers decides
    ({"a": HOUR_MS, "b": None}, True),
    ({"a": None, "b": None}, False),  # nobody to judge against: not off
    ({"a": HOUR_MS}, True),  # two regions: each sees the other off, both refuse
    ({}, False),  # a region alone
])
def test_off_means_certainly_beyond_the_maximum_from_a_strict_majority(
        peers: dict[str, int | None], off: bool) -> None:
    judgement = _judged(peers)
    assert judgement.off is off
    assert ("differs from" in judgement.reason()) is off


@pytest.mark.parametrize(("peers", "off"), [
    # a correct region of three that heard the skewed peer first: the other may be within
    # bounds, so no majority yet (it would be, were the unheard peer not counted)
    ({"a": HOUR_MS, "b": None}, False),
    ({"a": HOUR_MS, "b": HOUR_MS, "c": None}, True),  # 2 of 3 whatever c says
    ({"a": HOUR_MS, "b": None, "c": None}, False),
    ({"a": HOUR_MS}, True),  # two regions: nothing to wait for
])
def test_at_start_a_peer_not_heard_from_yet_may_still_vote_against_the_majority(
        peers: dict[str, int | None], off: bool) -> None:
    judgement = _judged(peers, since_start_ms=1_000)
    assert judgement.off is off
    assert set(judgement.pending) == {p for p, o in peers.items() if o is None}


def test_a_peer_heard_once_is_never_pending_again() -> None:
    offsets = PeerOffsets()
    offsets.judge(["a", "b"], now_ms=0, max_offset_ms=500)
    offsets.record("b", probe(0, 0, 1, 1, taken_ms=0))  # type: ignore[arg-type]
    offsets.record("a", probe(HOUR_MS, 0, 1, 1, taken_ms=5_000))  # type: ignore[arg-type]
    # b's sample aged out (unreachable now): it does not vote and is not pending
    judgement = offsets.judge(["a", "b"], now_ms=WINDOW_MS + 500, max_offset_ms=500)
    assert judgement.pending == () and judgement.off


def test_an_offset_within_its_uncertainty_of_the_maximum_is_not_judged_beyond() -> None:
    # 600 ms measured with a 400 ms round trip: the truth may be 400 ms, within bounds
    assert not _judged({"a": 600, "b": 600}, rtt_ms=400).off
    assert _judged({"a": 600, "b": 600}, rtt_ms=100).off


def test_the_reason_names_the_peers_and_their_offsets() -> None:
    reason = _judged({"a": -HOUR_MS, "b": -HOUR_MS}).reason()
    assert "2 of 2 peers" in reason and "a -3600000 ms" in reason and "500 ms" in reason


def test_peers_that_left_are_forgotten() -> None:
    offsets = PeerOffsets()
    offsets.record("gone", probe(0, 0, 1, 1))  # type: ignore[arg-type]
    offsets.keep_only(["b"])
    assert "gone" not in offsets.samples


def test_the_hlc_refuses_local_stamps_while_refusal_is_set_but_observes_remote_ones() -> None:
    now = [1_000_000]
    clock = HybridClock(lambda: now[0])
    first = clock.tick()
    clock.refusal = "this region's clock is off"
    with pytest.raises(ClockOffsetTooLarge) as refused:
        clock.tick()
    assert isinstance(refused.value, ServiceUnavailable)  # answered as a retryable 503
    assert refused.value.message == "this region's clock is off"
    assert clock.refused_count == 1
    remote = clock.observe(first + 10)  # replication in goes on
    assert remote > first + 10
    clock.refusal = None
    assert clock.tick() > remote


def _watch() -> tuple[ClockWatch, HybridClock, list[int]]:
    from atoll.topology.config import ClusterConfig, RegionConfig

    cluster = ClusterConfig("c1", tuple(RegionConfig(r, f"http://127.0.0.1:{8000 + n}",
                                                     f"http://127.0.0.1:{9000 + n}")
                                        for n, r in enumerate(("a", "b", "c"))))
    now = [5_000]
    clock = HybridClock(lambda: now[0])
    return ClockWatch("a", lambda: cluster, clock, lambda: now[0], 500), clock, now


def test_the_time_probe_answers_members_of_the_cluster_only() -> None:
    watch, _clock, now = _watch()
    member = {"x-atoll-cluster": "c1", "x-atoll-region": "b"}
    status, body = watch.serve(member, orjson.dumps({"t0": 123}))
    assert status == 200 and orjson.loads(body) == {"t0": 123, "t1": now[0], "t2": now[0]}
    assert watch.serve({"x-atoll-cluster": "other", "x-atoll-region": "b"}, b'{"t0":1}')[0] == 403
    assert watch.serve({**member, "x-atoll-region": "zz"}, b'{"t0":1}')[0] == 403
    assert watch.serve(member, b'{"t0":"soon"}')[0] == 400
    assert watch.serve(member, b"not json")[0] == 400


def test_refusal_starts_and_ends_with_the_judgement_and_is_logged_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    watch, clock, _now = _watch()
    off = _judged({"b": -HOUR_MS, "c": -HOUR_MS})
    with caplog.at_level(logging.WARNING, logger="atoll.node.clockwatch"):
        for _ in range(5):
            watch._apply(off)
        assert clock.refusal is not None and "differs from 2 of 2 peers" in clock.refusal
        with pytest.raises(ClockOffsetTooLarge):
            clock.tick()
        status = watch.status()
        assert status["refusing_writes"] and status["writes_refused"] == 1
        assert status["peers"]["b"]["beyond_max"] and status["peers"]["b"]["offset_ms"] == -HOUR_MS
        watch._apply(_judged({"b": 3, "c": -2}))
    assert clock.refusal is None and not watch.status()["refusing_writes"]
    clock.tick()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # one when refusal began, one when it ended: not one per round
    assert messages[0].startswith("refusing writes") and "accepting writes again" in messages[1]
