"""Clients that keep working when a region, its DNS name or its network fails.

    import atoll.client
    ddb = atoll.client.boto3_client(seeds=["http://127.0.0.1:8000", "http://127.0.0.1:8001"],
                                    region_preference=["us-east", "eu-west"])
    ddb.put_item(TableName="t", Item={...})     # a normal boto3 DynamoDB client
    atoll.client.metrics(ddb)                   # route, failovers, per-region probes

routing.py  topology discovery, health probes, the route and one request's failover
            (shared by both, no request I/O of its own)
safety.py   which requests may be sent twice (pure)
cache.py    the last good topology on disk
boto.py     the boto3 client/resource (a botocore before-send hook)
proxy.py    `atoll proxy`: the same rules for any SDK, as a local HTTP sidecar
"""

import logging

from atoll.client.boto import boto3_client, boto3_resource, close, metrics, router
from atoll.client.routing import DiscoveryError, Router
from atoll.client.safety import retry_safe

# a library: its warnings (a region failing its probes) go where the application's
# logging sends them, not to stderr by default
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["DiscoveryError", "Router", "boto3_client", "boto3_resource", "close", "metrics",
           "retry_safe", "router"]
