"""The systems under test: install each (pinned, idempotent), start it on loopback, stop it.

One small class per system with a common interface (`System`):
  install()  put the pinned peer into bench/.peers/ if it is not there yet
  start()    spawn the server on 127.0.0.1:<free port> and wait until it answers
  peak_rss_kib()  VmHWM of the server process plus its descendants
  stop()     SIGTERM, then SIGKILL after a bound
`External` wraps a URL given with --target: nothing to install, start or measure.

Servers are started directly (node, not npx; the venv's script, not a shell) so the pid
we hold is the server's and its VmHWM is the server's memory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from bench.workloads import Client, DynamoError

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / ".peers"
DATA_DIR = PEERS_DIR / "data"
LOG_DIR = PEERS_DIR / "logs"
PINS = tomllib.loads((BENCH_DIR / "peers.toml").read_text())

READY_TIMEOUT_S = 60.0
# After a wrk run a slow server may still be working through requests wrk gave up on; it
# must not steal the CPU from the next system's run. Idle = under 5% CPU for 0.3 s.
SETTLE_TIMEOUT_S = 15.0
SETTLE_WINDOW_S = 0.3
SETTLE_IDLE_FRACTION = 0.05
STOP_TIMEOUT_S = 10.0
INSTALL_TIMEOUT_S = 600.0


class SystemUnavailable(Exception):
    """A system could not be installed or started; the run goes on without it."""


# --- installing ---------------------------------------------------------------------------

def _run(cmd: list[str], what: str) -> None:
    print(f"  installing {what}: {' '.join(cmd)}", flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise SystemUnavailable(f"installing {what} took over {INSTALL_TIMEOUT_S:g} s") from exc
    if proc.returncode != 0:
        raise SystemUnavailable(f"installing {what} failed:\n{proc.stderr[-2000:]}")


def _stamped(directory: Path, pin: str) -> bool:
    stamp = directory / ".bench-pin"
    return stamp.exists() and stamp.read_text() == pin


def _stamp(directory: Path, pin: str) -> None:
    (directory / ".bench-pin").write_text(pin)


def ensure_venv(directory: Path, requirements: list[str]) -> Path:
    """A venv at `directory` holding exactly-pinned `requirements`; returns its bin/."""
    pin = "\n".join(requirements)
    if not _stamped(directory, pin):
        _run([sys.executable, "-m", "venv", "--clear", str(directory)], f"venv {directory.name}")
        _run([str(directory / "bin" / "pip"), "install", "-q", *requirements], ", ".join(requirements))
        _stamp(directory, pin)
    return directory / "bin"


def ensure_wrk() -> str:
    """wrk from Debian: installed with apt when missing and we are root."""
    path = shutil.which("wrk")
    if path is None:
        if os.geteuid() != 0:
            raise SystemUnavailable("wrk is missing; install it: sudo apt-get install -y wrk")
        _run(["apt-get", "update", "-q"], "apt lists")
        _run(["apt-get", "install", "-y", "-q", "wrk"], "wrk")
        path = shutil.which("wrk")
        if path is None:
            raise SystemUnavailable("apt-get installed wrk but it is not on PATH")
    version = _dpkg_version("wrk")
    if version and version != PINS["wrk"]["version"]:
        print(f"  note: wrk {version} installed, bench/peers.toml pins {PINS['wrk']['version']}")
    return path


def _dpkg_version(package: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


# --- processes ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """pid and every process below it, found by scanning /proc for parent links."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the given processes (gone ones count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])   # utime, stime (fields 14 and 15)
    return total / tick


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size (VmHWM) of one process, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class System(ABC):
    """A server process under test. Subclasses say how to install and how to start it."""

    name: str
    label: str
    kind: str = "peer"          # "ceiling", "floor", "peer", "atoll" or "external"
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    rss_peak_kib: int = 0

    @property
    def is_database(self) -> bool:
        return self.kind != "ceiling"

    def install(self) -> None:  # noqa: B027 - optional hook: most systems install nothing
        """Install what the system needs before it starts (nothing by default)."""

    @abstractmethod
    def start(self) -> None:
        """Bring the system up at `self.url`, or raise SystemUnavailable."""

    def probe(self) -> bool:
        """True once the server answers a DynamoDB call (ListTables)."""
        try:
            Client(self.url, timeout_s=2.0).call("ListTables", {})
            return True
        except DynamoError:
            return True  # it speaks HTTP; errors show up in the workloads
        except OSError:
            return False

    def sample_rss(self) -> int:
        """Update and return the peak RSS (KiB) of the server's process tree."""
        if self.process is not None and self.process.poll() is None:
            total = sum(vm_hwm_kib(p) for p in _descendants(self.process.pid))
            self.rss_peak_kib = max(self.rss_peak_kib, total)
        return self.rss_peak_kib

    def cpu_seconds(self) -> float | None:
        """CPU seconds used so far by the server's process tree (None if not ours)."""
        if self.process is None or self.process.poll() is not None:
            return None
        return cpu_seconds(_descendants(self.process.pid))

    def settle(self) -> float:
        """Wait (bounded) until the server is idle; returns the seconds waited."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        pids = _descendants(self.process.pid)
        before = cpu_seconds(pids)
        while time.monotonic() - t0 < SETTLE_TIMEOUT_S:
            time.sleep(SETTLE_WINDOW_S)
            after = cpu_seconds(pids)
            if after - before < SETTLE_IDLE_FRACTION * SETTLE_WINDOW_S:
                break
            before = after
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.sample_rss()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)


class LocalServer(System):
    """A system this harness starts as a process on a free loopback port."""

    @abstractmethod
    def command(self, port: int, data_dir: Path) -> list[str]:
        """The command line that serves on `port`, keeping data in `data_dir`."""

    def env(self) -> dict[str, str] | None:
        """The server's environment; None inherits ours."""
        return None

    def start(self) -> None:
        port = free_port()
        data_dir = DATA_DIR / self.name
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{self.name}.log"
        self.url = f"http://127.0.0.1:{port}"
        cmd = self.command(port, data_dir)
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, cwd=REPO_DIR,
                                                env=self.env())
            except OSError as exc:
                raise SystemUnavailable(f"{self.label}: cannot run {cmd[0]}: {exc}") from exc
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemUnavailable(
                    f"{self.label} exited with {self.process.returncode} at start "
                    f"({' '.join(cmd)}); last log lines:\n{self._log_tail()}")
            if self.probe():
                return
            time.sleep(0.1)
        self.stop()
        raise SystemUnavailable(f"{self.label} not ready after {READY_TIMEOUT_S:g} s; "
                                f"log: {self.log_path}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return "(no log)"


class FixedServer(LocalServer):
    """bench/fixed_server.py: the same answer to every request (the ceiling)."""

    def __init__(self, impl: str) -> None:
        label = {"httptools": "fixed response: httptools+uvloop",
                 "aiohttp": "fixed response: aiohttp+uvloop"}[impl]
        super().__init__(name=f"fixed-{impl}", label=label, kind="ceiling")
        self.impl = impl
        self.python = sys.executable

    def install(self) -> None:
        if self.impl == "aiohttp":
            pins = PINS["aiohttp"]
            bin_dir = ensure_venv(PEERS_DIR / "aiohttp-venv",
                                  [f"aiohttp=={pins['version']}", f"uvloop=={pins['uvloop']}"])
            self.python = str(bin_dir / "python")

    def command(self, port: int, data_dir: Path) -> list[str]:
        return [self.python, str(BENCH_DIR / "fixed_server.py"), "--impl", self.impl,
                "--port", str(port)]


class FloorServer(LocalServer):
    """bench/floor_server.py: the same SQLite work per request, no DynamoDB semantics (the
    floor: what Python and SQLite do here; every Atoll figure is also read against it)."""

    def __init__(self) -> None:
        super().__init__(name="floor-sqlite", label="floor: minimal SQLite server "
                         "(httptools+uvloop, WAL, not durable)", kind="floor")

    def command(self, port: int, data_dir: Path) -> list[str]:
        return [sys.executable, str(BENCH_DIR / "floor_server.py"), "--port", str(port),
                "--data-dir", str(data_dir)]


class Dynalite(LocalServer):
    """dynalite (npm), node started directly; in memory, or LevelDB on disk with --path."""

    def __init__(self, on_disk: bool) -> None:
        super().__init__(name="dynalite-disk" if on_disk else "dynalite-mem",
                         label="dynalite (on disk)" if on_disk else "dynalite (in memory)")
        self.on_disk = on_disk
        self.prefix = PEERS_DIR / "dynalite"

    def install(self) -> None:
        version = PINS["dynalite"]["version"]
        if _stamped(self.prefix, version):
            return
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise SystemUnavailable("dynalite needs node and npm (apt-get install -y nodejs npm)")
        self.prefix.mkdir(parents=True, exist_ok=True)
        _run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(self.prefix),
              f"dynalite@{version}"], f"dynalite {version}")
        _stamp(self.prefix, version)

    def command(self, port: int, data_dir: Path) -> list[str]:
        node = shutil.which("node") or "node"
        cmd = [node, str(self.prefix / "node_modules" / "dynalite" / "cli.js"),
               "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"]
        return cmd + (["--path", str(data_dir)] if self.on_disk else [])


class Moto(LocalServer):
    """moto_server from its own venv (so moto's pins never touch the main venv)."""

    def __init__(self) -> None:
        super().__init__(name="moto", label="moto server")
        self.bin_dir = PEERS_DIR / "moto-venv" / "bin"

    def install(self) -> None:
        pins = PINS["moto"]
        self.bin_dir = ensure_venv(PEERS_DIR / "moto-venv",
                                   [f"{pins['package']}=={pins['version']}"])

    def command(self, port: int, data_dir: Path) -> list[str]:
        return [str(self.bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]


class Atoll(LocalServer):
    """`atoll serve` from the main venv: durable commits (SQLite) or --in-memory.

    By default the working tree's code runs, as `make setup` built it. With `rev`
    (--atoll-rev), that commit is exported with `git archive` into bench/.peers/atoll-<sha>/
    and run from there, so a half-edited shared checkout does not decide what gets measured;
    a commit with a setup.py has its extensions built there first (mypyc, as `make setup`
    does unless ATOLL_PURE_PYTHON=1).
    """

    def __init__(self, in_memory: bool, rev: str | None = None) -> None:
        super().__init__(name="atoll-mem" if in_memory else "atoll",
                         label="Atoll (in memory)" if in_memory else "Atoll (durable)",
                         kind="atoll")
        self.in_memory = in_memory
        self.rev = rev
        self.src_dir = REPO_DIR / "src"

    def install(self) -> None:
        if not (REPO_DIR / ".venv" / "bin" / "python").exists():
            raise SystemUnavailable("Atoll: .venv is missing (run `make setup`)")
        if self.rev is None:
            return
        try:
            sha = subprocess.run(["git", "rev-parse", "--short=12", self.rev + "^{commit}"],
                                 cwd=REPO_DIR, capture_output=True, text=True, check=True,
                                 timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            raise SystemUnavailable(f"Atoll: cannot resolve revision {self.rev!r}") from exc
        pure = os.environ.get("ATOLL_PURE_PYTHON") == "1"
        export = PEERS_DIR / f"atoll-{sha}{'-pure' if pure else ''}"
        built = export / ".built"
        if not built.exists():
            shutil.rmtree(export, ignore_errors=True)
            export.mkdir(parents=True)
            archive = subprocess.run(["git", "archive", sha], cwd=REPO_DIR,
                                     capture_output=True, check=True, timeout=60).stdout
            subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True,
                           timeout=60)
            if (export / "setup.py").exists() and not pure:
                print(f"building Atoll @ {sha} (mypyc, a few minutes)", flush=True)
                subprocess.run([str(REPO_DIR / ".venv" / "bin" / "python"), "setup.py", "-q",
                                "build_ext", "--inplace"], cwd=export, check=True,
                               timeout=1200, stdout=subprocess.DEVNULL)
            built.touch()
        self.src_dir = export / "src"
        self.label += f" @ {sha}"

    def command(self, port: int, data_dir: Path) -> list[str]:
        cmd = [str(REPO_DIR / ".venv" / "bin" / "python"), "-m", "atoll", "serve",
               "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
        return cmd + (["--in-memory"] if self.in_memory else [])

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.src_dir)}

    def probe(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2.0) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False


class External(System):
    """A DynamoDB-compatible endpoint that is already running (--target NAME=URL)."""

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name=name, label=f"{name} ({url})", kind="external", url=url)

    def start(self) -> None:
        if not self.probe():
            raise SystemUnavailable(f"{self.label}: no answer from {self.url}")

    def sample_rss(self) -> int:
        return 0


def default_systems(atoll_rev: str | None = None) -> list[System]:
    return [FixedServer("httptools"), FixedServer("aiohttp"), FloorServer(),
            Dynalite(on_disk=False), Dynalite(on_disk=True), Moto(),
            Atoll(in_memory=False, rev=atoll_rev), Atoll(in_memory=True, rev=atoll_rev)]
