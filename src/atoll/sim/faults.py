"""Faults: what goes wrong, separate from workloads and checkers.

Theory of operation: `RandomFaults.step` picks one fault and applies it to a
`FaultTarget` (the simulator here; a live cluster or `atoll drill` can implement the same
verbs): a full partition into two sides, a partial one (one pair cut, both still reach
the rest), healing, a crash, a restart, a clock jump (sometimes beyond the HLC's skew
bound), a full disk (every write fails until it is freed), or a purge of a region's
changelog regardless of what the others acknowledged (as the bounded maximum does), so
that regions behind it must be rebuilt from a snapshot. Link faults (loss, duplication,
corruption, delay) are the network's.
"""

from __future__ import annotations

import random
from typing import Protocol


class FaultTarget(Protocol):
    regions: tuple[str, ...]

    def up(self) -> list[str]: ...
    def crash(self, region: str) -> None: ...
    def restart(self, region: str) -> None: ...
    def cut(self, a: str, b: str) -> None: ...
    def heal(self) -> None: ...
    def set_skew(self, region: str, skew_ms: int) -> None: ...
    def toggle_disk(self, region: str) -> bool: ...
    def purge_log(self, region: str) -> None: ...


SKEWS_MS = (-2000, -100, 0, 150, 7000)  # 7000 is beyond the default 5000 ms bound


class RandomFaults:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def step(self, target: FaultTarget) -> str:
        rng = self.rng
        regions = list(target.regions)
        up = target.up()
        down = [r for r in regions if r not in up]
        kind = rng.choice(("partition", "cut", "cut", "heal", "crash", "restart", "skew",
                           "disk", "purge-log"))
        if kind == "partition":
            side = set(rng.sample(regions, k=rng.randint(1, len(regions) - 1)))
            for a in side:
                for b in regions:
                    if b not in side:
                        target.cut(a, b)
            return f"partition {sorted(side)} | {sorted(set(regions) - side)}"
        if kind == "cut":
            a, b = rng.sample(regions, k=2)
            target.cut(a, b)
            return f"cut {a}-{b}"
        if kind == "crash" and len(up) > 1:
            region = rng.choice(up)
            target.crash(region)
            return f"crash {region}"
        if kind == "restart" and down:
            region = rng.choice(down)
            target.restart(region)
            return f"restart {region}"
        if kind == "skew":
            region, skew_ms = rng.choice(regions), rng.choice(SKEWS_MS)
            target.set_skew(region, skew_ms)
            return f"skew {region} {skew_ms:+d}ms"
        if kind == "disk" and up:
            region = rng.choice(up)
            return f"disk {region} {'full' if target.toggle_disk(region) else 'freed'}"
        if kind == "purge-log" and up:
            region = rng.choice(up)
            target.purge_log(region)
            return f"purge-log {region}"
        target.heal()
        return "heal"
