"""A node's security set-up (DESIGN.md decision 11): who may reach which port.

Theory of operation: at start-up the node loads, from the `atoll certs` directory, the
cluster data key (it seals the access keys' secrets) and, in a cluster, its region's
certificate for mutual TLS between regions; it builds the key store, the access control
every client-port request goes through (SigV4 verification and the role check,
api/access.py) and, with `--tls-cert/--tls-key`, HTTPS on the client port. A node
refuses to start (ValueError) rather than expose a port nothing authenticates: a client
port beyond loopback with `--auth off`, or a peer port beyond loopback without mutual
TLS, unless the operator said `--insecure`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from atoll.api.access import OFF, AccessControl
from atoll.auth.certs import ClusterFiles, read_data_key
from atoll.auth.sigv4 import SigV4Verifier
from atoll.auth.tls import client_port_context
from atoll.engine import Engine
from atoll.engine.context import wall_clock_ms
from atoll.node.config import NodeConfig
from atoll.node.keys import KeyStore, read_data_key_or_make
from atoll.node.peers import PeerTls

_MODES = {"off": "auth off: requests are not checked (any credentials work)",
          "warn": "auth warn: unsigned or refused requests are served and counted",
          "required": "auth required: requests must be signed with a key"}


@dataclass
class NodeSecurity:
    peer_tls: PeerTls | None  # None: peers are plain HTTP, identified by their headers
    keys: KeyStore
    access: AccessControl
    client_tls: ssl.SSLContext | None  # None: the client port speaks plain HTTP


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problems(config: NodeConfig, peer_tls: bool) -> list[str]:
    """Why this node must not start as configured: a port beyond loopback that nothing
    authenticates, unless the operator said --insecure."""
    if config.insecure:
        return []
    problems = []
    if config.auth == OFF and not is_loopback(config.host):
        problems.append(f"the client port listens on {config.host}, beyond loopback, with "
                        "--auth off: anyone who reaches it could read and write every table. "
                        "Use --auth required (or warn), or say --insecure")
    peer_host = (config.peer_listen[0] if config.peer_listen else None) or (
        config.cluster.region(config.region).peer_address[0]
        if config.cluster is not None and config.cluster.has_region(config.region) else None)
    if peer_host is not None and not peer_tls and not is_loopback(peer_host):
        problems.append(f"the peer port listens on {peer_host}, beyond loopback, without "
                        "mutual TLS: give --certs (atoll certs), or say --insecure")
    return problems


def set_up_security(config: NodeConfig, engine: Engine, data_root: str) -> NodeSecurity:
    """The data key, the key store, the access control, the TLS contexts; ValueError (or
    OSError) for a configuration that would expose an unauthenticated port or whose
    files are missing. `data_root`: where a lone node keeps a data key it makes."""
    cluster = config.cluster
    files = ClusterFiles(Path(config.certs_dir)) if config.certs_dir else None
    peer_tls = None
    if files is not None and cluster is not None:
        peer_tls = PeerTls.load(files, config.region, cluster.cluster_id)
    problems = exposure_problems(config, peer_tls is not None)
    if problems:
        raise ValueError("refusing to start: " + "; ".join(problems))
    data_key: bytes | None = None
    if files is not None:
        data_key = read_data_key(files.data_key)
    elif config.auth != OFF or config.admin_credentials:
        if cluster is not None:
            raise ValueError("a cluster node with --auth needs --certs (the directory "
                             "`atoll certs init` made: every region shares its data key)")
        data_key = read_data_key_or_make(Path(data_root) / "data.key")
    keys = KeyStore(engine, data_key)
    verifier = SigV4Verifier(keys.lookup) if config.auth != OFF else None
    # Signatures carry the clients' wall-clock time: the 5-minute window is checked
    # against this machine's wall clock (a machine whose clock is off refuses what is
    # outside its window, as DynamoDB's endpoint would). `--clock-offset-ms` and
    # `--settable-clock` shift Atoll's own clock only (the skew drills and tests): the
    # skewed node's clock watch refuses its writes, while clients and operators still
    # reach it, signing with the real time, and see why.
    access = AccessControl(config.auth, verifier, config.region, wall_clock_ms,
                           pause=asyncio.sleep)
    client_tls = None
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise ValueError("HTTPS on the client port needs both --tls-cert and --tls-key")
        client_tls = client_port_context(Path(config.tls_cert), Path(config.tls_key))
    return NodeSecurity(peer_tls, keys, access, client_tls)


def security_summary(config: NodeConfig, peer_tls: bool) -> str:
    """One line for the start-up message: the auth mode and how peers are reached."""
    summary = _MODES[config.auth]
    if config.cluster is not None:
        summary += ("; peers: mutual TLS" if peer_tls
                    else "; peers: plain HTTP, not authenticated")
    return summary
