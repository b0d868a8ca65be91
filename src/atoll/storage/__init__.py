"""Storage: the `Storage` protocol (protocol.py) and its implementations.

The engine never writes SQL or touches rows directly: it asks a `Storage` for reads (on
the event-loop thread) and submits write jobs, functions of a `WriteTxn`, that run in
batches, one batch at a time, each batch one group commit.

sqlite/     SqliteStorage: one WAL database file per node (what the node runs)
memory/     MemoryStorage: pure Python, same semantics, nothing on disk
"""

from atoll.storage.memory import MemoryStorage
from atoll.storage.protocol import CorruptionDetected, Storage, WriteTxn
from atoll.storage.sqlite import SqliteStorage

__all__ = ["CorruptionDetected", "MemoryStorage", "SqliteStorage", "Storage", "WriteTxn"]
