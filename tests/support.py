"""Test support: start real `atoll serve` processes and talk to them with boto3."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    import pytest
    from botocore.exceptions import ClientError

    from atoll.storage import Storage, WriteTxn

REPO = Path(__file__).resolve().parent.parent
ATOLL = [sys.executable, "-m", "atoll"]
AWS = str(Path(sys.executable).parent / "aws")  # the AWS CLI installed beside this Python
START_TIMEOUT_S = 20.0
STORAGE_WRITE_TIMEOUT_S = 30  # a storage write job that takes longer has hung


def in_a_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function in a fresh event loop (pytest calls it as a plain one)."""
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))
    return run


@contextlib.asynccontextmanager
async def started(storage: Storage) -> AsyncIterator[Storage]:
    """`storage` started on the running loop, closed on the way out."""
    storage.start(asyncio.get_running_loop())
    try:
        yield storage
    finally:
        storage.close()


async def write(storage: Storage, fn: Callable[[WriteTxn], Any], inline: bool = False) -> Any:
    """Run the write job `fn` and wait for its result (bounded: a hung write fails)."""
    return await asyncio.wait_for(storage.write(fn, inline=inline), STORAGE_WRITE_TIMEOUT_S)


def assert_database_intact(path: Path) -> None:
    """SQLite's own integrity check of a node's database file passes."""
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        check.close()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


_EPHEMERAL_LOW = _ephemeral_low()
_PORTS_LOW = 10_000
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now, never handed out before in this process, and below the
    kernel's ephemeral range when there is room: a client socket takes its local port
    from that range, so an outgoing connection (a node pulling from a peer that is not
    up yet) cannot take the port before the server binds it. A port the kernel picked
    did that once in CI ("address already in use")."""
    for _ in range(200):
        if _EPHEMERAL_LOW - _PORTS_LOW > 1_000:
            port = random.randrange(_PORTS_LOW, _EPHEMERAL_LOW)
        else:
            port = 0  # no room below the range: let the kernel choose
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found")


class ServerProcess:
    """A real `atoll serve` process on a free loopback port."""

    def __init__(self, data_dir: Path | None = None, in_memory: bool = False,
                 extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.args = [*ATOLL, "serve", "--port", str(self.port)]
        if in_memory:
            self.args.append("--in-memory")
        if data_dir is not None:
            self.args += ["--data-dir", str(data_dir)]
        self.args += extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"atoll-test-{self.port}.log"
        self.storage_url = (self.args[self.args.index("--storage") + 1]
                            if "--storage" in self.args else None)
        self.storage = "sqlite" if self.storage_url is None else "postgresql"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"atoll serve exited: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("atoll serve did not become healthy in time")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class NodeDatabase:
    """A node's own database, for tests that look beneath the API: its SQLite file, or
    its PostgreSQL schema. Statements use `?` placeholders either way."""

    def __init__(self, server: ServerProcess, region: str = "local") -> None:
        self.postgres = server.storage_url is not None
        if server.storage_url is not None:
            import psycopg
            self._conn: Any = psycopg.connect(server.storage_url, autocommit=True)
        else:
            assert server.data_dir is not None
            self._conn = sqlite3.connect(server.data_dir / f"atoll-{region}.db", timeout=10,
                                         isolation_level=None)

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s") if self.postgres else sql

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        return self._conn.execute(self._sql(sql), args).fetchone()

    def run(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        self._conn.execute(self._sql(sql), args)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> NodeDatabase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def client(url: str, **config: Any) -> Any:
    return boto3.client(
        "dynamodb", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config))


def resource(url: str) -> Any:
    return boto3.resource(
        "dynamodb", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def create_table(ddb: Any, name: str, hash_key: tuple[str, str] = ("pk", "S"),
                 range_key: tuple[str, str] | None = None, **extra: Any) -> str:
    schema = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    definitions = [{"AttributeName": hash_key[0], "AttributeType": hash_key[1]}]
    if range_key:
        schema.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
        definitions.append({"AttributeName": range_key[0], "AttributeType": range_key[1]})
    ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=definitions,
                     BillingMode="PAY_PER_REQUEST", **extra)
    return name


class ClusterProcesses:
    """A real multi-region cluster: one `atoll serve --config ... --region R` per region,
    each on its own free client and peer ports, data under `root/<region>`."""

    def __init__(self, root: Path, regions: tuple[str, ...] = ("us-east", "eu-west", "ap-south"),
                 extra: list[str] | None = None) -> None:
        from atoll.topology.config import ClusterConfig, RegionConfig

        self.root = root
        self.config = ClusterConfig("atoll-test", tuple(
            RegionConfig(r, f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
            for r in regions))
        root.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "cluster.toml"
        self.config_path.write_text(self.config.to_toml())
        self.nodes: dict[str, ServerProcess] = {}
        for region in self.config.regions:
            node = ServerProcess(data_dir=root / region.id, extra=[
                "--config", str(self.config_path), "--region", region.id, *(extra or [])])
            node.port = region.client_address[1]
            node.args[node.args.index("--port") + 1] = str(node.port)
            self.nodes[region.id] = node

    def start(self) -> ClusterProcesses:
        for node in self.nodes.values():
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.stop()

    def url(self, region: str) -> str:
        return self.nodes[region].url

    def clients(self) -> dict[str, Any]:
        return {r: client(n.url) for r, n in self.nodes.items()}


def scan_all(ddb: Any, table: str) -> dict[str, Any]:
    """Every item of a table keyed by its `pk` string (paginated, consistent)."""
    items: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            items[item["pk"]["S"]] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def error_code(caught: pytest.ExceptionInfo[ClientError]) -> str:
    """The DynamoDB error code (`__type` without its prefix) of a refused boto3 call."""
    return str(caught.value.response["Error"]["Code"])


def aws_cli(url: str, *args: str) -> Any:
    """`aws dynamodb ARGS` against the node at `url` (test credentials), its JSON answer;
    the command must succeed within a minute."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}
    out = subprocess.run([AWS, "dynamodb", *args, "--endpoint-url", url, "--output", "json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def node_json(url: str, path: str) -> Any:
    """GET one of a node's JSON endpoints (/_atoll/status, /_atoll/conflicts)."""
    import json

    with urllib.request.urlopen(url + path, timeout=5) as response:
        return json.loads(response.read())
