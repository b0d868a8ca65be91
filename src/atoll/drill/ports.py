"""Loopback ports for listeners that must be named before they bind.

A cluster's topology names every region's ports before any region starts, so the drill
(and the test helpers) pick a port that is free now and hand it to a process that binds
it a second or so later. Two things can take the port in that gap:

- an outgoing connection: a client socket takes its local port from the kernel's
  ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), so a port the kernel chose
  with `bind(port 0)` lies where any connection on the machine (a boto3 client, a node
  pulling from a peer that is not up yet) may take it; ports here are drawn from below
  that range, where no connection takes one by itself;
- another picker: a `PortPicker` never hands out a port twice, and pickers in other
  processes (pytest-xdist workers) are given disjoint ranges by their caller.

A port some other process holds is seen by the bind check and skipped.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

PORTS_LOW = 10_000  # above the well-known and registered ports services commonly listen on
LINUX_EPHEMERAL_LOW = 32_768
MIN_RANGE_PORTS = 1_000  # room below the ephemeral range; with less, the kernel chooses
PICK_ATTEMPTS = 200
LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default if unreadable)."""
    try:
        return int(LOCAL_PORT_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return LINUX_EPHEMERAL_LOW


def below_ephemeral_range() -> tuple[int, int]:
    """[PORTS_LOW, the first ephemeral port); (0, 0), the kernel's choice, where that
    leaves fewer than MIN_RANGE_PORTS (a machine whose ephemeral range starts low)."""
    low, high = PORTS_LOW, ephemeral_low()
    return (low, high) if high - low >= MIN_RANGE_PORTS else (0, 0)


class PortPicker:
    """Hands out loopback ports from [low, high) (low == high: ports the kernel chose),
    each at most once, each free when handed out (a bind check). Called as a function:
    `port = picker()`. Pickers that share `handed_out` never hand out one port twice."""

    def __init__(self, low: int, high: int, rng: random.Random,
                 handed_out: set[int] | None = None) -> None:
        self.low = low
        self.high = high
        self.rng = rng
        self.handed_out = handed_out if handed_out is not None else set()

    def __call__(self) -> int:
        for _ in range(PICK_ATTEMPTS):
            port = self.rng.randrange(self.low, self.high) if self.high > self.low else 0
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue  # held by another process
                port = int(probe.getsockname()[1])
            if port not in self.handed_out:
                self.handed_out.add(port)
                return port
        raise RuntimeError(f"no free loopback port in [{self.low}, {self.high})")


def below_ephemeral(rng: random.Random | None = None) -> PortPicker:
    """A picker over every port from PORTS_LOW up to the kernel's ephemeral range."""
    return PortPicker(*below_ephemeral_range(), rng or random.Random())
