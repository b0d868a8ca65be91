"""PostgresStorage: a region's storage in PostgreSQL, for any number of Atoll nodes.

storage.py  the write path (writer thread, group commit, replays) and the watcher
txn.py      the batch's transaction as jobs see it (pipeline mode, the region's write lock)
reads.py    reads on the event-loop thread
streams.py  the stream writes, and how stream positions follow commit order
loghead.py  the changelog's order: why a reader following it never skips a change
schema.py   the tables, in SQL that Postgres-compatible distributed engines also speak
leases.py   one node at a time per background job
connection.py  session settings, timeouts, what each driver error means
"""

from atoll.storage.postgres.storage import PostgresStorage

__all__ = ["PostgresStorage"]
