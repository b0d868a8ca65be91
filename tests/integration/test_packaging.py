"""Installable like any Python package (issue 30): a wheel built from the repository
installs into a fresh virtual environment and gives the `atoll` command and the
importable failover client, run from there (outside the repository).

The wheel is built where no C compiler can be found (CC points nowhere), so this also
proves the build falls back to pure Python by itself. Dependencies come from the
package index, pinned by requirements.lock; where the index cannot be reached the test
says so and installs the wheel alone, its dependencies taken from the project's .venv."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

from atoll.topology.config import ClusterConfig, RegionConfig
from tests.support import (
    CREDENTIALS,
    REPO,
    free_port,
    node_json,
    read_credentials,
    wait_until,
)

CLIENT_SCRIPT = """
import json, sys
import atoll, atoll.client
seeds, table = sys.argv[1].split(","), sys.argv[2]
ddb = atoll.client.boto3_client(seeds=seeds, region_preference=["one", "two"],
                                cache_path=sys.argv[3])
if sys.argv[4] == "write":
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName=table, Item={"pk": {"S": "k"}, "v": {"S": "from the wheel"}})
item = ddb.get_item(TableName=table, Key={"pk": {"S": "k"}}, ConsistentRead=True).get("Item")
print(json.dumps({"atoll": atoll.__file__, "item": item,
                  "route": atoll.client.metrics(ddb)["route"]}))
"""


def _sources(into: Path) -> Path:
    """The files a build reads, without compiled extensions or caches of this checkout."""
    shutil.copytree(REPO / "src", into / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, into / name)
    return into


def _run(args: list[str], timeout_s: float = 300, **kwargs: object
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "ATOLL_PURE_PYTHON", "VIRTUAL_ENV")}
    env.update(kwargs.pop("env", {}))  # type: ignore[arg-type]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env,
                          **kwargs)  # type: ignore[call-overload]


def _install(venv: Path, wheel: Path) -> str:
    """Install the wheel with its dependencies; how it was done. (The .venv's pip installs
    into the new environment: ensurepip would take longer than the rest.)"""
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    online = _run([*pip, "install", "-q", "--timeout", "20", "--retries", "1",
                   "-c", str(REPO / "requirements.lock"), str(wheel)])
    if online.returncode == 0:
        return "dependencies from the package index"
    # no index: the wheel alone, and the dependencies of the project's .venv behind it
    print(f"\npackage index not reachable ({online.stderr.strip()[-300:]}); installing the "
          "wheel with --no-deps and the .venv's site-packages for its dependencies")
    offline = _run([*pip, "install", "-q", "--no-index", "--no-deps", str(wheel)])
    assert offline.returncode == 0, offline.stderr
    site = Path(_run([str(venv / "bin" / "python"), "-c",
                      "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "zz-atoll-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return "the wheel alone (no index), dependencies from .venv"


def _serve(atoll: Path, config: Path, region: str, root: Path, *extra: str
           ) -> subprocess.Popen[bytes]:
    log = open(root / f"{region}.log", "wb")
    return subprocess.Popen([str(atoll), "serve", "--config", str(config), "--region", region,
                             "--data-dir", str(root / region), "--certs", str(root / "certs"),
                             *extra], stdout=log, stderr=subprocess.STDOUT, cwd=root,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


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


def test_the_wheel_installs_into_a_fresh_venv_with_the_command_and_the_client(
        tmp_path: Path) -> None:
    source = _sources(tmp_path / "source")
    built = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
                  "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                 env={"CC": "/nonexistent/cc"})
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "atoll build: no C compiler" in built.stdout + built.stderr
    wheels = list((tmp_path / "dist").glob("atoll-*.whl"))
    assert [w.name for w in wheels] == ["atoll-0.1.0-py3-none-any.whl"]

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    how = _install(venv, wheels[0])
    atoll = venv / "bin" / "atoll"
    version = _run([str(atoll), "--version"], cwd=tmp_path)
    assert version.returncode == 0 and "0.1.0" in version.stdout, version.stderr

    root = tmp_path / "run"
    root.mkdir()
    config = ClusterConfig("wheel-test", tuple(
        RegionConfig(r, f"http://127.0.0.1:{free_port()}", f"https://127.0.0.1:{free_port()}")
        for r in ("one", "two")))
    (root / "cluster.toml").write_text(config.to_toml())
    for certs in (["init", "--cluster-id", "wheel-test"], ["region", "--region", "one"],
                  ["region", "--region", "two"]):  # the wheel's own `atoll certs`
        made = _run([str(atoll), "certs", *certs, "--dir", str(root / "certs")], cwd=root)
        assert made.returncode == 0, made.stderr
    credentials = root / "credentials"
    nodes = {r.id: _serve(atoll, root / "cluster.toml", r.id, root,
                          *(["--admin-credentials", str(credentials)] if r.id == "one" else []))
             for r in config.regions}
    try:
        urls = [r.client_endpoint for r in config.regions]
        assert wait_until(lambda: all(_healthy(u) for u in urls), 30), \
            (root / "one.log").read_text()
        key = read_credentials(credentials)
        for url in urls:  # the key reaches region two by replication
            CREDENTIALS[url] = key
        assert wait_until(lambda: all(_accepts_key(u) for u in urls), 30)
        signed = {"AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1]}
        assert node_json(urls[0], "/_atoll/status")["compiled"] is False
        with urllib.request.urlopen(urls[0] + "/console", timeout=5) as response:
            assert b"atoll console" in response.read()  # package data made it in

        python = str(venv / "bin" / "python")
        cache = str(tmp_path / "topology-cache.json")
        wrote = _run([python, "-c", CLIENT_SCRIPT, ",".join(urls), "wheel", cache, "write"],
                     timeout_s=60, cwd=tmp_path, env=signed)
        assert wrote.returncode == 0, wrote.stderr[-3000:]
        answer = json.loads(wrote.stdout.strip().splitlines()[-1])
        assert answer["atoll"].startswith(str(venv)), "imported atoll from outside the venv"
        assert answer["item"]["v"] == {"S": "from the wheel"} and answer["route"] == "one"

        # region one dies: the failover client reads from two (the write replicated)
        assert wait_until(lambda: _run([python, "-c", CLIENT_SCRIPT, urls[1], "wheel", cache,
                                        "read"], timeout_s=60, cwd=tmp_path,
                                       env=signed).stdout.find(
            "from the wheel") >= 0, 10)
        nodes["one"].send_signal(signal.SIGKILL)
        nodes["one"].wait(timeout=10)
        started = time.monotonic()
        read = _run([python, "-c", CLIENT_SCRIPT, ",".join(urls), "wheel", cache, "read"],
                    timeout_s=60, cwd=tmp_path, env=signed)
        assert read.returncode == 0, read.stderr[-3000:]
        answer = json.loads(read.stdout.strip().splitlines()[-1])
        assert answer["item"]["v"] == {"S": "from the wheel"} and answer["route"] == "two"
        print(f"\ninstalled with {how}; after region one died the client read from "
              f"{answer['route']} ({time.monotonic() - started:.1f} s, a new process)")
    finally:
        for node in nodes.values():
            if node.poll() is None:
                node.terminate()
                node.wait(timeout=15)
