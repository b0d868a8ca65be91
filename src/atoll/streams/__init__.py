"""DynamoDB Streams, the pure parts: specifications, records, shards, iterators.

A table's stream is served from what this region applied (DESIGN.md decision 12). The
engine captures one record per item write to a table whose stream is enabled, in the
write's own transaction (engine/streams.py), and serves the Streams API over the
storage (engine/stream_reads.py). What is decided here takes no I/O, no clock and no
storage; time arrives as arguments.

spec.py       StreamSpecification rules, stream labels and ARNs
records.py    a record from the materialized old and new items; GetRecords' JSON
shards.py     shards (one open at a time, rolled every 4 hours), retention, iterator starts
iterators.py  opaque shard iterators that expire after 15 minutes
"""

from atoll.streams.iterators import ITERATOR_TTL_MS, ShardIterator, decode_iterator
from atoll.streams.records import BY_TTL, Materialized, Renderer, stream_record
from atoll.streams.shards import RETENTION_MS, SHARD_ROLL_MS, Shard, Stream
from atoll.streams.spec import VIEW_TYPES, stream_arn

__all__ = ["BY_TTL", "ITERATOR_TTL_MS", "RETENTION_MS", "SHARD_ROLL_MS", "VIEW_TYPES",
           "Materialized", "Renderer", "Shard", "ShardIterator", "Stream", "decode_iterator",
           "stream_arn", "stream_record"]
