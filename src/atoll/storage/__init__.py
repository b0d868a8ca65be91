"""Storage: SQLite in WAL mode, one file per node, with group commit and a changelog.

The engine never writes SQL; it asks `SqliteStorage` for reads (on the caller's thread)
and submits write jobs that run in batches, one batch at a time, each batch one
group commit.
"""

from atoll.storage.sqlite import SqliteStorage, WriteTxn

__all__ = ["SqliteStorage", "WriteTxn"]
