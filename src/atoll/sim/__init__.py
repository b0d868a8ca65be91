"""Deterministic simulation of a multi-region cluster (seeded network, clock, crashes).

`python -m atoll.sim --seed N` replays one run. Pieces: `network` (the fake wire),
`workload` (clients), `faults` (what goes wrong), `checkers` (what must hold),
`region` (one region's shell around the node's replication core), `stores`
(memory or the node's SQLite store), `verification` (the node's verify protocol run
against the regions, and the faults only verify can find), `simulator` (the loop that
composes them).
"""

from atoll.sim.simulator import SimConfig, SimResult, Simulation, run

__all__ = ["SimConfig", "SimResult", "Simulation", "run"]
