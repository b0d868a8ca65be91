"""Run wrk with one of bench/lua/*.lua and parse what its Lua `done()` printed.

The Lua side (bench/lua/common.lua) prints one line `BENCH_RESULT {json}` with the request
count, duration, latency percentiles in microseconds, socket errors, HTTP status counts and
up to three sample error bodies. `parse_output` is pure so it is unit-tested on canned text.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
MARKER = "BENCH_RESULT "
# wrk itself stops at -d; this bounds a wedged wrk (e.g. a server that never answers).
WRK_GRACE_S = 30.0


class WrkError(Exception):
    """wrk did not run or printed no BENCH_RESULT line."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    status: dict[int, int]
    socket_errors: dict[str, int]
    error_samples: list[str] = field(default_factory=list)
    # CPU seconds the server's processes used during the run (set by the harness when it
    # started the server; None for an external one)
    server_cpu_s: float | None = None

    @property
    def ok(self) -> int:
        """Responses with a 2xx status: the only ones that count as operations."""
        return sum(n for code, n in self.status.items() if 200 <= code < 300)

    @property
    def errors(self) -> int:
        """Non-2xx responses plus socket errors (connect, read, write, timeout)."""
        return (self.requests - self.ok) + sum(self.socket_errors.values())

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def cpu_us_per_op(self) -> float | None:
        """The server's CPU time per 2xx response, in µs (None if not measured)."""
        if self.server_cpu_s is None or self.ok == 0:
            return None
        return self.server_cpu_s * 1e6 / self.ok


def parse_output(stdout: str) -> WrkResult:
    """Parse wrk's stdout; the last BENCH_RESULT line wins."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise WrkError("wrk printed no BENCH_RESULT line:\n" + stdout[-2000:])
    raw = json.loads(lines[-1][len(MARKER):])
    lat = raw["latency_us"]
    return WrkResult(
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        latency_p50_ms=lat["p50"] / 1000,
        latency_p90_ms=lat["p90"] / 1000,
        latency_p99_ms=lat["p99"] / 1000,
        latency_max_ms=lat["max"] / 1000,
        status={int(code): int(n) for code, n in raw.get("status", {}).items()},
        socket_errors={k: int(v) for k, v in raw.get("socket_errors", {}).items()},
        error_samples=list(raw.get("error_samples", [])),
    )


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(url: str, script: str, *, duration_s: int, connections: int, threads: int,
            env: dict[str, str], timeout_s: float = 5.0) -> WrkResult:
    """One wrk run against `url` with bench/lua/<script>; returns the parsed result."""
    binary = wrk_binary()
    if binary is None:
        raise WrkError("wrk is not installed")
    cmd = [binary, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s",
           f"--timeout={timeout_s:g}s", "-s", str(LUA_DIR / script), url]
    full_env = {**os.environ, **env, "BENCH_LUA_DIR": str(LUA_DIR)}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env,
                              timeout=duration_s + WRK_GRACE_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish within {duration_s + WRK_GRACE_S:g} s") from exc
    if proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise WrkError(f"wrk exited {proc.returncode}: {out}")
    return parse_output(proc.stdout)
