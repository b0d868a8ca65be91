"""`atoll serve`, `atoll cluster` and `atoll proxy` refuse what they cannot do with one
clear line and exit status 1 or 2, never a traceback: a port already taken (a node's client
or peer port, the proxy's), an address that is not this machine's, and region lists no
cluster could have. Each runs the real command in a subprocess."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import ATOLL, ClusterProcesses, free_port

TIMEOUT_S = 30


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ATOLL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def _refused(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode in (1, 2), output
    assert "Traceback" not in output, output
    assert fragment in output, output


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _run("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                      cwd=tmp_path)
    _refused(result, f"Error: cannot listen on 127.0.0.1:{port}: ")
    assert "address already in use" in result.stderr


def test_serve_on_an_address_of_another_machine_says_so(tmp_path: Path) -> None:
    result = _run("serve", "--host", "192.0.2.1", "--port", str(free_port()), "--in-memory",
                  cwd=tmp_path)  # 192.0.2.0/24 is TEST-NET-1: never a local address
    _refused(result, "Error: cannot listen on 192.0.2.1:")


def test_serve_with_its_peer_port_in_use_says_so_and_frees_its_client_port(
        tmp_path: Path) -> None:
    client_port, other_client, other_peer = free_port(), free_port(), free_port()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        peer_port = taken.getsockname()[1]
        config = tmp_path / "cluster.toml"
        config.write_text(
            'cluster_id = "cli"\ngeneration = 1\n\n'
            f'[[regions]]\nid = "a"\nclient_endpoint = "http://127.0.0.1:{client_port}"\n'
            f'peer_endpoint = "http://127.0.0.1:{peer_port}"\n\n'
            f'[[regions]]\nid = "b"\nclient_endpoint = "http://127.0.0.1:{other_client}"\n'
            f'peer_endpoint = "http://127.0.0.1:{other_peer}"\n')
        result = _run("serve", "--config", str(config), "--region", "a", "--auth", "off",
                      "--data-dir", str(tmp_path / "a"), cwd=tmp_path)
    _refused(result, f"Error: cannot listen on 127.0.0.1:{peer_port} (peers): ")
    with socket.create_server(("127.0.0.1", client_port)):
        pass  # the client port it had opened is free again


@pytest.mark.parametrize("regions,fragment", [
    ("a,a", "duplicate region id 'a'"),
    (",", "the topology has no regions"),
    ("A B", "bad region id 'A B'"),
])
def test_cluster_refuses_impossible_region_lists(tmp_path: Path, regions: str,
                                                 fragment: str) -> None:
    result = _run("cluster", "--regions", regions, "--data-dir", str(tmp_path / "data"),
                  cwd=tmp_path)
    _refused(result, f"Invalid value for --regions: {fragment}")
    assert not (tmp_path / "data").exists(), "nothing is started or written"


def test_proxy_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path / "cluster", ("us-east", "eu-west")).start()
    try:
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            result = _run("proxy", "--seed", cluster.url("us-east"), "--listen",
                          f"127.0.0.1:{port}", "--cache", str(tmp_path / "cache"),
                          "--credentials", str(cluster.credentials_path), "--profile", "atoll",
                          cwd=tmp_path)
    finally:
        cluster.stop()
    _refused(result, f"Error: cannot listen on 127.0.0.1:{port}: ")
