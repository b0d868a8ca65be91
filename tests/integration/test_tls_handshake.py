"""Mutual TLS between regions: real handshakes on loopback under uvloop.

A cluster CA and two region certificates are made in a temporary directory (with
`atoll certs`, the CLI), plus a second cluster's CA. A peer-port server requiring
client certificates must serve a region of its cluster and read that region from the
certificate, and must never run its handler for a client without a certificate, with
one from another CA, with an expired one, or speaking plain HTTP. A node calling a peer
must refuse a server whose certificate is from another CA.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvloop
from click.testing import CliRunner

from atoll.auth.certs import ClusterFiles, issue_region_cert
from atoll.auth.tls import (
    client_port_context,
    peer_client_context,
    peer_region,
    peer_server_context,
)
from atoll.cli.main import cli
from tests.support import free_port

HANDSHAKE_TIMEOUT_S = 5.0


@dataclass
class Cluster:
    files: ClusterFiles
    cluster_id: str

    def server(self, region: str) -> ssl.SSLContext:
        f = self.files
        return peer_server_context(f.region_cert(region), f.region_key(region), f.ca_cert)

    def client(self, region: str, check_hostname: bool = True) -> ssl.SSLContext:
        f = self.files
        return peer_client_context(f.region_cert(region), f.region_key(region), f.ca_cert,
                                   check_hostname)


def make_cluster(directory: Path, cluster_id: str, regions: list[str]) -> Cluster:
    runner = CliRunner()
    result = runner.invoke(cli, ["certs", "init", "--dir", str(directory),
                                 "--cluster-id", cluster_id])
    assert result.exit_code == 0, result.output
    for region in regions:
        result = runner.invoke(cli, ["certs", "region", "--dir", str(directory),
                                     "--region", region, "--host", "127.0.0.1",
                                     "--host", "localhost"])
        assert result.exit_code == 0, result.output
    return Cluster(ClusterFiles(directory), cluster_id)


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cluster, Cluster]:
    ours = make_cluster(tmp_path_factory.mktemp("ours"), "prod-1", ["us-east", "eu-west"])
    theirs = make_cluster(tmp_path_factory.mktemp("theirs"), "prod-1", ["us-east"])
    return ours, theirs


def run(coroutine: Callable[[], Awaitable[Any]]) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(asyncio.wait_for(coroutine(), 30))


class PeerServer:
    """A peer-port stand-in: answers each line with the region its client's certificate
    names, and records every connection its handler saw."""

    def __init__(self, context: ssl.SSLContext, cluster_id: str | None = None) -> None:
        self.context = context
        self.cluster_id = cluster_id
        self.port = free_port()
        self.handled: list[str | None] = []
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        region = peer_region(writer.get_extra_info("peercert"), self.cluster_id)
        assert peer_region(writer.get_extra_info("ssl_object"), self.cluster_id) == region
        self.handled.append(region)
        try:
            await reader.readline()
            writer.write(f"{region}\n".encode())
            await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> PeerServer:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, ssl=self.context,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def exchange(port: int, context: ssl.SSLContext | None,
                   server_hostname: str | None = "127.0.0.1") -> tuple[bytes, str | None]:
    """Connect, say hello, and return (what came back, the server's region)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=context,
        server_hostname=server_hostname if context is not None else None),
        HANDSHAKE_TIMEOUT_S)
    try:
        server_region = peer_region(writer.get_extra_info("ssl_object")) if context else None
        writer.write(b"hello\n" if context is not None else
                     b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), HANDSHAKE_TIMEOUT_S)
        return answer, server_region
    finally:
        writer.close()


async def refused(port: int, context: ssl.SSLContext | None) -> None:
    """The handshake fails, or the connection yields only EOF (or, to a plain-TCP client,
    a TLS alert record): never an answer."""
    try:
        answer, _ = await exchange(port, context)
    except (ssl.SSLError, ConnectionError):
        return
    assert answer == b"" or (context is None and answer[:1] == b"\x15"), answer


def test_a_region_of_the_cluster_is_accepted_and_named(clusters: tuple[Cluster, Cluster]) -> None:
    ours, _ = clusters

    async def scenario() -> None:
        async with PeerServer(ours.server("us-east"), "prod-1") as server:
            answer, server_region = await exchange(server.port, ours.client("eu-west"))
            assert answer == b"eu-west\n"
            assert server_region == "us-east"
            answer, _ = await exchange(server.port, ours.client("us-east"), "localhost")
            assert answer == b"us-east\n"
            assert server.handled == ["eu-west", "us-east"]
    run(scenario)


@pytest.mark.parametrize("client", ["no-certificate", "other-ca", "plain-http", "expired"])
def test_clients_outside_the_cluster_are_refused_before_any_request(
        clusters: tuple[Cluster, Cluster], client: str, tmp_path: Path) -> None:
    ours, theirs = clusters
    context: ssl.SSLContext | None
    if client == "no-certificate":
        context = ssl.create_default_context(cafile=ours.files.ca_cert)
    elif client == "other-ca":
        # their region certificate, but trusting our CA so only our check can refuse
        context = peer_client_context(theirs.files.region_cert("us-east"),
                                      theirs.files.region_key("us-east"), ours.files.ca_cert)
    elif client == "expired":
        stale = ClusterFiles(tmp_path)
        for name in ("ca_cert", "ca_key"):
            getattr(stale, name).write_bytes(getattr(ours.files, name).read_bytes())
        long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40)
        issue_region_cert(stale, "eu-west", ["127.0.0.1"], long_ago, validity_days=30)
        context = peer_client_context(stale.region_cert("eu-west"),
                                      stale.region_key("eu-west"), ours.files.ca_cert)
    else:
        context = None

    async def scenario() -> None:
        async with PeerServer(ours.server("us-east")) as server:
            await refused(server.port, context)
            await asyncio.sleep(0.05)
            assert server.handled == []
            # and the server still serves its own cluster afterwards
            answer, _ = await exchange(server.port, ours.client("eu-west"))
            assert answer == b"eu-west\n"
    run(scenario)


def test_a_node_refuses_a_server_of_another_ca(clusters: tuple[Cluster, Cluster]) -> None:
    ours, theirs = clusters

    async def scenario() -> None:
        async with PeerServer(theirs.server("us-east")) as impostor:
            with pytest.raises(ssl.SSLCertVerificationError):
                await exchange(impostor.port, ours.client("eu-west"))
            assert impostor.handled == []
    run(scenario)


def test_the_host_name_is_checked_unless_turned_off(clusters: tuple[Cluster, Cluster]) -> None:
    ours, _ = clusters

    async def scenario() -> None:
        async with PeerServer(ours.server("us-east")) as server:
            with pytest.raises(ssl.SSLCertVerificationError):
                await exchange(server.port, ours.client("eu-west"), "node-b.example")
            answer, region = await exchange(
                server.port, ours.client("eu-west", check_hostname=False), "node-b.example")
            assert answer == b"eu-west\n" and region == "us-east"
    run(scenario)


def test_client_port_serves_https_without_client_certificates(
        clusters: tuple[Cluster, Cluster]) -> None:
    ours, _ = clusters
    files = ours.files

    async def scenario() -> None:
        context = client_port_context(files.region_cert("us-east"), files.region_key("us-east"))
        async with PeerServer(context) as server:
            answer, region = await exchange(
                server.port, ssl.create_default_context(cafile=files.ca_cert))
            assert answer == b"None\n" and region == "us-east"
            assert server.handled == [None]
    run(scenario)


def test_contexts_refuse_old_protocols(clusters: tuple[Cluster, Cluster]) -> None:
    ours, _ = clusters
    for context in (ours.server("us-east"), ours.client("eu-west"),
                    client_port_context(ours.files.region_cert("us-east"),
                                        ours.files.region_key("us-east"))):
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert ours.server("us-east").verify_mode == ssl.CERT_REQUIRED
