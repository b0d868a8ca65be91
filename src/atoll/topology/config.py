"""The cluster config: which regions exist and where they listen.

A TOML file (one per cluster, the same on every node):

    cluster_id = "atoll-local"
    generation = 1

    [[regions]]
    id = "us-east"
    client_endpoint = "http://127.0.0.1:8000"   # where SDKs connect
    peer_endpoint = "http://127.0.0.1:9000"     # where other regions replicate from

Validation follows DESIGN.md decision 8: a topology is never empty, every region has
both endpoints, ids are unique. Client and peer endpoints are separate listeners so a
fault proxy can sit between regions without touching client traffic.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from atoll.errors import ValidationError

_REGION_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")


@dataclass(frozen=True)
class RegionConfig:
    id: str
    client_endpoint: str
    peer_endpoint: str

    @property
    def client_address(self) -> tuple[str, int]:
        return _host_port(self.client_endpoint)

    @property
    def peer_address(self) -> tuple[str, int]:
        return _host_port(self.peer_endpoint)


@dataclass(frozen=True)
class ClusterConfig:
    cluster_id: str
    regions: tuple[RegionConfig, ...]
    generation: int = 1
    options: dict[str, Any] = field(default_factory=dict)

    def region(self, region_id: str) -> RegionConfig:
        for region in self.regions:
            if region.id == region_id:
                return region
        raise ValidationError(f"Region {region_id} is not in cluster {self.cluster_id}")

    def peers_of(self, region_id: str) -> tuple[RegionConfig, ...]:
        return tuple(r for r in self.regions if r.id != region_id)

    def region_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.regions)

    def to_toml(self) -> str:
        lines = [f'cluster_id = "{self.cluster_id}"', f"generation = {self.generation}", ""]
        for region in self.regions:
            lines += ["[[regions]]", f'id = "{region.id}"',
                      f'client_endpoint = "{region.client_endpoint}"',
                      f'peer_endpoint = "{region.peer_endpoint}"', ""]
        return "\n".join(lines)


def _host_port(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValidationError(f"Endpoint must look like http://HOST:PORT, got {endpoint!r}")
    return parts.hostname, parts.port


def parse_cluster_config(data: dict[str, Any]) -> ClusterConfig:
    cluster_id = data.get("cluster_id")
    if not isinstance(cluster_id, str) or not cluster_id:
        raise ValidationError("cluster config: cluster_id must be a non-empty string")
    generation = data.get("generation", 1)
    if not isinstance(generation, int) or generation < 1:
        raise ValidationError("cluster config: generation must be a positive integer")
    raw_regions = data.get("regions")
    if not isinstance(raw_regions, list) or not raw_regions:
        raise ValidationError("cluster config: at least one [[regions]] entry is required")
    regions = []
    for raw in raw_regions:
        region_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(region_id, str) or not _REGION_ID_RE.match(region_id):
            raise ValidationError(f"cluster config: bad region id {region_id!r}")
        client = raw.get("client_endpoint")
        peer = raw.get("peer_endpoint")
        if not client or not peer:
            raise ValidationError(f"cluster config: region {region_id} needs client_endpoint "
                                  "and peer_endpoint")
        region = RegionConfig(region_id, str(client), str(peer))
        region.client_address, region.peer_address  # noqa: B018 - validates both endpoints
        regions.append(region)
    ids = [r.id for r in regions]
    if len(set(ids)) != len(ids):
        raise ValidationError(f"cluster config: duplicate region ids in {ids}")
    options = {k: v for k, v in data.items() if k not in ("cluster_id", "generation", "regions")}
    return ClusterConfig(cluster_id, tuple(regions), generation, options)


def load_cluster_config(path: str | Path) -> ClusterConfig:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(f"cluster config {path}: {exc}") from None
    return parse_cluster_config(data)


def local_cluster(regions: list[str], host: str = "127.0.0.1", client_port: int = 8000,
                  peer_port: int = 9000, cluster_id: str = "atoll-local") -> ClusterConfig:
    """A cluster of `regions` on one machine: consecutive client and peer ports."""
    return ClusterConfig(cluster_id, tuple(
        RegionConfig(r, f"http://{host}:{client_port + i}", f"http://{host}:{peer_port + i}")
        for i, r in enumerate(regions)))
