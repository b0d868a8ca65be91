"""`python -m atoll.sim --seed N [--regions K] [--steps S] [--store memory|sqlite]
[--runs R] [--forge-p P] [--trace] [--verify | --verify-faults] [--retire]`: replay one seeded run (or R
runs from N), as the test suite runs
them; a failure prints the command that replays it."""

from __future__ import annotations

import argparse
import sys
import time

from atoll.sim.simulator import DEFAULT_STEPS, SimConfig, run
from atoll.sim.stores import STORE_KINDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atoll.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regions", type=int, default=None,
                        help="2..5 (default: 3 + seed % 3, as the test suite does)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--store", choices=STORE_KINDS, default="memory",
                        help="the regions' store: in memory, or the node's SQLite store")
    parser.add_argument("--runs", type=int, default=1, help="seeds seed..seed+runs-1")
    parser.add_argument("--forge-p", type=float, default=0.0,
                        help="per Batch: the chance of a forged record in it (atoll.sim.forgery)")
    parser.add_argument("--trace", action="store_true", help="print every trace event")
    parser.add_argument("--verify", action="store_true",
                        help="run verify sessions during the run and after it (SQLite store)")
    parser.add_argument("--verify-faults", action="store_true",
                        help="and faults only verify finds, verified and repaired at the end")
    parser.add_argument("--retire", action="store_true",
                        help="after healing, the last region leaves the topology and the "
                             "others fold its counters while writes and faults go on")
    args = parser.parse_args(argv)
    failed = 0
    started = time.perf_counter()
    for seed in range(args.seed, args.seed + args.runs):
        regions = args.regions if args.regions is not None else 3 + seed % 3
        result = run(SimConfig(seed=seed, regions=regions, steps=args.steps, store=args.store,
                               forge_p=args.forge_p, verify=args.verify,
                               verify_faults=args.verify_faults, retire=args.retire))
        if args.trace:
            print("\n".join(result.trace))
        status = "ok" if result.ok else "FAILED"
        print(f"seed {seed}: {status} trace {result.trace_hash} {result.summary}")
        for problem in result.problems:
            print(f"  - {problem}")
        if not result.ok:
            failed += 1
            print(f"  replay: {result.replay_command()}")
    elapsed_s = time.perf_counter() - started
    print(f"{args.runs - failed}/{args.runs} runs ok in {elapsed_s:.2f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
