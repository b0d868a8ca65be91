"""TLS contexts for the peer and client ports, and the region a peer certificate names.

Theory of operation
- Peer port, server side (`peer_server_context`): TLS 1.2 or newer, the region's own
  certificate, and a client certificate *required* and verified against the cluster CA
  only (not the system's CAs: a certificate any public CA signed names no region here).
  A client without a certificate, with one from another CA, or speaking plain HTTP
  fails the handshake, before any request is read.
- Peer port, client side (`peer_client_context`): the same CA only, the region's own
  certificate presented, and the server's host name checked against the certificate's
  DNS/IP names (default; a node reaches peers at the endpoints listed in the topology).
- The handshake proves "a certificate of this cluster"; which region it is comes from
  `peer_region`, read from the verified certificate's `atoll://<cluster>/region/<r>`
  name. The caller must compare it with the region it expects (a pull claiming to be
  from region A must come over a connection whose certificate names A) and with the
  current topology. `peer_region` answers None for anything else: no certificate, an
  unverified one (Python returns an empty dict then), another cluster's id, or a
  certificate that names more than one region or a CN that disagrees.
- Client port (`client_port_context`): HTTPS with a certificate and key the operator
  gives; clients are authenticated by SigV4, not by certificates.
- Works with what `transport.get_extra_info('peercert')` returns under asyncio and
  uvloop (the dict of `SSLObject.getpeercert()`), or the SSL object itself.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from atoll.auth.certs import parse_region_uri

MIN_VERSION = ssl.TLSVersion.TLSv1_2


def peer_server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """For a node's peer port: requires a client certificate from the cluster CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSION
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=ca)
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def peer_client_context(cert: Path, key: Path, ca: Path,
                        check_hostname: bool = True) -> ssl.SSLContext:
    """For a node calling a peer: verifies the server against the cluster CA only and
    presents the node's region certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = MIN_VERSION
    context.load_verify_locations(cafile=ca)
    context.load_cert_chain(cert, key)
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def client_port_context(cert: Path, key: Path) -> ssl.SSLContext:
    """For the client (DynamoDB API) port: HTTPS with the operator's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSION
    context.load_cert_chain(cert, key)
    return context


def peer_region(peer: ssl.SSLObject | ssl.SSLSocket | dict[str, Any] | None,
                cluster_id: str | None = None) -> str | None:
    """The region a verified peer certificate names (of `cluster_id` if given), or None."""
    if isinstance(peer, (ssl.SSLObject, ssl.SSLSocket)):
        peer = peer.getpeercert()
    if not isinstance(peer, dict) or not peer:
        return None
    regions = set()
    for entry in peer.get("subjectAltName", ()):
        if not isinstance(entry, tuple) or len(entry) != 2 or entry[0] != "URI":
            continue
        parsed = parse_region_uri(entry[1]) if isinstance(entry[1], str) else None
        if parsed is None:
            continue
        if cluster_id is not None and parsed[0] != cluster_id:
            return None
        regions.add(parsed[1])
    if len(regions) != 1:
        return None
    region = regions.pop()
    common_names = [value for rdn in peer.get("subject", ()) for name, value in rdn
                    if name == "commonName"]
    if common_names and common_names != [region]:
        return None
    return region
