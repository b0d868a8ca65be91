"""Topology: regions, their endpoints and a generation number (pure).

model.py   regions, endpoints, validation, the JSON wire form
update.py  the compare-and-set rule: `decide(current, proposed) -> Accept | Reject`
config.py  the TOML cluster config a node starts from
"""

from atoll.topology.config import load_cluster_config, local_cluster
from atoll.topology.model import (
    ClusterConfig,
    RegionConfig,
    Topology,
    TopologyError,
    topology_from_dict,
    validate,
)
from atoll.topology.update import Accept, Reject, decide

__all__ = ["Accept", "ClusterConfig", "RegionConfig", "Reject", "Topology", "TopologyError",
           "decide", "load_cluster_config", "local_cluster", "topology_from_dict", "validate"]
