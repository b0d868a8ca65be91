"""Leaf hashes, buckets and the tree above them.

Theory of operation: every stored key of a table — a live item or a tombstone — has a
*leaf hash*, a 128-bit BLAKE2b of a canonical, length-prefixed encoding of

    (table, partition key bytes, sort key bytes, version bytes, content)

where content is b"L" + the item's content hash (a 128-bit BLAKE2b of its stored,
canonical item JSON) for a live item and b"T" for a tombstone. Hashes are handled as
Python ints (0 <= h < 2**128): XOR is one machine-level operation on them.

A key falls in one *bucket*: the top `bucket_bits` bits of the partition key's 32-bit
hash (`atoll.model.keys.partition_hash`, the `h` every store already keeps in its
primary key). A bucket's hash is the XOR of the leaf hashes of the keys in it, so

  - it does not depend on the order in which the writes happened (XOR commutes), and two
    regions that hold the same keys at the same versions with the same contents hold the
    same bucket hashes whatever the order they applied changes in;
  - a write updates it in O(1): bucket ^= old_leaf ^ new_leaf (old_leaf = 0 when the key
    had no row, new_leaf = 0 when the row goes away, as a purged tombstone does).

Why the partition key's hash and 2**16 buckets per table: listing a bucket's keys is then
a range scan of the primary key a store already has ((table, h, pk, sk)), so keeping
the tree costs the write path one small row update and no extra index; 65,536 buckets
keep a bucket at ~15 keys for a table of 1,000,000 items (one divergent key costs
~15 key summaries, about 1 KB) while the whole bucket array is 1 MiB per table. Every
item of one partition (an item collection) falls in the same bucket: a bucket too big
for one page is compared through sub-bucket hashes computed on demand from its rows
(`sub_bucket_of`, over the hash of the full key), so a large collection costs bytes in
proportion to its differing keys, not its size.

Upper levels are computed on demand from the bucket hashes, never stored: with
fan-out 2**fanout_bits, level d (1..depth) has fanout**d nodes and level `depth` is the
buckets. A node's hash is the BLAKE2b of its children's hashes concatenated (a Merkle
node), or 0 when every child is 0 (an empty subtree stays free to compute). The default
fan-out of 16 gives depth 4 for 2**16 buckets: one divergent key is found in 4 round
trips (level 1 in the opening answer, then levels 2, 3 and 4) with 256 bytes of hashes
per differing node per side.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from atoll.invariant import invariant
from atoll.model.keys import partition_hash

HASH_BYTES = 16
HASH_BITS = 8 * HASH_BYTES
DEFAULT_BUCKET_BITS = 16
DEFAULT_FANOUT_BITS = 4
MAX_BUCKET_BITS = 20
MAX_SUB_BITS = 12
_CONTENT_PERSON = b"atoll.content"
_LEAF_PERSON = b"atoll.leaf.v1"
_NODE_PERSON = b"atoll.node.v1"
_KEY_PERSON = b"atoll.key.v1"
_LIVE = b"L"
_TOMBSTONE = b"T"
# Write-path speed (every write hashes one or two leaves): keyed hashers are copied from
# a template instead of built (the keyword set-up is most of a short hash's cost), and
# a table name's length-prefixed bytes are kept. Same bytes hashed, same digests.
_CONTENT_HASHER = hashlib.blake2b(digest_size=HASH_BYTES, person=_CONTENT_PERSON)
_LEAF_HASHER = hashlib.blake2b(digest_size=HASH_BYTES, person=_LEAF_PERSON)
_LENGTH = struct.Struct(">I").pack
_NAME_PREFIXES: dict[str, bytes] = {}
MAX_NAME_PREFIXES = 4096


@dataclass(frozen=True, slots=True)
class TreeShape:
    """How a table's keys map to buckets and how the levels above them fan out."""

    bucket_bits: int = DEFAULT_BUCKET_BITS
    fanout_bits: int = DEFAULT_FANOUT_BITS

    def __post_init__(self) -> None:
        invariant(1 <= self.fanout_bits <= self.bucket_bits <= MAX_BUCKET_BITS,
                  "tree shape out of range")
        invariant(self.bucket_bits % self.fanout_bits == 0,
                  "bucket bits must be a multiple of the fan-out bits")

    @property
    def buckets(self) -> int:
        return 1 << self.bucket_bits

    @property
    def fanout(self) -> int:
        return 1 << self.fanout_bits

    @property
    def depth(self) -> int:
        """The level of the buckets (the root is level 0)."""
        return self.bucket_bits // self.fanout_bits

    def nodes_at(self, level: int) -> int:
        invariant(0 <= level <= self.depth, "level out of range")
        return 1 << (level * self.fanout_bits)

    def bucket_of(self, pk: bytes) -> int:
        return bucket_of(pk, self.bucket_bits)


DEFAULT_SHAPE = TreeShape()


def bucket_of(pk: bytes, bucket_bits: int = DEFAULT_BUCKET_BITS) -> int:
    """The bucket of every key whose (encoded) partition key is `pk`."""
    return partition_hash(pk) >> (32 - bucket_bits)


def bucket_h_range(bucket: int, bucket_bits: int = DEFAULT_BUCKET_BITS) -> tuple[int, int]:
    """The inclusive range of the 32-bit partition hash `h` that makes up `bucket`:
    a store lists a bucket as `h BETWEEN low AND high` on its primary key."""
    shift = 32 - bucket_bits
    return bucket << shift, ((bucket + 1) << shift) - 1


def content_hash(item: bytes) -> bytes:
    """The 16-byte hash of an item's stored bytes (its canonical item JSON)."""
    hasher = _CONTENT_HASHER.copy()
    hasher.update(item)
    return hasher.digest()


def _name_prefix(table: str) -> bytes:
    prefix = _NAME_PREFIXES.get(table)
    if prefix is None:
        name = table.encode()
        prefix = _LENGTH(len(name)) + name
        if len(_NAME_PREFIXES) >= MAX_NAME_PREFIXES:
            _NAME_PREFIXES.clear()
        _NAME_PREFIXES[table] = prefix
    return prefix


def leaf_hash(table: str, pk: bytes, sk: bytes, version: bytes, content: bytes | None) -> int:
    """The leaf of one stored key; `content` is its `content_hash`, None for a tombstone:
    BLAKE2b over the length-prefixed table name, pk, sk and version, then L + content or
    T."""
    hasher = _LEAF_HASHER.copy()
    hasher.update(b"".join((_name_prefix(table), _LENGTH(len(pk)), pk, _LENGTH(len(sk)), sk,
                            _LENGTH(len(version)), version,
                            _TOMBSTONE if content is None else _LIVE + content)))
    return int.from_bytes(hasher.digest(), "big")


def item_leaf(table: str, pk: bytes, sk: bytes, version: bytes, item: bytes | None) -> int:
    """The leaf of a row as stored: `item` is its stored bytes, None for a tombstone."""
    return leaf_hash(table, pk, sk, version, None if item is None else content_hash(item))


def write_delta(old_leaf: int, new_leaf: int) -> int:
    """What a write XORs into its key's bucket (0 for a row that did not change)."""
    return old_leaf ^ new_leaf


def key_hash(pk: bytes, sk: bytes) -> int:
    """A 64-bit hash of the full key: splits a large bucket into sub-buckets."""
    digest = hashlib.blake2b(len(pk).to_bytes(4, "big") + pk + sk, digest_size=8,
                             person=_KEY_PERSON).digest()
    return int.from_bytes(digest, "big")


def sub_bucket_of(pk: bytes, sk: bytes, bits: int) -> int:
    invariant(1 <= bits <= MAX_SUB_BITS, "sub-bucket bits out of range")
    return key_hash(pk, sk) >> (64 - bits)


def node_hash(children: Sequence[int]) -> int:
    """A Merkle node over its children's hashes; 0 when all of them are 0."""
    if not any(children):
        return 0
    joined = b"".join(child.to_bytes(HASH_BYTES, "big") for child in children)
    digest = hashlib.blake2b(joined, digest_size=HASH_BYTES, person=_NODE_PERSON).digest()
    return int.from_bytes(digest, "big")


def level_hashes(shape: TreeShape, buckets: Sequence[int], level: int, first: int,
                 count: int) -> list[int]:
    """Hashes of nodes first..first+count-1 of `level`, computed from `buckets`, which
    holds the bucket hashes of exactly the buckets under those nodes, in order."""
    span = 1 << ((shape.depth - level) * shape.fanout_bits)  # buckets under one node
    invariant(len(buckets) == span * count, "bucket hashes do not cover the nodes")
    invariant(0 <= first and first + count <= shape.nodes_at(level), "nodes out of range")
    current = list(buckets)
    for _ in range(shape.depth - level):
        fan = shape.fanout
        current = [node_hash(current[at:at + fan]) for at in range(0, len(current), fan)]
    return current


def buckets_under(shape: TreeShape, level: int, node: int) -> tuple[int, int]:
    """(first bucket, bucket count) under node `node` of `level`."""
    span = 1 << ((shape.depth - level) * shape.fanout_bits)
    return node * span, span


def hash_bytes(value: int) -> bytes:
    return value.to_bytes(HASH_BYTES, "big")


def hash_from_bytes(raw: bytes) -> int:
    invariant(len(raw) == HASH_BYTES, "a hash is 16 bytes")
    return int.from_bytes(raw, "big")
