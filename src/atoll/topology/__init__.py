"""Topology: regions, their endpoints and a generation number (pure)."""

from atoll.topology.config import ClusterConfig, RegionConfig, load_cluster_config

__all__ = ["ClusterConfig", "RegionConfig", "load_cluster_config"]
