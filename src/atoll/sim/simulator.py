"""The deterministic simulator: several regions running the node's replication code in
one process.

Theory of operation: each region is a store (its "disk": the memory store, or the node's
SQLite store; it survives crashes), a `HybridClock` reading the shared fake time plus the
region's skew, and a `SimRegion` — the shell that drives the node's `ReplicationCore`
(soft state, lost on crash). One seeded `random.Random` is split into independent
streams for the network, the workload and the faults, so the same seed gives the same
run: every step advances time, delivers due envelopes, ticks every live region, and
maybe does a client write and a fault. Then everything heals (partitions, full disks,
crashed regions, lossy links), the cluster runs until every cursor has caught up, and the
checkers judge. With `verify` (SQLite regions only), verify sessions run against the
regions all along and after healing (verification.py); with `verify_faults`, faults that
only verify can find are done after healing, verified and repaired before the checkers
judge. The replication settings are the node's `ReplicationConfig` with small
values, so that long polls, timeouts, backoff, batch and page limits and bounded purges
all happen within a few simulated seconds.

The trace is the list of events (writes, faults, deliveries); its hash identifies a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import traceback
from dataclasses import dataclass, field

from atoll.replication.change import Change, Op
from atoll.replication.config import ReplicationConfig
from atoll.replication.store import ReplicaStore
from atoll.sim import checkers
from atoll.sim.faults import RandomFaults
from atoll.sim.network import LinkFaults, SimNetwork
from atoll.sim.region import Record, SimRegion
from atoll.sim.stores import SqliteStores, StoreKind, store_kind
from atoll.sim.verification import SimVerifier
from atoll.sim.workload import FIRST_TABLE, UPDATED_APART, RandomWorkload
from atoll.storage import SqliteStorage

REGION_NAMES = ("us-east", "eu-west", "ap-south", "sa-east", "af-south")
CONVERGE_CHECK_EVERY_STEPS = 10
START_MS = 1_000_000
DEFAULT_STEPS = 400

SIM_REPLICATION = ReplicationConfig(
    max_batch_changes=16, pull_wait_ms=40, max_pull_wait_ms=100, request_timeout_ms=250,
    direct_stale_ms=150, backoff_min_ms=10, backoff_max_ms=160, held_pause_ms=20,
    retention_interval_ms=100, purge_limit=25, snapshot_page_rows=3, fold_interval_ms=100,
    fold_scan_rows=3, fold_batch_items=2, fold_pages_per_step=2, compact_interval_ms=200)


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int
    regions: int = 3
    steps: int = DEFAULT_STEPS
    store: str = "memory"  # or "sqlite": the node's store and apply transaction
    write_p: float = 0.3
    fault_p: float = 0.02
    heal_steps_max: int = 4000  # a bound on the healing phase: not converged by then = bug
    replication: ReplicationConfig = SIM_REPLICATION
    forge_p: float = 0.0  # per Batch sent: a forged record in it (until the healing)
    verify: bool = False  # verify sessions during the run and after healing (SQLite only)
    verify_faults: bool = False  # and faults only verify finds, after healing (implies verify)
    retire: bool = False  # after healing, the last region leaves; writes and faults go on

    def __post_init__(self) -> None:
        if (self.verify or self.verify_faults) and self.store != "sqlite":
            raise ValueError("verify runs against the node's SQLite store: --store sqlite")

    def replay_command(self) -> str:
        steps = "" if self.steps == DEFAULT_STEPS else f" --steps {self.steps}"
        forge = f" --forge-p {self.forge_p}" if self.forge_p else ""
        verify = " --verify-faults" if self.verify_faults else " --verify" if self.verify else ""
        retire = " --retire" if self.retire else ""
        return (f"python -m atoll.sim --seed {self.seed} --regions {self.regions} "
                f"--store {self.store}{steps}{forge}{verify}{retire}")


@dataclass(slots=True)
class SimResult:
    config: SimConfig
    problems: list[str]
    trace_hash: str
    summary: dict[str, object] = field(default_factory=dict)
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def seed(self) -> int:
        return self.config.seed

    def replay_command(self) -> str:
        return self.config.replay_command()


class Simulation:
    def __init__(self, config: SimConfig, stores: StoreKind | None = None) -> None:
        """`stores`: how regions store their data (default: `config.store`'s kind)."""
        if not 2 <= config.regions <= len(REGION_NAMES):
            raise ValueError(f"regions must be 2..{len(REGION_NAMES)}")
        self.config = config
        root = random.Random(config.seed)
        self.rng = random.Random(root.getrandbits(64))
        self.trace: list[str] = []
        self.regions = REGION_NAMES[:config.regions]
        network_rng = random.Random(root.getrandbits(64))  # drawn first: a seed's run stays
        link_faults = dataclasses.replace(_link_faults(root), forge_p=config.forge_p,
                                          forge_table=FIRST_TABLE)
        self.network = SimNetwork(network_rng, link_faults, self.trace)
        self.workload = RandomWorkload(random.Random(root.getrandbits(64)))
        self.faults = RandomFaults(random.Random(root.getrandbits(64)))
        self.now_ms = START_MS
        self.skew_ms = {r: root.randint(-50, 50) for r in self.regions}
        self.verifier: SimVerifier | None = None
        if config.verify or config.verify_faults:
            self.verifier = SimVerifier(self, config.seed, config.verify_faults)
        drops = self.verifier.drops if self.verifier and config.verify_faults else None
        self.kind = stores if stores is not None else store_kind(
            config.store, None if drops is None else drops.get)
        self.record = Record()
        self.retired: list[str] = []
        self.stores: dict[str, ReplicaStore] = {}
        self.live: dict[str, SimRegion] = {}
        self.disk_full: set[str] = set()
        self.crashes = 0
        self.incarnations = 0
        for region in self.regions:
            self.restart(region)

    # --- FaultTarget -------------------------------------------------------------------
    def up(self) -> list[str]:
        return sorted(self.live)

    def crash(self, region: str) -> None:
        self.crashes += 1
        for name, count in self.live.pop(region).counters().items():
            self.record.count(name, count)

    def restart(self, region: str) -> None:
        def wall_ms(region: str = region) -> int:
            return self.now_ms + self.skew_ms[region]

        store, clock = self.kind.open(region, wall_ms)
        self.stores[region] = store
        self.incarnations += 1
        shell = SimRegion(region, self.regions, store, clock, wall_ms, self.config.replication,
                          self.network, self.rng, self.now_ms, self.incarnations, self.record)
        shell.disk_full = region in self.disk_full
        self.live[region] = shell

    def cut(self, a: str, b: str) -> None:
        self.network.cut(a, b)

    def heal(self) -> None:
        self.network.heal()

    def set_skew(self, region: str, skew_ms: int) -> None:
        self.skew_ms[region] = skew_ms

    def toggle_disk(self, region: str) -> bool:
        full = region not in self.disk_full
        if full:
            self.disk_full.add(region)
        else:
            self.disk_full.discard(region)
        self.live[region].disk_full = full
        return full

    def purge_log(self, region: str) -> None:
        self.live[region].purge_log(self.now_ms)

    # --- what verify needs (verification.Cluster) ----------------------------------------
    def local_write(self, region: str, ops: list[Op]) -> Change | None:
        change = self.live[region].local_write(ops)
        if change is not None:
            self.workload.acked.append(change)
            self._event(f"{region}: wrote {change.origin}/{change.seq} (verify phase)")
        return change

    def storage(self, region: str) -> SqliteStorage:
        if not isinstance(self.kind, SqliteStores):
            raise TypeError("verify runs against the node's SQLite store")
        return self.kind.storages[region]

    def event(self, text: str) -> None:
        self._event(text)

    # --- running -----------------------------------------------------------------------
    def run(self) -> SimResult:
        try:
            self.workload.setup(self.live[self.regions[0]])
            self._run_steps(self.config.steps)
            healed_after = self._heal()
            if self.config.retire and healed_after is not None:
                self.retire(self.regions[-1])
                self._run_steps(self.config.steps // 2)
                healed_after = self._heal()
            verified = [] if self.verifier is None or healed_after is None \
                else self.verifier.after_heal()
            return self._judge(healed_after, verified)
        finally:
            if self.verifier is not None:
                self.verifier.close()
            self.kind.close()

    def _run_steps(self, steps: int) -> None:
        for _ in range(steps):
            self.step()
            if self.rng.random() < self.config.write_p:
                self._event(self.workload.step(self.live))
            if self.rng.random() < self.config.fault_p:
                self._event(self.faults.step(self))

    def step(self) -> None:
        self.now_ms += self.rng.randint(1, 8)
        for src, dst, envelope in self.network.due(self.now_ms):
            shell = self.live.get(dst)
            if shell is None:
                continue  # delivered to a crashed region: lost
            self.trace.append(f"{self.now_ms} {src}>{dst} {envelope.kind} {len(envelope.body)}")
            shell.deliver(src, envelope, self.now_ms)
        for region in self.up():
            self.live[region].tick(self.now_ms)
        if self.verifier is not None:
            self.verifier.tick(self.now_ms)

    def _event(self, text: str) -> None:
        self.trace.append(f"{self.now_ms} {text}")

    def _heal(self) -> int | None:
        self._event("heal everything")
        self.network.heal()
        self.network.calm()
        for region in list(self.disk_full):
            if region in self.live:
                self.toggle_disk(region)
        self.disk_full.clear()
        for region in self.regions:
            if region not in self.live:
                self.restart(region)
        for step in range(self.config.heal_steps_max):
            self.step()
            if step % CONVERGE_CHECK_EVERY_STEPS == 0 and self.caught_up() \
                    and not checkers.folded(self.stores, self.retired) \
                    and not checkers.compacted(self.stores):
                return step
        return None

    def retire(self, region: str) -> None:
        """Take `region` out of the topology for good: every other region follows the
        new topology (the lowest-named one then folds its counter contributions:
        atoll.replication.fold) and the region is stopped; its store is no longer judged."""
        self._event(f"{region} leaves the topology")
        if region in self.live:
            self.crash(region)
        self.regions = tuple(r for r in self.regions if r != region)
        self.retired.append(region)
        del self.stores[region]
        for shell in self.live.values():
            shell.core.set_regions(self.regions, self.now_ms)

    def caught_up(self) -> bool:
        """Every region's cursors equal every origin's own: nothing left in flight (and
        every region holds as much of each region that left as the others)."""
        own = {r: self.stores[r].cursors().get(r) for r in self.regions}
        want = {r: c for r, c in own.items() if c is not None}
        held = [self.stores[r].cursors() for r in self.regions]
        if not all({o: c for o, c in h.items() if o in self.regions} == want for h in held):
            return False
        return all({o: h.get(o) for o in self.retired} == {o: held[0].get(o)
                                                           for o in self.retired}
                   for h in held)

    def _judge(self, healed_after: int | None, verified: list[str]) -> SimResult:
        acked = self.workload.acked
        made = [*acked, *self.record.folds]  # every change a region committed
        problems = [] if healed_after is not None else [
            f"not caught up {self.config.heal_steps_max} steps after healing"]
        problems += verified
        try:
            for check in (checkers.converged(self.stores),
                          checkers.states_converged(self.stores,
                                                    self.record.tombstone_horizon_hlc),
                          checkers.counters_and_sets(self.stores, acked, self.workload.updates),
                          checkers.acknowledged(self.stores, acked,
                                                self.record.tombstone_horizon_hlc, UPDATED_APART),
                          checkers.cursors_gapless(self.stores, made, self.record.adopted),
                          checkers.matches_reference(self.stores, made),
                          checkers.forgeries_refused(self.stores),
                          checkers.folded(self.stores, self.retired),
                          # verify's faults and repairs after healing write rows that
                          # no sweep has met since
                          [] if self.verifier is not None and self.config.verify_faults
                          else checkers.compacted(self.stores)):
                problems.extend(check)
        except Exception as exc:
            if not verified:
                raise
            # rows verify failed to repair (a flipped byte) may not even read back
            problems.append(f"the checkers could not read the regions: {exc!r}")
        for region in self.regions:
            self._event(f"final {region} {sorted(self.stores[region].cursors().items())}")
        return self._result(problems, healed_after)

    def _result(self, problems: list[str], healed_after: int | None) -> SimResult:
        counters = dict(self.record.counters)
        for shell in self.live.values():
            for name, count in shell.counters().items():
                counters[name] = counters.get(name, 0) + count
        if self.verifier is not None:
            counters.update(self.verifier.log.counters())
        summary: dict[str, object] = {
            "store": self.kind.name, "regions": len(self.regions),
            "writes": len(self.workload.acked), "crashes": self.crashes,
            "heal_steps": healed_after, "sim_ms": self.now_ms - START_MS,
            "conflicts": sum(len(s.conflicts()) for s in self.stores.values()),
            **counters, **{f"net_{k}": v for k, v in self.network.stats.items()},
        }
        digest = hashlib.blake2b("\n".join(self.trace).encode(), digest_size=16).hexdigest()
        return SimResult(self.config, problems, digest, summary, self.trace)


def _link_faults(rng: random.Random) -> LinkFaults:
    return LinkFaults(drop_p=rng.choice((0.0, 0.05, 0.2)), dup_p=rng.choice((0.0, 0.05, 0.2)),
                      corrupt_p=rng.choice((0.0, 0.01, 0.05)), delay_min_ms=1,
                      delay_max_ms=rng.choice((5, 30, 120)))


def run(config: SimConfig, stores: StoreKind | None = None) -> SimResult:
    """One seeded run. A run that raises is a failed run, reported with its seed."""
    return run_simulation(Simulation(config, stores))


def run_simulation(simulation: Simulation) -> SimResult:
    """Run a simulation built (and perhaps adjusted by a test) beforehand, as `run` does."""
    config = simulation.config
    try:
        return simulation.run()
    except Exception as exc:
        where = traceback.format_exc(limit=-4).strip().splitlines()
        problems = [f"the simulation raised {type(exc).__name__}: {exc}", *where[1:]]
        return SimResult(config, problems, "", {}, simulation.trace)
