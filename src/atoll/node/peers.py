"""Who is on the other end of a peer link: mutual TLS with the cluster's CA.

Theory of operation
- A node of a cluster with certificates (`atoll certs`, or `atoll cluster` locally)
  listens for peers with TLS that requires a client certificate signed by the cluster
  CA, and calls peers with TLS presenting its own region's certificate and trusting only
  that CA (atoll.auth.tls). A client without a certificate, with one from another CA,
  or speaking plain HTTP fails the handshake before any request is read.
- The handshake proves "a certificate of this cluster"; the region it names
  (`atoll://<cluster>/region/<r>`) is the caller's identity. `caller` accepts a request
  only if that region is in the current topology and is not this node's own, and, when
  the request also states its region (`X-Atoll-Region`, kept as a sanity check), only
  if the two agree. A pull acknowledges changes on behalf of the region it comes from,
  so a stranger claiming to be a region could make the others purge their changelogs:
  with this check a pull can only be made by the holder of that region's key.
- Calling out, `client` makes an HttpClient for one region: the endpoint's host is the
  server name checked against the certificate, and the server's certificate must name
  exactly the region the node meant to call (a topology pointing region A's endpoint at
  region B's server, or at anyone else's, gets nothing sent).
- Without certificates (`--insecure` on a network, or loopback only) peers are
  identified by the headers they send, as before: for tests and local development.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from atoll.auth.certs import ClusterFiles, cluster_id_of
from atoll.auth.tls import peer_client_context, peer_region, peer_server_context
from atoll.http.client import HttpClient
from atoll.topology.config import ClusterConfig

log = logging.getLogger(__name__)


class PeerRefusal(Exception):
    """A peer request from a caller that is not (or not only) a region of the topology."""


@dataclass
class PeerTls:
    """This node's side of mutual TLS between regions."""

    cluster_id: str
    server: ssl.SSLContext
    client: ssl.SSLContext

    @staticmethod
    def load(files: ClusterFiles, region: str, cluster_id: str) -> PeerTls:
        """The contexts for `region` from `files` (ValueError if they are missing or
        belong to another cluster)."""
        cert, key = files.region_cert(region), files.region_key(region)
        for path in (files.ca_cert, cert, key):
            if not path.exists():
                raise ValueError(f"{path} is missing: make it with `atoll certs` "
                                 f"(region {region})")
        ca_cluster = cluster_id_of(x509.load_pem_x509_certificate(files.ca_cert.read_bytes()))
        if ca_cluster != cluster_id:
            raise ValueError(f"the CA in {files.directory} is for cluster {ca_cluster!r}, "
                             f"the topology is cluster {cluster_id!r}")
        try:
            return PeerTls(cluster_id, peer_server_context(cert, key, files.ca_cert),
                           peer_client_context(cert, key, files.ca_cert))
        except ssl.SSLError as exc:
            raise ValueError(f"cannot use the certificates in {files.directory}: {exc}") from None


def caller(tls: PeerTls | None, peer_cert: dict[str, Any] | None,
           claimed: str | None, topology: ClusterConfig, own_region: str) -> str:
    """The region a peer request comes from, or PeerRefusal saying why it is refused."""
    if tls is None:  # no certificates: the caller's own word (insecure)
        if claimed is None or not topology.has_region(claimed) or claimed == own_region:
            raise PeerRefusal(f"not a member of this cluster (claims {claimed!r})")
        return claimed
    region = peer_region(peer_cert, tls.cluster_id)
    if region is None:
        raise PeerRefusal("no certificate of this cluster's CA naming one region")
    if not topology.has_region(region):
        raise PeerRefusal(f"region {region} is not in topology generation "
                          f"{topology.generation}")
    if region == own_region:
        raise PeerRefusal(f"a certificate of this node's own region {region}")
    if claimed is not None and claimed != region:
        raise PeerRefusal(f"claims region {claimed!r} with a certificate of {region}")
    return region


def client_factory(tls: PeerTls | None, local_address: str | None,
                   connect_timeout_s: float | None = None
                   ) -> Callable[[str, Sequence[str], dict[str, str]], HttpClient]:
    """Makes the HttpClient a node uses to call one region (see the module docstring);
    `connect_timeout_s` (ReplicationConfig.connect_timeout_ms) bounds opening each
    connection, so a dead endpoint of a region is passed over quickly."""
    def make(region: str, endpoints: Sequence[str], headers: dict[str, str]) -> HttpClient:
        if tls is None:
            return HttpClient(endpoints, headers, local_address=local_address,
                              connect_timeout_s=connect_timeout_s)
        cluster_id = tls.cluster_id

        def check(cert: dict[str, Any] | None) -> str | None:
            named = peer_region(cert, cluster_id)
            if named == region:
                return None
            return f"expected a certificate of region {region}, got {named or 'none of ours'}"

        return HttpClient(endpoints, headers, tls=tls.client, check_server=check,
                          local_address=local_address, connect_timeout_s=connect_timeout_s)
    return make


def files_for(directory: str | Path) -> ClusterFiles:
    return ClusterFiles(Path(directory))
