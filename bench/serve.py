"""Starting and stopping `atoll serve` processes for the benches that compare builds or
settings side by side (bench.gsi_put, bench.itemstate, bench.trees, bench.auth,
bench.auth_live, bench.streams): one way to wait for a node's /health, to stop nodes, to
read a process's CPU time and a node's write counters (system time, bytes written to disk,
write jobs and group commits)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STOP_TIMEOUT_S = 15.0


def wait_healthy(proc: subprocess.Popen[bytes], url: str, timeout_s: float,
                 what: str = "atoll serve", context: ssl.SSLContext | None = None) -> None:
    """Return once `url`/health answers; kill `proc` and raise if it does not in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1, context=context):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not start")


def serve(port: int, args: Sequence[str], cwd: str, timeout_s: float,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`atoll serve --port PORT ARGS` on 127.0.0.1, output discarded, once healthy."""
    proc = subprocess.Popen([sys.executable, "-m", "atoll", "serve", "--port", str(port),
                             *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(proc, f"http://127.0.0.1:{port}", timeout_s)
    return proc


def stop(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then wait for each (SIGKILL after STOP_TIMEOUT_S)."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class WriteCounters:
    """A node's counters for what its writes cost: system CPU seconds and bytes written
    to disk by its process (Linux /proc), write jobs and group commits (its /metrics)."""
    system_s: float
    disk_bytes: int
    writes: int
    commits: int


def write_counters(pid: int, url: str) -> WriteCounters:
    """The counters of the node `pid` serving `url`, now."""
    with open(f"/proc/{pid}/stat") as stat:
        system_ticks = int(stat.read().rpartition(")")[2].split()[12])
    with open(f"/proc/{pid}/io") as io:
        fields = dict(line.split(": ", 1) for line in io.read().splitlines() if ": " in line)
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    return WriteCounters(system_ticks / os.sysconf("SC_CLK_TCK"), int(fields["write_bytes"]),
                         _counter(metrics, "atoll_writes_total"),
                         _counter(metrics, "atoll_write_batches_total"))


def _counter(metrics: str, name: str) -> int:
    """A counter's value in Prometheus text exposition."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise RuntimeError(f"{name} is not in /metrics")
