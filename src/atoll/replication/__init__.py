"""Replication: changes, the merge rule, cursors and the pull protocol (sans-I/O).

Read README.md in this directory for how it works, its guarantees and its limits.
`ReplicaStore` (store.py) is the interface a storage engine implements; `Replica`
(replica.py) is the core a shell drives with timers and messages.
"""

from atoll.replication.change import (
    Change,
    ItemWrite,
    TableOp,
    Version,
    decode_change,
    encode_change,
)
from atoll.replication.cursors import Cursor
from atoll.replication.errors import (
    BadChange,
    BadMessage,
    OutOfOrder,
    ReplicationError,
    UnknownTable,
)
from atoll.replication.merge import Conflict, Stored, TableState
from atoll.replication.replica import Replica, ReplicaConfig
from atoll.replication.store import ApplyResult, ReplicaStore, RetentionPlan, Snapshot

__all__ = [
    "ApplyResult", "BadChange", "BadMessage", "Change", "Conflict", "Cursor", "ItemWrite",
    "OutOfOrder", "Replica", "ReplicaConfig", "ReplicaStore", "ReplicationError",
    "RetentionPlan", "Snapshot", "Stored", "TableOp", "TableState", "UnknownTable", "Version",
    "decode_change", "encode_change",
]
