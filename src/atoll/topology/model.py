"""The topology: which regions exist, where they listen, and which version this is.

Theory of operation (DESIGN.md decision 8)
- A topology is plain data: a cluster id, a generation number and the regions. Each
  region has an id, one or more *client* endpoints (where SDKs connect), one or more
  *peer* endpoints (where other regions replicate from) and, optionally, a DNS `name`
  that clients may use but never need: every endpoint is an address (`http://HOST:PORT`).
- Decoding (`topology_from_dict`) checks shapes only: a topology that decodes may still
  be invalid. `problems()` lists what makes it invalid — an empty region list, a region
  with no client or no peer endpoint, duplicate ids, a generation that is not a positive
  integer. The compare-and-set rule (atoll.topology.update) refuses anything invalid, so
  a plan that would leave a region with no endpoint can never be applied: that is the
  failure of the 2025 DynamoDB DNS outage, made unrepresentable in an accepted topology.
- Pure: no I/O. The TOML file format lives in atoll.topology.config, the JSON wire
  format is `to_dict` / `topology_from_dict`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from atoll.errors import ValidationError

MAX_REGIONS = 64
MAX_ENDPOINTS_PER_REGION = 16
# Generations stay exact in every JSON parser (2^53) and a plan may not jump further than
# MAX_GENERATION_STEP above the current one (atoll.topology.update): a forged or mistyped
# plan at 2^63-1 would otherwise leave no higher generation for the operator's fix.
MAX_GENERATION = 2**53
MAX_GENERATION_STEP = 1_000_000
MAX_NAME_CHARS = 253
MAX_CLUSTER_ID_CHARS = 128

_REGION_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
_DNS_NAME_RE = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,62})"
                          r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?\Z")


class TopologyError(ValidationError):
    """A topology could not be decoded (wrong types, not an object): bad input."""


def _endpoints(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True, init=False)
class RegionConfig:
    """One region. `client_endpoint` / `peer_endpoint` name the first (preferred) one."""

    id: str
    client_endpoints: tuple[str, ...]
    peer_endpoints: tuple[str, ...]
    name: str | None

    def __init__(self, id: str, client_endpoints: str | Sequence[str],
                 peer_endpoints: str | Sequence[str], name: str | None = None) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "client_endpoints", _endpoints(client_endpoints))
        object.__setattr__(self, "peer_endpoints", _endpoints(peer_endpoints))
        object.__setattr__(self, "name", name)

    @property
    def client_endpoint(self) -> str:
        return self.client_endpoints[0]

    @property
    def peer_endpoint(self) -> str:
        return self.peer_endpoints[0]

    @property
    def client_address(self) -> tuple[str, int]:
        return endpoint_address(self.client_endpoint)

    @property
    def peer_address(self) -> tuple[str, int]:
        return endpoint_address(self.peer_endpoint)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name,
                "client_endpoints": list(self.client_endpoints),
                "peer_endpoints": list(self.peer_endpoints)}


@dataclass(frozen=True)
class ClusterConfig:
    """A topology: the regions of one cluster at one generation."""

    cluster_id: str
    regions: tuple[RegionConfig, ...]
    generation: int = 1
    # other keys of a TOML config file; not part of the topology's identity
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    def region(self, region_id: str) -> RegionConfig:
        for region in self.regions:
            if region.id == region_id:
                return region
        raise ValidationError(f"Region {region_id} is not in cluster {self.cluster_id}")

    def has_region(self, region_id: str) -> bool:
        return any(r.id == region_id for r in self.regions)

    def peers_of(self, region_id: str) -> tuple[RegionConfig, ...]:
        return tuple(r for r in self.regions if r.id != region_id)

    def region_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.regions)

    def with_generation(self, generation: int) -> ClusterConfig:
        return ClusterConfig(self.cluster_id, self.regions, generation, self.options)

    def same_layout(self, other: ClusterConfig) -> bool:
        """Same cluster and regions, whatever the generation."""
        return self.cluster_id == other.cluster_id and self.regions == other.regions

    def problems(self) -> list[str]:
        return topology_problems(self)

    def to_dict(self) -> dict[str, Any]:
        """The JSON wire form served at GET /_atoll/topology."""
        return {"cluster_id": self.cluster_id, "generation": self.generation,
                "regions": [r.to_dict() for r in self.regions]}

    def to_toml(self) -> str:
        lines = [f'cluster_id = "{self.cluster_id}"', f"generation = {self.generation}", ""]
        for region in self.regions:
            lines += ["[[regions]]", f'id = "{region.id}"']
            if region.name is not None:
                lines.append(f'name = "{region.name}"')
            lines += _toml_endpoints("client", region.client_endpoints)
            lines += _toml_endpoints("peer", region.peer_endpoints)
            lines.append("")
        return "\n".join(lines)


# Backward-compatible name: the topology is what the cluster config file describes.
Topology = ClusterConfig


def _toml_endpoints(kind: str, endpoints: tuple[str, ...]) -> list[str]:
    if len(endpoints) == 1:
        return [f'{kind}_endpoint = "{endpoints[0]}"']
    return [f"{kind}_endpoints = [" + ", ".join(f'"{e}"' for e in endpoints) + "]"]


def endpoint_address(endpoint: str) -> tuple[str, int]:
    """(host, port) of `http://HOST:PORT` or `https://HOST:PORT`; ValidationError for
    anything else. (Peer links use mutual TLS whenever the node has certificates, whatever
    the scheme says: `https://` in the topology is for the reader; client endpoints that
    say `https://` are reached with TLS by the failover client and the proxy.)"""
    try:
        parts = urlsplit(endpoint)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        port = None
    else:
        if parts.scheme in ("http", "https") and parts.hostname and port is not None and port > 0 \
                and parts.path in ("", "/") and not parts.query and not parts.fragment \
                and parts.username is None:
            return parts.hostname, port
    raise ValidationError(f"Endpoint must look like http://HOST:PORT or https://HOST:PORT, "
                          f"got {endpoint!r}")


def topology_problems(topology: ClusterConfig) -> list[str]:
    """Why `topology` must not be applied (empty when it is valid)."""
    problems = []
    if not isinstance(topology.cluster_id, str) or not topology.cluster_id \
            or len(topology.cluster_id) > MAX_CLUSTER_ID_CHARS:
        problems.append("cluster_id must be a non-empty string")
    generation = topology.generation
    if isinstance(generation, bool) or not isinstance(generation, int) \
            or not 1 <= generation <= MAX_GENERATION:
        problems.append(f"generation must be a positive integer, got {generation!r}")
    if not topology.regions:
        problems.append("the topology has no regions (a topology is never empty)")
    if len(topology.regions) > MAX_REGIONS:
        problems.append(f"more than {MAX_REGIONS} regions")
    seen_ids: set[str] = set()
    owner: dict[str, str] = {}  # endpoint -> region listing it
    for region in topology.regions:
        problems += _region_problems(region, seen_ids, owner)
    return problems


def _region_problems(region: RegionConfig, seen_ids: set[str], owner: dict[str, str]) -> list[str]:
    problems = []
    if not isinstance(region.id, str) or not _REGION_ID_RE.match(region.id):
        problems.append(f"bad region id {region.id!r} (lower-case letters, digits, '-')")
    elif region.id in seen_ids:
        problems.append(f"duplicate region id {region.id!r}")
    else:
        seen_ids.add(region.id)
    if region.name is not None and (not isinstance(region.name, str)
                                    or not _DNS_NAME_RE.match(region.name)):
        problems.append(f"region {region.id}: bad DNS name {region.name!r}")
    for kind, endpoints in (("client", region.client_endpoints), ("peer", region.peer_endpoints)):
        if not endpoints:
            problems.append(f"region {region.id} has no {kind} endpoint")
        if len(endpoints) > MAX_ENDPOINTS_PER_REGION:
            problems.append(f"region {region.id}: more than {MAX_ENDPOINTS_PER_REGION} "
                            f"{kind} endpoints")
        for endpoint in endpoints:
            try:
                endpoint_address(endpoint)
            except ValidationError as exc:
                problems.append(f"region {region.id}: {exc.message}")
                continue
            other = owner.setdefault(endpoint, region.id)
            if other != region.id:
                problems.append(f"endpoint {endpoint} is listed by regions {other} "
                                f"and {region.id}")
        if len(set(endpoints)) != len(endpoints):
            problems.append(f"region {region.id}: duplicate {kind} endpoints")
    return problems


def validate(topology: ClusterConfig) -> ClusterConfig:
    """`topology`, or ValidationError naming every problem."""
    problems = topology_problems(topology)
    if problems:
        raise ValidationError("invalid topology: " + "; ".join(problems))
    return topology


# --- decoding (shapes only; `problems()` judges the content) -----------------------------

def topology_from_dict(data: Any) -> ClusterConfig:
    """Decode the JSON wire form or a parsed TOML file. Accepts `client_endpoint` /
    `peer_endpoint` (one string) or `client_endpoints` / `peer_endpoints` (lists).
    Raises TopologyError for wrong shapes; the result may still have `problems()`."""
    if not isinstance(data, dict):
        raise TopologyError("a topology must be a JSON object")
    cluster_id = data.get("cluster_id")
    if not isinstance(cluster_id, str):
        raise TopologyError("cluster_id must be a string")
    generation = data.get("generation", 1)
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise TopologyError(f"generation must be an integer, got {generation!r}")
    raw_regions = data.get("regions", [])
    if not isinstance(raw_regions, list):
        raise TopologyError("regions must be a list")
    if len(raw_regions) > MAX_REGIONS:
        raise TopologyError(f"more than {MAX_REGIONS} regions")
    regions = tuple(_region_from_dict(raw) for raw in raw_regions)
    options = {k: v for k, v in data.items() if k not in ("cluster_id", "generation", "regions")}
    return ClusterConfig(cluster_id, regions, generation, options)


def _region_from_dict(raw: Any) -> RegionConfig:
    if not isinstance(raw, dict):
        raise TopologyError("each region must be an object")
    region_id = raw.get("id")
    if not isinstance(region_id, str):
        raise TopologyError(f"region id must be a string, got {region_id!r}")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise TopologyError(f"region {region_id}: name must be a string or null")
    return RegionConfig(region_id, _endpoint_list(raw, region_id, "client"),
                        _endpoint_list(raw, region_id, "peer"), name)


def _endpoint_list(raw: dict[str, Any], region_id: str, kind: str) -> tuple[str, ...]:
    one, many = raw.get(f"{kind}_endpoint"), raw.get(f"{kind}_endpoints")
    endpoints: list[Any] = []
    if one is not None:
        endpoints.append(one)
    if many is not None:
        if not isinstance(many, list):
            raise TopologyError(f"region {region_id}: {kind}_endpoints must be a list")
        if len(many) > MAX_ENDPOINTS_PER_REGION:
            raise TopologyError(f"region {region_id}: more than {MAX_ENDPOINTS_PER_REGION} "
                                f"{kind} endpoints")
        endpoints += [e for e in many if e not in endpoints]
    if not all(isinstance(e, str) for e in endpoints):
        raise TopologyError(f"region {region_id}: {kind} endpoints must be strings")
    return tuple(endpoints)
