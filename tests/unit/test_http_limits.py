"""Connection limits as policy (atoll.http.limits, atoll.http.connections), without sockets.

The cap leaves room below the open-file limit for everything else a node opens; at the
cap the connection that made progress longest ago is closed — idle before one whose
request is still arriving, never one being answered — or, if the oldest are all being
answered, the new one is refused. Pressure shortens the timeouts in force; each kind of
pressure is logged at most once per interval, with its count; a flood marks memory to be
handed back once it is over.
"""

from __future__ import annotations

import collections
import logging
import platform
import resource
import subprocess
import sys
from typing import Any

import pytest

from atoll.http.connections import EVICTION_SCAN, ConnectionTable
from atoll.http.limits import (
    ConnectionLimits,
    PressureLog,
    default_max_connections,
    release_free_memory,
    split_connections,
)


class FakeConnection:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False
        self.begun: float | None = None
        self.busy = False
        self.queue: collections.deque[Any] = collections.deque()
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True
        self.closed = True

    def __repr__(self) -> str:
        return self.name


def table(cap: int, **limits: Any) -> ConnectionTable:
    return ConnectionTable(ConnectionLimits(max_connections=cap, **limits), 16 << 20)


def fill(t: ConnectionTable, count: int) -> list[FakeConnection]:
    connections = [FakeConnection(f"c{i}") for i in range(count)]
    for connection in connections:
        assert t.admit(connection)
    return connections


@pytest.mark.parametrize("open_files,cap", [
    (1024, 896), (4096, 3584), (20000, 17500), (1 << 20, 65536), (100, 16), (10, 16)])
def test_the_default_cap_leaves_room_below_the_open_file_limit(open_files: int, cap: int) -> None:
    assert default_max_connections(open_files) == cap


def test_a_node_splits_its_descriptors_between_client_and_peer_ports() -> None:
    assert split_connections(1024, None, peers=False) == (896, 0)
    client, peer = split_connections(1024, None, peers=True)
    assert peer == 56 and client + peer == 896
    assert split_connections(20000, None, peers=True)[1] == 256  # peers need few
    assert split_connections(1024, 5000, peers=True) == (5000, 56)  # the operator's cap wins


def test_the_soft_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, soft)
    script = ("import resource; from atoll.http.limits import raise_open_file_limit; "
              "print(*raise_open_file_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard)))
    before, after, reported_hard, soft_now, hard_now = map(int, out.stdout.split())
    assert before == low
    assert after == soft_now == hard_now == reported_hard == hard


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        ConnectionLimits(max_connections=0)
    with pytest.raises(ValueError):
        ConnectionLimits(pressure_fraction=0)
    with pytest.raises(ValueError):
        ConnectionLimits(pressure_request_timeout_s=0)


def test_at_the_cap_the_connection_that_made_progress_longest_ago_is_closed() -> None:
    t = table(4)
    a, b, c, d = fill(t, 4)
    t.open.move_to_end(a)  # a got an answer: now the most recent
    e = FakeConnection("e")
    assert t.admit(e)
    assert b.evicted and not a.evicted
    assert list(t.open) == [c, d, a, e]
    assert t.evicted_total == 1 and t.accepted_total == 5 and t.peak_open == 4


def test_idle_connections_go_before_ones_still_receiving_and_busy_ones_never() -> None:
    t = table(3)
    busy, receiving, idle = fill(t, 3)
    busy.busy = True
    receiving.begun = 1.0
    assert t.admit(FakeConnection("new1"))
    assert idle.evicted and not receiving.evicted and not busy.evicted
    assert t.admit(FakeConnection("new2"))  # the new1 connection is idle too, but newer
    assert receiving.evicted is False and [c.name for c in t.open][:1] == ["c0"]


def test_a_receiving_connection_is_closed_when_no_idle_one_is_near_the_head() -> None:
    t = table(2)
    busy, receiving = fill(t, 2)
    busy.queue.append("an answer still to send")
    receiving.begun = 1.0
    assert t.admit(FakeConnection("new"))
    assert receiving.evicted and not busy.evicted


def test_when_the_oldest_are_all_being_answered_the_new_connection_is_refused() -> None:
    t = table(EVICTION_SCAN + 1)
    connections = fill(t, EVICTION_SCAN + 1)
    for connection in connections[:EVICTION_SCAN]:
        connection.busy = True
    # the only idle one is past the scanned head: admission stays O(1), so it refuses
    assert not t.admit(FakeConnection("new"))
    assert t.refused_total == 1 and t.evicted_total == 0
    assert not any(c.evicted for c in connections)


def test_a_lingering_connection_is_evicted_first() -> None:
    t = table(2)
    busy, lingering = fill(t, 2)
    busy.busy = True
    lingering.closed = True
    lingering.begun = 2.0
    assert t.admit(FakeConnection("new"))
    assert lingering.evicted


def test_pressure_shortens_the_timeouts_and_ends_when_connections_fall() -> None:
    t = table(8, request_timeout_s=60, pressure_request_timeout_s=5, idle_timeout_s=300,
              pressure_idle_timeout_s=30, pressure_fraction=0.5)
    connections = fill(t, 3)
    assert not t.under_pressure and t.request_timeout_s == 60 and t.idle_timeout_s == 300
    connections.append(FakeConnection("fourth"))
    assert t.admit(connections[-1])  # 4 of 8: pressure at once, not at the next sweep
    assert t.under_pressure and t.request_timeout_s == 5 and t.idle_timeout_s == 30
    t.judge_pressure()
    assert t.under_pressure
    for connection in connections[:2]:
        t.discard(connection)
    t.judge_pressure()
    assert not t.under_pressure and t.request_timeout_s == 60 and t.idle_timeout_s == 300


def test_an_eviction_since_the_last_sweep_is_pressure_even_below_the_threshold() -> None:
    t = table(2, pressure_fraction=1.0)
    fill(t, 2)
    t.judge_pressure()
    assert t.under_pressure  # 2 of 2
    t.discard(next(iter(t.open)))
    t.judge_pressure()
    assert not t.under_pressure
    assert t.admit(FakeConnection("x")) and t.admit(FakeConnection("y"))  # y evicted one
    t.discard(next(iter(t.open)))  # back below the threshold before the sweep
    t.judge_pressure()
    assert t.under_pressure and t.request_timeout_s == 5.0
    t.judge_pressure()
    assert not t.under_pressure


def test_the_pressure_log_reports_each_kind_once_per_interval_with_counts() -> None:
    log = PressureLog(interval_s=10.0)
    assert log.due(0.0) == []
    log.note("evicted")
    log.note("evicted", 4)
    log.note("slow")
    assert log.due(100.0) == [("evicted", 5), ("slow", 1)]
    log.note("evicted", 7)
    log.note("idle", 2)
    assert log.due(105.0) == [("idle", 2)]  # evicted: within its interval, kept and counted
    log.note("evicted")
    log.note("idle")
    assert log.due(110.0) == [("evicted", 8)]
    assert log.due(114.0) == []
    assert log.due(115.0) == [("idle", 1)]
    assert log.due(200.0) == []


def test_the_table_logs_counts_not_connections(caplog: pytest.LogCaptureFixture) -> None:
    t = table(2, log_interval_s=10.0)
    fill(t, 2)
    for i in range(50):
        assert t.admit(FakeConnection(f"flood{i}"))
    t.judge_pressure()
    with caplog.at_level(logging.WARNING, logger="atoll.http.server"):
        t.report(1000.0)
        t.report(1001.0)
    lines = [r.getMessage() for r in caplog.records]
    evicted = [line for line in lines if "closed to admit new ones" in line]
    assert evicted == ["50 connections closed to admit new ones (those that made progress "
                       "longest ago first); 2 open, cap 2"], lines
    assert any(line.startswith("connection pressure began 1 time(s): 2 open, cap 2")
               for line in lines), lines


def test_memory_is_handed_back_once_a_flood_is_over() -> None:
    t = table(4, pressure_fraction=0.5)
    connections = fill(t, 2)  # pressure: a flood
    t.judge_pressure()
    t.release_after_flood()
    assert t.memory_releases_total == 0  # not while it lasts
    for connection in connections:
        t.discard(connection)
    t.judge_pressure()
    t.release_after_flood()
    released = 1 if platform.libc_ver()[0] == "glibc" else 0
    assert t.memory_releases_total == released
    t.judge_pressure()
    t.release_after_flood()
    assert t.memory_releases_total == released  # once per flood
    t.refused_request("head")  # a refusal marks a flood too
    t.release_after_flood()
    assert t.memory_releases_total == 2 * released
    assert release_free_memory() is bool(released)
