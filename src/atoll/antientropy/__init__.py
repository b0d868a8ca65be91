"""Anti-entropy: hash trees, verify sessions, verdicts against the stable cut (sans-I/O).

Regions prove they hold the same data (DESIGN.md decision 7). Each region keeps per
table a bucket array of XOR-combined leaf hashes, updated in the same transaction as
every write (hashing.py, store.py); a `Session` (session.py) compares those trees over
two or more regions in O(log n) round trips, lists only the keys of differing buckets,
judges each difference against the stable cut of what the regions have applied —
TRANSIENT while in flight, DIVERGED when confirmed below the cut (verdict.py) — and
repairs DIVERGED keys with the merge rule (repair.py). Each region answers the session's
requests statelessly with `serve` (serve.py) from its `TreeStore`.

Modules: hashing (leaves, buckets, levels), versions (what a version must tell),
store (the TreeStore contract, the write-transaction rule), messages + wire (the
protocol), serve (the answering side), session + judge (the asking side), verdict (the
rule and its argument), repair (winners and records), results (what is reported),
memory (the in-memory store).
"""

from atoll.antientropy.hashing import (
    DEFAULT_SHAPE,
    TreeShape,
    bucket_h_range,
    bucket_of,
    content_hash,
    item_leaf,
    leaf_hash,
)
from atoll.antientropy.memory import MemoryTreeStore
from atoll.antientropy.results import (
    DIVERGED_KIND,
    TRANSIENT_KIND,
    UNCONFIRMED_KIND,
    KeyDifference,
    PairResult,
    Status,
    TableReport,
    exit_code,
)
from atoll.antientropy.serve import serve
from atoll.antientropy.session import Session, SessionConfig, drive
from atoll.antientropy.store import (
    ALREADY,
    APPLIED,
    SKIPPED,
    Entry,
    RepairLogEntry,
    RepairRecord,
    TreeDelta,
    TreeStore,
    rebuild_buckets,
)
from atoll.antientropy.verdict import VerdictBook
from atoll.antientropy.versions import HLC_SCHEME, HlcScheme, VersionScheme, encode_hlc_version

__all__ = [
    "ALREADY", "APPLIED", "DEFAULT_SHAPE", "DIVERGED_KIND", "HLC_SCHEME", "SKIPPED",
    "TRANSIENT_KIND", "UNCONFIRMED_KIND", "Entry", "HlcScheme", "KeyDifference",
    "MemoryTreeStore", "PairResult", "RepairLogEntry", "RepairRecord", "Session",
    "SessionConfig", "Status", "TableReport", "TreeDelta", "TreeShape", "TreeStore",
    "VerdictBook", "VersionScheme", "bucket_h_range", "bucket_of", "content_hash", "drive",
    "encode_hlc_version", "exit_code", "item_leaf", "leaf_hash", "rebuild_buckets", "serve",
]
