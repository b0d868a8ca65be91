"""Engine: DynamoDB table semantics over Storage.

Modules by concept, each a set of functions over one `EngineContext` (context.py:
catalog, storage, clock, region, now_ms, settings):
- definitions: tabledef, indexdef (parsing, keys, DescribeTable); catalog (the node's
  definitions, request and commit views); ddl (committing a rewritten definition);
- operations: tables, items, reads (Query/Scan), batch, transactions, ttl, tags (and the
  account answers); with capacity (consumed capacity) and expr (a request's expressions);
- indexes (index rows written with their items, backfill); outbox (every local write
  logs one change); replica (applying peers' changes);
- streams (stream records captured with their writes, streams kept in step with
  definitions), stream_reads (the Streams API), stream_upkeep (retention, rollover).
engine.py maps operation names to handlers and builds the context (`Engine`).

Reads run on the caller's (event-loop) thread; every write is a job the storage runs
inside a batch transaction, one batch at a time, so a conditional write's read, check
and write — and the item's index rows — are atomic with respect to every other write.
"""

from atoll.engine.engine import Engine

__all__ = ["Engine"]
