"""A throwaway PostgreSQL server for tests and benchmarks: real binaries, a temp directory.

How it runs
- The binaries are Debian's (`make pg-server` installs the `postgresql` package when
  they are missing): the newest /usr/lib/postgresql/<version>/bin, or $ATOLL_PG_BIN.
- PostgreSQL refuses to run as root. As root, every command runs as the `postgres`
  system user the package creates (subprocess's user=/group=), in a temp directory that
  user owns; as anyone else, as that user.
- `initdb` into <root>/data with trust authentication (loopback and the socket only: a
  test server), then the postmaster as a child of this process, listening on a unix
  socket in <root> and on 127.0.0.1 at a free port. fsync and synchronous_commit stay
  on: a commit returns only once it is durable, which the PostgreSQL storage's
  acknowledgements rely on.
- `stop()` is a fast shutdown (sessions cut, a clean checkpoint); `kill()` is SIGKILL
  (a crash: the next start replays the WAL); `restart()` starts it again on the same
  port and data. The postmaster is not daemonized (no pg_ctl) so that this process reaps
  it: a killed postmaster left as a zombie would keep its pid "alive" and block the next
  start. `close()` stops it and removes the directory; the pytest fixtures call it even
  when the test failed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import free_port

START_TIMEOUT_S = 30.0
DATABASE = "atoll"
USER = "atoll"
SERVER_USER = "postgres"
_schemas = itertools.count()


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (run `make pg-server`)."""


def binaries() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    explicit = os.environ.get("ATOLL_PG_BIN")
    if explicit:
        return Path(explicit)
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable("PostgreSQL's server binaries are not installed: run "
                              "`make pg-server` (Debian's postgresql package)")


class PostgresServer:
    """One PostgreSQL server in a temp directory; `start()`, use `dsn`, `close()`."""

    def __init__(self, root: Path | None = None, *, settings: dict[str, str] | None = None
                 ) -> None:
        self.bin = binaries()
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="atoll-pg-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.data = self.root / "data"
        self.port = free_port()
        self.settings = {
            "fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
            "max_connections": "200", "shared_buffers": "128MB",
            "unix_socket_directories": str(self.root), "listen_addresses": "127.0.0.1",
            "port": str(self.port), "log_min_messages": "warning",
            **(settings or {})}
        self._user: int | None = None
        self._group: int | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            entry = pwd.getpwnam(SERVER_USER)
            self._user, self._group = entry.pw_uid, entry.pw_gid
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        """A libpq URL of the test database over TCP on loopback."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def socket_dsn(self) -> str:
        """The same database over the unix socket in the server's directory."""
        return f"postgresql://{USER}@/{DATABASE}?host={self.root}&port={self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str, timeout_s: float = START_TIMEOUT_S) -> str:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                              cwd=self.root, user=self._user, group=self._group)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def start(self) -> PostgresServer:
        """initdb if need be, start the postmaster (a child of this process) and wait
        until it accepts connections; create the test database once."""
        if self.running:
            raise RuntimeError("PostgreSQL is already running")
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER,
                      "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions")
        options = [arg for k, v in self.settings.items() for arg in ("-c", f"{k}={v}")]
        log = open(self.log_path, "ab")
        try:
            # A direct child, not daemonized by pg_ctl: killing it and reaping it here
            # leaves no zombie postmaster whose pid would block the next start.
            self.proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), *options],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root, user=self._user,
                group=self._group, start_new_session=True)
        finally:
            log.close()
        self.wait_ready()
        if self._query("SELECT 1 FROM pg_database WHERE datname = 'atoll'").strip() != "1":
            self._run(str(self.bin / "createdb"), "-h", str(self.root), "-p", str(self.port),
                      "-U", USER, DATABASE)
        return self

    def _query(self, sql: str) -> str:
        return self._run(str(self.bin / "psql"), "-h", str(self.root), "-p", str(self.port),
                         "-U", USER, "-d", "postgres", "-At", "-c", sql)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until the server accepts connections."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited: {self.server_log()}")
            done = subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", str(self.root), "-p", str(self.port),
                 "-U", USER, "-d", "postgres"],
                capture_output=True)
            if done.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL not ready after {timeout_s} s: {self.server_log()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, mode: str = "fast") -> None:
        """Shut down (`fast`: SIGINT, sessions cut, a clean checkpoint; `immediate`:
        SIGQUIT, no checkpoint, the next start recovers from the WAL)."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            self.proc.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the postmaster: a crash (its backends notice and exit; the next
        start replays the WAL)."""
        if self.proc is None:
            return
        children = self._children(self.proc.pid)
        self.proc.kill()
        self.proc.wait(timeout=START_TIMEOUT_S)
        for pid in children:  # they are not ours to reap; they exit at once
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        self.start()

    def pids(self) -> list[int]:
        """The postmaster and its children (for CPU figures)."""
        if not self.running:
            return []
        assert self.proc is not None
        return [self.proc.pid, *self._children(self.proc.pid)]

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def server_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the server (killing it if a clean stop fails) and remove its directory."""
        try:
            self.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            self.kill()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_server(root: Path | None = None) -> Iterator[PostgresServer]:
    server = PostgresServer(root)
    try:
        yield server.start()
    finally:
        server.close()


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """The test session's server, started on first use (the `pg_server` fixture stops
    it at the end of the session)."""
    global _shared
    if _shared is None or not _shared.running:
        _shared = PostgresServer().start()
    return _shared


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (stopped and removed at its end)."""
    global _shared
    server = shared_server()
    try:
        yield server
    finally:
        server.close()
        _shared = None


def fresh_schema_dsn(server: PostgresServer, name: str | None = None) -> str:
    """A DSN whose tables live in a new, empty schema of `server` (made if need be; a
    schema is much faster to make than a database: no file copies)."""
    name = name or f"t{next(_schemas)}_{os.getpid()}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
    return schema_dsn(server.dsn, name)


@pytest.fixture
def pg_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """A DSN of a fresh, empty schema on the session's server (dropped afterwards)."""
    dsn = fresh_schema_dsn(pg_server)
    try:
        yield dsn
    finally:
        name = dsn.rsplit("%3D", 1)[1]
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def schema_dsn(dsn: str, schema: str) -> str:
    """`dsn` with unqualified table names resolved in `schema`."""
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"
