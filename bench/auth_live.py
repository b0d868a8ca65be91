"""Where a signed GetItem's server CPU goes, live: nodes with auth off and required,
driven at the same time, and (with --perf) a native profile of each, split by component.

    .venv/bin/python -m bench.auth_live [--rounds 5] [--seconds 5] [--perf DIR]
        [--nodes off,sigv4,off+hdrs] [--base-src PATH]

Starts one `atoll serve` per node name (bench.auth's start and prepare: durable SQLite,
one ~200-byte item): `off` (--auth off), `sigv4` (--auth required), `off+hdrs` (auth
off, sent the signed request, Authorization and X-Amz-Date included, which it ignores:
what the bigger request alone costs). A name starting `base-` runs the source tree at
--base-src instead of this one (a copy of another build's `src`, compiled or not), so a
change can be measured against the code before it in the same run. Every round drives
all nodes at once, each with its own wrk (bench/lua/signed.lua, one connection set per
node), so a loaded machine's drift hits them alike; each node's CPU per request is its
user and system time from /proc over the round, divided by the requests answered. The
first name is the baseline of the printed differences (medians of per-round
differences; also the ratio of request rates, which a shared machine makes noisy).

--perf DIR: one more round under `perf record --call-graph dwarf` per node; the samples
are split into components by the frames on their stacks (COMPONENTS: the first
component one of whose frames a stack holds takes the sample), each shown as its share
of the node's samples times the node's median CPU per request from the plain rounds.
perf works on compiled code (mypyc, OpenSSL, httptools), which cProfile does not see.
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench import auth
from bench.serve import stop
from bench.wrk import WrkResult, run_wrk

# (component, a substring of a frame's symbol); the first one found on a stack wins.
COMPONENTS = (
    ("SigV4 verification (AccessControl.authenticate)", "AccessControl___authenticate"),
    ("role and internal-table checks", "AccessControl___authorize"),
    ("role and internal-table checks", "check_not_internal"),
    ("the api and engine (GetItem, validation, JSON, stats)", "dispatch___handle_Api"),
    ("the answer (headers, CRC32, write syscall)", "Connection____respond"),
    ("request parse (httptools, header callbacks, Request)", "feed_data"),
    ("read syscall", "uv__read"),
    ("event loop, epoll, other", ""),
)
PERF_HZ = 2999
SIGNED_KEY = ("AKIAEXAMPLEEXAMPLE12", "secret-of-no-node-000000000000000000000000")


@dataclasses.dataclass
class Round:
    result: WrkResult
    user_s: float
    system_s: float


def times_s(pid: int) -> tuple[float, float]:
    """User and system CPU seconds a process used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def drive(nodes: dict[str, auth.Node], envs: dict[str, dict[str, str]], seconds: int,
          connections: int) -> dict[str, Round]:
    """One round: every node driven at once; each node's answers and CPU."""
    out: dict[str, Round] = {}

    def one(name: str) -> None:
        pid = nodes[name].proc.pid
        user0, system0 = times_s(pid)
        result = run_wrk(nodes[name].url, "signed.lua", duration_s=seconds,
                         connections=connections, threads=1, env=envs[name])
        user1, system1 = times_s(pid)
        out[name] = Round(result, user1 - user0, system1 - system0)

    threads = [threading.Thread(target=one, args=(name,)) for name in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, round_ in out.items():
        if round_.result.ok == 0 or round_.result.ok < 0.99 * round_.result.requests:
            raise RuntimeError(f"{name}: {round_.result.ok} of {round_.result.requests} "
                               f"answered 2xx; {round_.result.status}")
    return out


def stacks(script: str) -> Iterator[list[str]]:
    """The stacks of `perf script -F ip,sym` output, innermost frame first."""
    stack: list[str] = []
    for line in script.splitlines():
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[0] in " \t":
            parts = line.split(None, 1)
            stack.append(parts[1] if len(parts) > 1 else "?")
    if stack:
        yield stack


def component_shares(data: Path) -> dict[str, float]:
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym"],
                            capture_output=True, text=True, check=True).stdout
    counts: collections.Counter[str] = collections.Counter()
    for stack in stacks(script):
        frames = "\n".join(stack)
        counts[next(name for name, part in COMPONENTS if part in frames)] += 1
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in counts.items()}


def profile(nodes: dict[str, auth.Node], envs: dict[str, dict[str, str]], seconds: int,
            connections: int, directory: Path) -> dict[str, dict[str, float]]:
    directory.mkdir(parents=True, exist_ok=True)
    perfs = [subprocess.Popen(
        ["perf", "record", "-F", str(PERF_HZ), "--call-graph", "dwarf,16384", "-o",
         str(directory / f"{name}.data"), "-p", str(node.proc.pid), "--", "sleep",
         str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, node in nodes.items()]
    time.sleep(0.5)
    drive(nodes, envs, seconds, connections)
    for perf in perfs:
        perf.wait()
    return {name: component_shares(directory / f"{name}.data") for name in nodes}


def report(rounds: list[dict[str, Round]], names: list[str],
           shares: dict[str, dict[str, float]] | None) -> None:
    def cpu_us(round_: Round) -> float:
        return (round_.user_s + round_.system_s) / round_.result.ok * 1e6

    medians = {n: statistics.median(cpu_us(r[n]) for r in rounds) for n in names}
    print(f"\nserver CPU us per GetItem, medians of {len(rounds)} rounds (user / system):")
    for n in names:
        user = statistics.median(r[n].user_s / r[n].result.ok * 1e6 for r in rounds)
        system = statistics.median(r[n].system_s / r[n].result.ok * 1e6 for r in rounds)
        print(f"  {n:12s} {medians[n]:6.1f}  ({user:.1f} / {system:.1f})")
    base = names[0]
    for n in names[1:]:
        added = statistics.median(cpu_us(r[n]) - cpu_us(r[base]) for r in rounds)
        ratio = statistics.median(r[n].result.ok / r[base].result.ok for r in rounds)
        print(f"  {n} against {base}: {added:+.1f} us per request (median of the rounds' "
              f"differences), request rate x{ratio:.2f}")
    if shares is None:
        return
    print("\nby component (share of the node's perf samples x its median CPU us/req):")
    print("  " + f"{'component':56s}" + "".join(f"{n:>12s}" for n in names))
    for component in dict.fromkeys(name for name, _ in COMPONENTS):
        print(f"  {component:56s}" + "".join(
            f"{shares[n].get(component, 0.0) * medians[n]:12.1f}" for n in names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16, help="per node")
    parser.add_argument("--nodes", default="off,sigv4,off+hdrs")
    parser.add_argument("--base-src", default="", help="the src directory base- nodes run")
    parser.add_argument("--perf", default="", help="directory for perf data (a last round)")
    args = parser.parse_args(argv)
    names = args.nodes.split(",")
    with tempfile.TemporaryDirectory(prefix="atoll-auth-live-") as directory:
        root = Path(directory)
        certs = auth.make_certs(root / "certs")
        nodes: dict[str, auth.Node] = {}
        try:
            for name in names:
                if name.startswith("base-"):
                    os.environ["PYTHONPATH"] = args.base_src
                kind = "sigv4" if "sigv4" in name else "off"
                nodes[name] = auth.start(kind, root / name, certs)
                os.environ.pop("PYTHONPATH", None)
                auth.prepare(nodes[name])
            envs = {name: auth.request_env(
                dataclasses.replace(node, key=SIGNED_KEY) if name.endswith("+hdrs") else node,
                "GetItem") for name, node in nodes.items()}
            rounds = []
            for number in range(args.rounds):
                rounds.append(drive(nodes, envs, args.seconds, args.connections))
                print(f"round {number + 1} (load {os.getloadavg()[0]:.1f}): " + ", ".join(
                    f"{n} {(r.user_s + r.system_s) / r.result.ok * 1e6:.1f} us "
                    f"{r.result.ok / r.result.duration_s:.0f}/s"
                    for n, r in rounds[-1].items()), flush=True)
            shares = profile(nodes, envs, args.seconds, args.connections,
                             Path(args.perf)) if args.perf else None
            report(rounds, names, shares)
        finally:
            stop(node.proc for node in nodes.values())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
