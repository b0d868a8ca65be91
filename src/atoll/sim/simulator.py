"""The deterministic simulator: several regions' real replication code in one process.

Theory of operation: each region is a `MemoryStore` (its "disk": it survives crashes), a
`HybridClock` reading the shared fake time plus the region's skew, and a `Replica` (soft
state, lost on crash). One seeded `random.Random` is split into independent streams for
the network, the workload and the faults, so the same seed gives the same run: every
step advances time, delivers due messages, ticks every live region, and maybe does a
client write and a fault. Then everything heals (partitions, crashed regions, lossy
links), the cluster runs until every cursor has caught up, and the checkers judge.

The trace is the list of events (writes, faults, deliveries); its hash identifies a run.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from atoll.clock.hlc import HybridClock
from atoll.replication.memory_store import MemoryStore
from atoll.replication.replica import Replica, ReplicaConfig
from atoll.sim import checkers
from atoll.sim.faults import RandomFaults
from atoll.sim.network import LinkFaults, SimNetwork
from atoll.sim.workload import RandomWorkload

REGION_NAMES = ("us-east", "eu-west", "ap-south", "sa-east", "af-south")
CONVERGE_CHECK_EVERY_STEPS = 10


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int
    regions: int = 3
    steps: int = 400
    write_p: float = 0.3
    fault_p: float = 0.02
    heal_steps_max: int = 4000  # a bound on the healing phase: not converged by then = bug
    replica: ReplicaConfig = ReplicaConfig(pull_interval_ms=20, pull_timeout_ms=200,
                                           max_batch_changes=16, retention_interval_ms=100)


@dataclass(slots=True)
class SimResult:
    seed: int
    regions: int
    problems: list[str]
    trace_hash: str
    summary: dict[str, object] = field(default_factory=dict)
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def replay_command(self) -> str:
        return f"python -m atoll.sim --seed {self.seed} --regions {self.regions}"


class Simulation:
    def __init__(self, config: SimConfig) -> None:
        if not 2 <= config.regions <= len(REGION_NAMES):
            raise ValueError(f"regions must be 2..{len(REGION_NAMES)}")
        self.config = config
        root = random.Random(config.seed)
        self.rng = random.Random(root.getrandbits(64))
        self.trace: list[str] = []
        self.regions = REGION_NAMES[:config.regions]
        self.network = SimNetwork(random.Random(root.getrandbits(64)), _link_faults(root),
                                  self.trace)
        self.workload = RandomWorkload(random.Random(root.getrandbits(64)))
        self.faults = RandomFaults(random.Random(root.getrandbits(64)))
        self.now_ms = 1_000_000
        self.skew_ms = {r: root.randint(-50, 50) for r in self.regions}
        self.stores = {r: MemoryStore(r) for r in self.regions}
        self.replicas: dict[str, Replica] = {}
        self.crashes = 0
        for region in self.regions:
            self.restart(region)

    # --- FaultTarget -------------------------------------------------------------------
    def up(self) -> list[str]:
        return sorted(self.replicas)

    def crash(self, region: str) -> None:
        self.crashes += 1
        del self.replicas[region]

    def restart(self, region: str) -> None:
        clock = HybridClock(lambda: self.now_ms + self.skew_ms[region])
        self.replicas[region] = Replica(self.stores[region], clock, self.regions, self.now_ms,
                                        self.config.replica, self.rng.randrange(1, 1 << 30))

    def cut(self, a: str, b: str) -> None:
        self.network.cut(a, b)

    def heal(self) -> None:
        self.network.heal()

    def set_skew(self, region: str, skew_ms: int) -> None:
        self.skew_ms[region] = skew_ms

    # --- running -----------------------------------------------------------------------
    def run(self) -> SimResult:
        self.workload.setup(self.replicas[self.regions[0]])
        for _ in range(self.config.steps):
            self._step()
            if self.rng.random() < self.config.write_p:
                self._event(self.workload.step(self.replicas))
            if self.rng.random() < self.config.fault_p:
                self._event(self.faults.step(self))
        healed_after = self._heal()
        return self._judge(healed_after)

    def _step(self) -> None:
        self.now_ms += self.rng.randint(1, 8)
        for src, dst, data in self.network.due(self.now_ms):
            replica = self.replicas.get(dst)
            if replica is None:
                continue  # delivered to a crashed region: lost
            self.trace.append(f"{self.now_ms} {src}>{dst} {len(data)}")
            for peer, reply in replica.receive(src, data, self.now_ms):
                self.network.send(self.now_ms, dst, peer, reply)
        for region in self.up():
            for peer, data in self.replicas[region].tick(self.now_ms):
                self.network.send(self.now_ms, region, peer, data)

    def _event(self, text: str) -> None:
        self.trace.append(f"{self.now_ms} {text}")

    def _heal(self) -> int | None:
        self._event("heal everything")
        self.network.heal()
        self.network.calm()
        for region in self.regions:
            if region not in self.replicas:
                self.restart(region)
        for step in range(self.config.heal_steps_max):
            self._step()
            if step % CONVERGE_CHECK_EVERY_STEPS == 0 and self._caught_up():
                return step
        return None

    def _caught_up(self) -> bool:
        own = {r: self.stores[r].cursors().get(r) for r in self.regions}
        want = {r: c for r, c in own.items() if c is not None}
        return all(self.stores[r].cursors() == want for r in self.regions)

    def _judge(self, healed_after: int | None) -> SimResult:
        acked = self.workload.acked
        problems = [] if healed_after is not None else [
            f"not caught up {self.config.heal_steps_max} steps after healing"]
        for check in (checkers.converged(self.stores),
                      checkers.acknowledged(self.stores, acked),
                      checkers.cursors_gapless(self.stores, acked),
                      checkers.matches_reference(self.stores, acked)):
            problems.extend(check)
        stats = [r.stats for r in self.replicas.values()]
        summary: dict[str, object] = {
            "regions": len(self.regions), "writes": len(acked), "crashes": self.crashes,
            "heal_steps": healed_after, "sim_ms": self.now_ms - 1_000_000,
            "conflicts": sum(len(s.conflicts()) for s in self.stores.values()),
            "refused_records": sum(s.refused_records for s in stats),
            "refused_messages": sum(s.refused_messages for s in stats),
            "purged": sum(s.purged for s in stats),
            "clock_bounded": sum(r.clock.bounded_count for r in self.replicas.values()),
            **{f"net_{k}": v for k, v in self.network.stats.items()},
        }
        for region in self.regions:
            self._event(f"final {region} {self.stores[region].cursors()}")
        digest = hashlib.blake2b("\n".join(self.trace).encode(), digest_size=16).hexdigest()
        return SimResult(self.config.seed, len(self.regions), problems, digest, summary,
                         self.trace)


def _link_faults(rng: random.Random) -> LinkFaults:
    return LinkFaults(drop_p=rng.choice((0.0, 0.05, 0.2)), dup_p=rng.choice((0.0, 0.05, 0.2)),
                      corrupt_p=rng.choice((0.0, 0.01, 0.05)), delay_min_ms=1,
                      delay_max_ms=rng.choice((5, 30, 120)))


def run(config: SimConfig) -> SimResult:
    return Simulation(config).run()
