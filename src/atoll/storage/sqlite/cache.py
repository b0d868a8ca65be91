"""ItemCache: live items by key, exactly as committed and answered (event-loop thread).

Filled by reads while no write is in flight (reads.py says why only then); a committed
write replaces, and a delete or a dropped table removes, a cached entry before its caller
hears back, so a read that follows an acknowledged write always sees it. Writes never
fill the cache, reads do. Bounded by CACHE_MAX_BYTES, per-entry overhead included, and
dropped whole when full: cheap, and refilled by the next reads.
"""

from __future__ import annotations

from typing import Any

from atoll.storage.protocol import ItemRow

CACHE_MAX_BYTES = 64 * 1024 * 1024
CACHE_ENTRY_OVERHEAD_BYTES = 250  # dict slot, key tuple and its bytes, value tuple

CacheKey = tuple[int, int, bytes, bytes]


class ItemCache:
    def __init__(self) -> None:
        self.entries: dict[CacheKey, ItemRow] = {}
        self.size_bytes = 0

    def put(self, key: CacheKey, row: ItemRow) -> None:
        entries = self.entries
        old = entries.get(key)
        if old is not None:
            self.size_bytes -= len(old[0]) + CACHE_ENTRY_OVERHEAD_BYTES
        entries[key] = row
        self.size_bytes += len(row[0]) + CACHE_ENTRY_OVERHEAD_BYTES
        if self.size_bytes > CACHE_MAX_BYTES:
            entries.clear()
            self.size_bytes = 0

    def committed(self, changes: list[Any], dropped: set[int]) -> None:
        """A batch committed: `changes` is what it did to live items, (key, row or None
        if deleted) each in order, `dropped` the tids of the tables it dropped."""
        entries = self.entries
        if dropped:
            for key in [k for k in entries if k[0] in dropped]:
                self.size_bytes -= len(entries.pop(key)[0]) + CACHE_ENTRY_OVERHEAD_BYTES
        for key, row in changes:
            old = entries.pop(key, None)
            if old is None:
                continue  # not cached: writes do not fill the cache, reads do
            self.size_bytes -= len(old[0]) + CACHE_ENTRY_OVERHEAD_BYTES
            if row is not None:
                self.put(key, row)
