"""The cluster config file: the topology a node starts from, as TOML.

One file per cluster, the same on every node:

    cluster_id = "atoll-local"
    generation = 1

    [[regions]]
    id = "us-east"
    name = "dynamodb.us-east.atoll.test"          # optional; clients never need it
    client_endpoint = "http://127.0.0.1:8000"     # where SDKs connect
    peer_endpoint = "http://127.0.0.1:9000"       # where other regions replicate from
    # or lists: client_endpoints = ["http://...", ...], peer_endpoints = [...]

Validation follows DESIGN.md decision 8 (atoll.topology.model): a topology is never
empty, every region has at least one client and one peer endpoint, ids are unique.
Client and peer endpoints are separate listeners so a fault proxy can sit between
regions without touching client traffic. A running node may hold a newer topology than
its file (see atoll.node.topology): the file is where it starts, not what it keeps.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import orjson

from atoll.errors import ValidationError
from atoll.topology.model import (
    ClusterConfig,
    RegionConfig,
    topology_from_dict,
    validate,
)

__all__ = ["ClusterConfig", "RegionConfig", "load_cluster_config", "local_cluster",
           "parse_cluster_config", "parse_topology_text"]


def parse_cluster_config(data: dict[str, Any]) -> ClusterConfig:
    """A valid topology from a parsed TOML (or JSON) document, or ValidationError."""
    try:
        return validate(topology_from_dict(data))
    except ValidationError as exc:
        raise ValidationError(f"cluster config: {exc.message}") from None


def parse_topology_text(text: str, filename: str = "") -> ClusterConfig:
    """Decode a topology written as JSON or TOML (by extension, else by its first
    character). Shapes only: the result may still be invalid (see `problems()`)."""
    stripped = text.lstrip()
    as_json = filename.endswith(".json") or (not filename.endswith(".toml")
                                             and stripped.startswith("{"))
    try:
        data = orjson.loads(text) if as_json else tomllib.loads(text)
    except (orjson.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(f"{filename or 'topology'}: {exc}") from None
    return topology_from_dict(data)


def load_cluster_config(path: str | Path) -> ClusterConfig:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(f"cluster config {path}: {exc}") from None
    return parse_cluster_config(data)


def local_cluster(regions: list[str], host: str = "127.0.0.1", client_port: int = 8000,
                  peer_port: int = 9000, cluster_id: str = "atoll-local",
                  generation: int = 1, client_scheme: str = "http",
                  peer_scheme: str = "http") -> ClusterConfig:
    """A cluster of `regions` on one machine: consecutive client and peer ports."""
    return ClusterConfig(cluster_id, tuple(
        RegionConfig(r, f"{client_scheme}://{host}:{client_port + i}",
                     f"{peer_scheme}://{host}:{peer_port + i}")
        for i, r in enumerate(regions)), generation)
