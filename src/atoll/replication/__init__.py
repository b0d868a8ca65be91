"""Replication: changes, the merge rule, cursors, the pull protocol and the state
machines that drive it (sans-I/O).

Read README.md in this directory for how it works, its guarantees and its limits.
`ReplicationCore` (core.py) is what a shell drives — the node's asyncio replicator and
the simulator alike; `ReplicaStore`/`StoreTxn` (store.py) is what a storage implements;
the jobs in apply.py are the one implementation of every change replication makes.
"""

from atoll.replication.apply import ApplyChanges, ApplyOutcome, LocalWrite
from atoll.replication.change import (
    Change,
    ItemWrite,
    TableOp,
    Version,
    decode_change,
    encode_change,
)
from atoll.replication.config import ReplicationConfig
from atoll.replication.core import ReplicationCore
from atoll.replication.cursors import Cursor
from atoll.replication.errors import (
    BadChange,
    BadMessage,
    NotAPeer,
    ReplicationError,
    UnknownTable,
)
from atoll.replication.merge import Conflict, Stored, TableState
from atoll.replication.store import ReplicaStore, RetentionPlan, Snapshot, StoreTxn

__all__ = [
    "ApplyChanges", "ApplyOutcome", "BadChange", "BadMessage", "Change", "Conflict", "Cursor",
    "ItemWrite", "LocalWrite", "NotAPeer", "ReplicaStore", "ReplicationConfig",
    "ReplicationCore", "ReplicationError", "RetentionPlan", "Snapshot", "StoreTxn", "Stored",
    "TableOp", "TableState", "UnknownTable", "Version", "decode_change", "encode_change",
]
