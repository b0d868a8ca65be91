"""Test support: start real `atoll serve` processes and talk to them with boto3.

Servers run as they would in production: with `--auth required` and a real admin key
the node makes at start-up (`--admin-credentials`), and a cluster with mutual TLS
between its regions (certificates made here, as `atoll certs` makes them). Every
helper that talks to a server — `client`, `resource`, `node_json`, `sign` — signs with
the key of the server at that URL (`CREDENTIALS`), so tests read as if auth did not
exist. `ServerProcess(auth="off")` runs a node as the DynamoDB-Local-like mode."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import select
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from atoll.drill.ports import PortPicker, below_ephemeral_range

if TYPE_CHECKING:
    import pytest
    from botocore.exceptions import ClientError

    from atoll.storage import Storage, WriteTxn

REPO = Path(__file__).resolve().parent.parent
ATOLL = [sys.executable, "-m", "atoll"]
AWS = str(Path(sys.executable).parent / "aws")  # the AWS CLI installed beside this Python
START_TIMEOUT_S = 60.0  # until /health answers: a node started beside two others on a
# machine at load 35 had not opened its database after 20 s (it answers in ~1-3 s quiet)
STORAGE_WRITE_TIMEOUT_S = 30  # a storage write job that takes longer has hung
SIGNING_REGION = "us-east-1"
# url of a running server -> the admin key it made at start-up (key id, secret)
CREDENTIALS: dict[str, tuple[str, str]] = {}
ANONYMOUS = ("test", "test")  # what a node with auth off is sent (any key works there)
# peer endpoint of a test cluster's region -> TLS as another region of that cluster (a
# region's own certificate is refused by its own node), for tests that call peer ports
PEER_TLS: dict[str, ssl.SSLContext] = {}


def read_credentials(path: Path) -> tuple[str, str]:
    """(key id, secret) from an AWS shared-credentials file written by a node."""
    values = dict(line.split(" = ", 1) for line in path.read_text().splitlines()
                  if " = " in line)
    return values["aws_access_key_id"], values["aws_secret_access_key"]


def credentials_for(url: str) -> tuple[str, str]:
    return CREDENTIALS.get(url.rstrip("/"), ANONYMOUS)


def sign(url: str, method: str = "POST", body: bytes = b"",
         headers: dict[str, str] | None = None,
         credentials: tuple[str, str] | None = None) -> dict[str, str]:
    """`headers` plus the SigV4 headers of a request to `url` (the path and query in the
    URL are signed as given), signed with the key of the server at `url`."""
    parts = urllib.parse.urlsplit(url)
    key_id, secret = credentials or credentials_for(f"{parts.scheme}://{parts.netloc}")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(key_id, secret), "dynamodb", SIGNING_REGION).add_auth(request)
    return {k: (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in request.headers.items()}


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


_PORTS_LOW, _EPHEMERAL_LOW = below_ephemeral_range()  # (0, 0): the kernel chooses
_handed_out: set[int] = set()  # by every picker of this process
_pickers: dict[tuple[int, int], PortPicker] = {}


def _worker_ports(low: int, high: int) -> tuple[int, int]:
    """This process's share of [low, high): under pytest-xdist each worker (gw0, gw1, ...)
    draws from its own slice, so two workers never hand out the same port (a port is
    free when it is picked and bound only later, by the server started with it; the
    picker never hands a port out twice within one process, the slices keep workers
    apart)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return low, high
    span = (high - low) // count
    index = int(worker[2:]) % count
    return low + index * span, low + (index + 1) * span


def worker_port_range() -> tuple[int, int]:
    """This process's slice of the ports below the ephemeral range: what `free_port`
    draws from, and what a drill run as a subprocess is given (`--port-range`)."""
    return _worker_ports(_PORTS_LOW, _EPHEMERAL_LOW)


def free_port() -> int:
    """A loopback port free now, never handed out before in this test run, below the
    kernel's ephemeral range (atoll.drill.ports says why) and in this pytest-xdist
    worker's own slice of it (`_worker_ports`). The drill's clusters in tests take
    their ports here too (`DrillCluster(ports=free_port)`), so one picker serves the
    whole process."""
    span = worker_port_range()
    if span not in _pickers:
        _pickers[span] = PortPicker(*span, random.Random(), _handed_out)
    return _pickers[span]()


MAX_FILLERS = 64


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A loopback port that drops every SYN, as a dead host behind a firewall looks: a
    listener whose accept queue is filled and never drained (the kernel then drops new
    SYNs), so a connection to it neither opens nor fails. Checked before it is handed
    out: a probe's connect must time out."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", free_port()))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(MAX_FILLERS):  # connect until one does not complete: the queue is full
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
            _, writable, _ = select.select([], [filler], [], 0.5)
            if not writable:
                break
        else:
            raise AssertionError(f"the accept queue took {MAX_FILLERS} connections")
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
            raise AssertionError("the black hole accepted a connection")
        except TimeoutError:
            pass  # dropped, as intended
        finally:
            probe.close()
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


_scratch: list[Path] = []  # this process's scratch directory, once made


def _scratch_dir() -> Path:
    """This test process's own directory for server logs and in-memory nodes' key files
    (under TMPDIR): another pytest-xdist worker, or another suite running on the same
    machine, may start a server on a port this one used, and must not share its files.
    Removed at the end of a session in which no test failed (tests/conftest.py)."""
    if not _scratch:
        _scratch.append(Path(tempfile.mkdtemp(prefix="atoll-test-")))
    return _scratch[0]


def scratch_dir_made() -> Path | None:
    """This process's scratch directory if a server has been given one, else None."""
    return _scratch[0] if _scratch else None


class ServerProcess:
    """A real `atoll serve` process on a free loopback port: with `--auth required` and
    an admin key it makes at start-up (`auth="off"`: no checks, any credentials)."""

    def __init__(self, data_dir: Path | None = None, in_memory: bool = False,
                 extra: list[str] | None = None, auth: str = "required",
                 bootstrap: bool = True) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.auth = auth
        self.args = [*ATOLL, "serve", "--port", str(self.port), "--auth", auth]
        if in_memory:
            self.args.append("--in-memory")
        if data_dir is not None:
            self.args += ["--data-dir", str(data_dir)]
        tmp = _scratch_dir()
        # in a data directory it survives restarts (the key is in the database);
        # in memory the database is new each time, so the key must be made again
        self.credentials_path = (data_dir / "credentials" if data_dir is not None
                                 else tmp / f"atoll-test-{self.port}.credentials")
        if auth != "off" and bootstrap:
            self.args += ["--admin-credentials", str(self.credentials_path)]
        self.args += extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / f"atoll-test-{self.port}.log"
        self.scheme = "https" if "--tls-cert" in self.args else "http"
        self.ca_file: str | None = None  # trusted for https (set by the caller)
        self.storage_url = (self.args[self.args.index("--storage") + 1]
                            if "--storage" in self.args else None)
        self.storage = "sqlite" if self.storage_url is None else "postgresql"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> tuple[str, str]:
        return credentials_for(self.url)

    def prepare(self) -> None:
        """Before starting: an in-memory node makes its key anew (its database is new)."""
        if self.data_dir is None:
            self.credentials_path.unlink(missing_ok=True)

    def register(self) -> None:
        """Once healthy: sign everything sent to this server's URL with its key."""
        if self.credentials_path.exists():
            CREDENTIALS[self.url] = read_credentials(self.credentials_path)

    def start(self) -> ServerProcess:
        self.launch()
        return self.wait_healthy()

    def launch(self) -> None:
        """Start the process without waiting for it (`wait_healthy` waits): several
        servers launched one after the other start at about the same moment."""
        self.prepare()
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def wait_healthy(self) -> ServerProcess:
        """Wait until the launched process answers /health (raise if it exits first)."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        context = ssl.create_default_context(cafile=self.ca_file) if self.scheme == "https" \
            else None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"atoll serve exited: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1,
                                            context=context) as response:
                    if response.status == 200:
                        self.register()
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


def start_together(nodes: Iterable[ServerProcess]) -> None:
    """Start `nodes`, every one launched before any is waited for: the processes import
    and open their databases side by side instead of one after another (a peer, or a
    node of the same region, that is not up yet is retried, as in a real start). If one
    does not come up, those launched are killed and the error raised."""
    nodes = list(nodes)
    for node in nodes:
        node.launch()
    try:
        for node in nodes:
            node.wait_healthy()
    except BaseException:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.kill()
        raise


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


NO_RETRIES: dict[str, Any] = {"total_max_attempts": 1, "mode": "standard"}
"""boto3 `retries` for one attempt per call. botocore's `max_attempts` counts RETRIES
(`max_attempts: 1` re-sends a failed call once); `total_max_attempts` counts attempts.
A test that tallies outcomes needs this: a request whose answer was lost when its node
died is re-sent, and the re-send's connection refusal would hide that the first
attempt was made."""


def client(url: str, credentials: tuple[str, str] | None = None, **config: Any) -> Any:
    """A boto3 client for the server at `url`, signing with its admin key (or
    `credentials`). `config`: botocore Config fields; `retries` defaults to one retry
    (`max_attempts: 1`), NO_RETRIES makes every call one attempt."""
    key_id, secret = credentials or credentials_for(url)
    config.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
    return boto3.client(
        "dynamodb", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=key_id, aws_secret_access_key=secret, config=Config(**config))


def resource(url: str) -> Any:
    key_id, secret = credentials_for(url)
    return boto3.resource(
        "dynamodb", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=key_id, aws_secret_access_key=secret,
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


def make_certs(directory: Path, cluster_id: str, regions: tuple[str, ...]) -> Path:
    """A cluster CA, its data key and one certificate per region (as `atoll certs`)."""
    import datetime

    from atoll.auth.certs import ClusterFiles, init_cluster, issue_region_cert

    files = ClusterFiles(directory)
    now = datetime.datetime.now(datetime.UTC)
    if not files.ca_cert.exists():
        init_cluster(files, cluster_id, now)
    for region in regions:
        if not files.region_cert(region).exists():
            issue_region_cert(files, region, ["127.0.0.1", "localhost"], now)
    return directory


class ClusterProcesses:
    """A real multi-region cluster: one `atoll serve --config ... --region R` per region,
    each on its own free client and peer ports, data under `root/<region>`; auth
    required, mutual TLS between regions (certificates under `root/certs`), an admin key
    made by the first region and used by every helper for every region. `secure=False`:
    auth off and plain HTTP between regions, for tests that put their own man in the
    middle of a peer link (what mutual TLS would refuse outright)."""

    def __init__(self, root: Path, regions: tuple[str, ...] = ("us-east", "eu-west", "ap-south"),
                 extra: list[str] | None = None, secure: bool = True) -> None:
        from atoll.topology.config import ClusterConfig, RegionConfig

        self.root = root
        self.secure = secure
        peer_scheme = "https" if secure else "http"
        self.config = ClusterConfig("atoll-test", tuple(
            RegionConfig(r, f"http://127.0.0.1:{free_port()}",
                         f"{peer_scheme}://127.0.0.1:{free_port()}")
            for r in regions))
        root.mkdir(parents=True, exist_ok=True)
        self.certs = make_certs(root / "certs", self.config.cluster_id, regions)
        for region in self.config.regions:
            other = next((r for r in regions if r != region.id), None)
            if other is not None:
                PEER_TLS[region.peer_endpoint] = self.peer_context(other)
        self.config_path = root / "cluster.toml"
        self.config_path.write_text(self.config.to_toml())
        self.credentials_path = root / "credentials"
        self.nodes: dict[str, ServerProcess] = {}
        for index, region in enumerate(self.config.regions):
            security = ["--certs", str(self.certs)] if secure else []
            node = ServerProcess(data_dir=root / region.id, bootstrap=False,
                                 auth="required" if secure else "off", extra=[
                "--config", str(self.config_path), "--region", region.id, *security,
                "--peer-source", f"127.0.0.{10 + index}", *(extra or [])])
            if index == 0 and secure:  # the admin key; other regions receive it by replication
                node.args += ["--admin-credentials", str(self.credentials_path)]
            node.credentials_path = self.credentials_path
            node.port = region.client_address[1]
            node.args[node.args.index("--port") + 1] = str(node.port)
            node.log_path = root / f"{region.id}.log"  # beside its data, named by region
            self.nodes[region.id] = node

    def start(self) -> ClusterProcesses:
        start_together(self.nodes.values())
        if self.secure:
            self.wait_for_key(self.nodes)
        return self

    def peer_context(self, region: str) -> ssl.SSLContext:
        """TLS for calling peer ports as `region` (its certificate, the cluster CA)."""
        from atoll.auth.certs import ClusterFiles
        from atoll.auth.tls import peer_client_context

        files = ClusterFiles(self.certs)
        return peer_client_context(files.region_cert(region), files.region_key(region),
                                   files.ca_cert)

    def wait_for_key(self, nodes: dict[str, ServerProcess], timeout_s: float = 20.0) -> None:
        """Until every node in `nodes` knows the admin key (made by the first region)."""
        if not self.credentials_path.exists():
            raise RuntimeError("the first region made no admin key")
        credentials = read_credentials(self.credentials_path)
        for node in nodes.values():
            CREDENTIALS[node.url] = credentials
        for url in [n.url for n in nodes.values()]:
            def accepted(url: str = url) -> bool:
                try:
                    node_json(url, "/_atoll/status")
                except OSError:
                    return False
                return True
            if not wait_until(accepted, timeout_s):
                raise RuntimeError(f"{url} does not accept the admin key")

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
    """`aws dynamodb ARGS` against the node at `url` (signed with its admin key), its JSON
    answer; the command must succeed within a minute."""
    key_id, secret = credentials_for(url)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
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


def node_json(url: str, path: str, credentials: tuple[str, str] | None = None) -> Any:
    """GET one of a node's JSON endpoints (/_atoll/status, /_atoll/conflicts), signed
    with the node's key (or `credentials`)."""
    import json

    request = urllib.request.Request(url + path, headers=sign(url + path, "GET",
                                                              credentials=credentials))
    with urllib.request.urlopen(request, timeout=5, context=PEER_TLS.get(url)) as response:
        return json.loads(response.read())


def node_post(url: str, path: str, body: Any, credentials: tuple[str, str] | None = None
              ) -> tuple[int, Any]:
    """POST JSON (or bytes as they are) to a node's /_atoll/... action, signed (over TLS
    as a region of its cluster, for a peer endpoint); (status, decoded answer)."""
    import json
    import urllib.error

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = sign(url + path, "POST", data, {"Content-Type": "application/json"},
                   credentials=credentials)
    request = urllib.request.Request(url + path, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=PEER_TLS.get(url)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
