"""The SQLite implementation of `Storage`: one WAL database file per node.

storage.py      SqliteStorage: lifecycle, where batches run, answers (start here)
batches.py      a batch of jobs in one transaction: group commit, replay, COMMIT
txn.py          SqliteTxn: the SQL of every write, inside the batch's transaction
durability.py   the syncer thread's fdatasync; answers that wait for durability
checkpoints.py  WAL checkpoints off the commit path, and rewinds between batches
reads.py        every read, on the reader connection
cache.py        the item cache behind get_item
connection.py   opening connections, the schema on first open
schema.py       the tables and indexes
"""

from atoll.storage.sqlite.storage import SqliteStorage
from atoll.storage.sqlite.txn import SqliteTxn

__all__ = ["SqliteStorage", "SqliteTxn"]
