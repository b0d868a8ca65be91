"""Engine: DynamoDB table semantics over Storage (items, query/scan, batches, tables).

Reads run on the caller's (event-loop) thread; every write is a job the storage runs on
its writer thread, inside the batch transaction, so a conditional write's read, check
and write are atomic with respect to every other write.
"""

from atoll.engine.engine import Engine

__all__ = ["Engine"]
