"""Engine: DynamoDB table semantics over Storage.

Modules by concept: tables/tabledef (catalog), items, reads (query/scan), batch,
indexdef/indexes (secondary indexes), transactions, ttl, tags (and account answers),
capacity (consumed capacity), replica (changes out and in), expr (a request's
expressions).

Reads run on the caller's (event-loop) thread; every write is a job the storage runs
inside a batch transaction, one batch at a time, so a conditional write's read, check
and write — and the item's index rows — are atomic with respect to every other write.
"""

from atoll.engine.engine import Engine

__all__ = ["Engine"]
