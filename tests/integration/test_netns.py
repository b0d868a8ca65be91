"""Three hosts, not three ports (issue 30): three regions in three network namespaces,
each with its own address on a bridge, each started the way an operator starts it on
its own machine — deploy/atoll.service's ExecStart, with that host's
/etc/atoll/atoll.env and the shared /etc/atoll/cluster.toml (from
deploy/cluster.toml.example, the addresses replaced). One host's link is cut (`ip link
set down`): the failover client keeps working through the other regions, and once the
link is back the cut region catches up on everything written meanwhile.

Needs root and network namespaces. Where they cannot be created (a container without
CAP_NET_ADMIN, no iproute2) the test is skipped and says why; namespaces, links and
processes are removed even when it fails."""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import CREDENTIALS, REPO, node_json, read_credentials, wait_until

REGIONS = ("us-east", "eu-west", "ap-south")
DEPLOY = REPO / "deploy"
MAX_OPS = 20_000


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


class Hosts:
    """Three namespaces on one bridge: host i is 10.A.B.(i+1), this process 10.A.B.254."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 10_000:04d}{random.randrange(100):02d}"
        self.bridge = f"atb{tag}"
        self.namespaces = {r: f"atoll-{tag}-{i}" for i, r in enumerate(REGIONS)}
        self.links = {r: f"atv{tag}{i}" for i, r in enumerate(REGIONS)}  # bridge side
        self.subnet = self._free_subnet()
        self.addresses = {r: f"{self.subnet}.{i + 1}" for i, r in enumerate(REGIONS)}

    @staticmethod
    def _free_subnet() -> str:
        used = _ip("-4", "route").stdout
        for _ in range(50):
            subnet = f"10.{random.randrange(180, 250)}.{random.randrange(256)}"
            if f"{subnet}." not in used:
                return subnet
        raise RuntimeError("no free 10.x.y.0/24 subnet")

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for region, ns in self.namespaces.items():
            _ip("netns", "add", ns)
            inside = f"{self.links[region]}p"
            _ip("link", "add", self.links[region], "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", ns)
            _ip("link", "set", self.links[region], "master", self.bridge, "up")
            _ip("-n", ns, "link", "set", inside, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{self.addresses[region]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def cut(self, region: str) -> None:
        _ip("-n", self.namespaces[region], "link", "set", "eth0", "down")

    def restore(self, region: str) -> None:
        _ip("-n", self.namespaces[region], "link", "set", "eth0", "up")

    def remove(self) -> None:
        for ns in self.namespaces.values():  # takes the veth pairs with it
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.bridge, check=False)


def _unit_command(unit: Path, env: dict[str, str], etc: Path, var: Path) -> list[str]:
    """The unit's ExecStart as systemd would run it with this environment ( ${X} one word,
    $X split into words), the host's /etc/atoll and /var/lib/atoll under a directory,
    and the installed `atoll` replaced by this interpreter's."""
    line = next(raw for raw in unit.read_text().splitlines() if raw.startswith("ExecStart="))
    words: list[str] = []
    for word in shlex.split(line.removeprefix("ExecStart=")):
        if re.fullmatch(r"\$\w+", word):
            words += env.get(word[1:], "").split()
            continue
        word = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word)
        words.append(word.replace("/etc/atoll", str(etc)).replace("/var/lib/atoll", str(var)))
    assert words[:2] == ["/opt/atoll/bin/atoll", "serve"], words
    return [sys.executable, "-m", "atoll", *words[1:]]


def _env_file(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()
                if line.strip() and not line.startswith("#"))


def _certs(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "atoll", "certs", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def _accepts_key(url: str) -> bool:
    try:
        node_json(url, "/_atoll/status")
    except OSError:
        return False
    return True


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("cannot create network namespaces: not running as root")
    try:
        made = Hosts()
    except (OSError, RuntimeError) as exc:  # no `ip` at all
        pytest.skip(f"cannot create network namespaces: {exc}")
    try:
        made.create()
    except RuntimeError as exc:
        made.remove()
        pytest.skip(f"cannot create network namespaces here: {exc}")
    try:
        yield made
    finally:
        made.remove()


class Traffic(threading.Thread):
    """Puts and gets through the failover client, preferring the region that is cut.

    A put acknowledged by us-east just as its link is cut may be read back from the
    region the client moved to before replication could bring it there: regions are
    eventually consistent with each other, so that read is not an error, but the key is
    kept (`moved`) and the test checks it reached every region once the link is back."""

    def __init__(self, ddb: Any) -> None:
        super().__init__(daemon=True)
        self.ddb = ddb
        self.halt = threading.Event()
        self.acked: list[str] = []
        self.moved: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        import atoll.client

        for n in range(MAX_OPS):
            if self.halt.is_set():
                return
            key = {"pk": {"S": f"k{n}"}}
            try:
                before = atoll.client.metrics(self.ddb)["route"]
                self.ddb.put_item(TableName="hosts", Item={**key, "n": {"N": str(n)}})
                self.acked.append(f"k{n}")
                got = self.ddb.get_item(TableName="hosts", Key=key, ConsistentRead=True)
                if "Item" not in got and atoll.client.metrics(self.ddb)["route"] != before:
                    self.moved.append(f"k{n}")
                else:
                    assert got["Item"]["n"] == {"N": str(n)}
            except Exception as exc:  # the test fails on any
                self.errors.append(f"k{n}: {exc!r}"[:300])
            time.sleep(0.01)


def test_three_regions_on_three_hosts_fail_over_and_catch_up(hosts: Hosts,
                                                             tmp_path: Path) -> None:
    import atoll.client
    from atoll.topology.config import load_cluster_config

    example = (DEPLOY / "cluster.toml.example").read_text()
    for old, region in zip(("10.0.1.10", "10.0.2.10", "10.0.3.10"), REGIONS, strict=True):
        example = example.replace(old, hosts.addresses[region])
    processes: dict[str, subprocess.Popen[bytes]] = {}
    urls = {r: f"http://{hosts.addresses[r]}:8000" for r in REGIONS}
    ddb = None
    traffic = None
    try:
        ca = tmp_path / "ca"  # the operator's machine: `atoll certs init`
        _certs("init", "--dir", str(ca), "--cluster-id", "atoll-prod")
        admin = tmp_path / "us-east" / "var" / "atoll" / "admin.credentials"
        for region in REGIONS:  # each host: its own /etc/atoll and /var/lib/atoll
            etc, var = tmp_path / region / "etc" / "atoll", tmp_path / region / "var" / "atoll"
            etc.mkdir(parents=True)
            var.mkdir(parents=True, exist_ok=True)
            (etc / "cluster.toml").write_text(example)
            # each host gets the CA's certificate, the data key and its own region's pair
            _certs("region", "--dir", str(ca), "--region", region,
                   "--host", hosts.addresses[region])
            (etc / "certs").mkdir()
            for name in ("ca.crt", "data.key", f"region-{region}.crt", f"region-{region}.key"):
                shutil.copy(ca / name, etc / "certs" / name)
            env_text = (DEPLOY / "atoll.env.example").read_text().replace(
                "ATOLL_REGION=us-east", f"ATOLL_REGION={region}")
            if region == "us-east":  # the first admin key, on the first start
                env_text = env_text.replace("\nATOLL_EXTRA_ARGS=\n",
                                            f"\nATOLL_EXTRA_ARGS=--admin-credentials {admin}\n")
            (etc / "atoll.env").write_text(env_text)
            env = _env_file(env_text)
            command = _unit_command(DEPLOY / "atoll.service", env, etc, var)
            log = open(tmp_path / f"{region}.log", "wb")
            processes[region] = subprocess.Popen(
                ["ip", "netns", "exec", hosts.namespaces[region], *command],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, **env})
        assert load_cluster_config(tmp_path / "us-east" / "etc" / "atoll" / "cluster.toml")
        assert wait_until(lambda: all(_healthy(u) for u in urls.values()), 30), \
            {r: (tmp_path / f"{r}.log").read_text()[-2000:] for r in REGIONS}

        key = read_credentials(admin)
        for url in urls.values():  # (the key reaches the other regions by replication)
            CREDENTIALS[url] = key
        assert wait_until(lambda: all(_accepts_key(u) for u in urls.values()), 30)
        ddb = atoll.client.boto3_client(seeds=[urls["us-east"]],
                                        region_preference=list(REGIONS),
                                        cache_path=str(tmp_path / "topology.json"),
                                        aws_access_key_id=key[0], aws_secret_access_key=key[1])
        ddb.create_table(TableName="hosts",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        traffic = Traffic(ddb)
        traffic.start()
        assert wait_until(lambda: len(traffic.acked) > 50, 20)
        assert atoll.client.metrics(ddb)["route"] == "us-east"

        hosts.cut("us-east")  # the host's link goes down: clients and peers lose it
        cut_at = time.monotonic()
        assert wait_until(lambda: atoll.client.metrics(ddb)["route"] != "us-east", 10), \
            "the failover client did not leave the cut region"
        moved_s = time.monotonic() - cut_at
        during = len(traffic.acked)
        assert wait_until(lambda: len(traffic.acked) > during + 100, 20)
        written_while_cut = traffic.acked[during:]

        hosts.restore("us-east")
        restored_at = time.monotonic()

        def caught_up() -> bool:
            try:
                figures = node_json(urls["us-east"], "/_atoll/console/region")
            except OSError:
                return False
            lag = figures["replication"]["lag"]
            return all(lag[o]["records"] == 0 and lag[o]["state"] == "live"
                       for o in ("eu-west", "ap-south"))

        assert wait_until(caught_up, 30, 0.2), "us-east did not catch up after the link returned"
        caught_up_s = time.monotonic() - restored_at
        traffic.halt.set()
        traffic.join(timeout=15)
        assert traffic.errors == [], traffic.errors[:5]
        from tests.support import client as plain_client
        direct = plain_client(urls["us-east"])
        missing = [k for k in written_while_cut
                   if "Item" not in direct.get_item(TableName="hosts",
                                                    Key={"pk": {"S": k}}, ConsistentRead=True)]
        assert missing == [], f"us-east lacks {len(missing)} writes made while it was cut off"
        assert len(traffic.moved) <= 3, traffic.moved  # only around the moment of the cut
        for region in ("eu-west", "ap-south"):  # the writes us-east took as it was cut
            other = plain_client(urls[region])
            assert wait_until(lambda other=other: all("Item" in other.get_item(
                TableName="hosts", Key={"pk": {"S": k}}, ConsistentRead=True)
                for k in traffic.moved), 10), (region, traffic.moved)
        print(f"\nhosts {hosts.addresses}: client left the cut us-east after {moved_s:.2f} s, "
              f"{len(written_while_cut)} writes while cut, none failed; us-east caught up "
              f"{caught_up_s:.1f} s after its link returned")
    finally:
        if traffic is not None:
            traffic.halt.set()
            traffic.join(timeout=15)
        if ddb is not None:
            atoll.client.close(ddb)
        for proc in processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
