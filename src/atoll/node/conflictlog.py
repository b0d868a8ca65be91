"""The conflict log as people read it: keys as the attribute values the user wrote.

Theory of operation: the replica records each overwritten concurrent write with the
item's key in the storage's order-preserving encoding (hex of `pk` and `sk`; see
atoll.model.keys). Reading it back, the table's key schema (names and types, from the
catalog) turns those bytes into DynamoDB attribute values again: `"key": {"Artist":
{"S": "Arvo Pärt"}, "Song": {"S": "Für Alina"}}`. A record whose table is gone (or was
recreated with another key schema) keeps only the hex.

`RecentConflicts` finds the newest entries without a query of its own on the storage:
conflict ids only grow, so it gallops forward with one-row reads from the highest id it
has seen (a few index seeks) and then reads the last few rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from atoll.engine.catalog import Catalog
from atoll.model.keys import decode_key_value

MAX_GALLOP_STEPS = 64  # 2**64 ids: bounds the search for the newest id
MAX_WIDENINGS = 8  # the window for the newest rows grows to at most 256 times their count
ConflictRows = list[tuple[int, int, str, bytes]]  # (id, detected ms, table, record JSON)


def readable_key(catalog: Catalog, table: str, pk_hex: str, sk_hex: str
                 ) -> dict[str, Any] | None:
    """The key attributes of a logged conflict, or None if the table's schema is gone or
    does not fit the bytes."""
    definition = catalog.get(table)
    if definition is None:
        return None
    try:
        key = {definition.hash_key: decode_key_value(bytes.fromhex(pk_hex),
                                                     definition.hash_type)}
        if definition.range_key is not None and definition.range_type is not None:
            key[definition.range_key] = decode_key_value(bytes.fromhex(sk_hex),
                                                         definition.range_type)
    except ValueError:
        return None
    return key


def conflict_entries(rows: Iterable[tuple[int, int, str, bytes]], catalog: Catalog
                     ) -> list[dict[str, Any]]:
    """Storage rows (id, detected ms, table, record JSON) as JSON-ready entries with a
    readable `key` (None when it cannot be decoded; `pk`/`sk` stay as hex)."""
    entries = []
    for conflict_id, detected_ms, table, record in rows:
        entry: dict[str, Any] = {"id": conflict_id, "detected_ms": detected_ms, "table": table,
                                 **orjson.loads(record)}
        entry["key"] = readable_key(catalog, table, str(entry.get("pk", "")),
                                    str(entry.get("sk", "")))
        entries.append(entry)
    return entries


class RecentConflicts:
    """The newest entries of a node's conflict log (event-loop thread)."""

    def __init__(self) -> None:
        self.highest_id = 0  # the highest conflict id seen so far

    def latest(self, read: Callable[[int, int], ConflictRows], catalog: Catalog, count: int
               ) -> list[dict[str, Any]]:
        """Up to `count` newest entries, newest first. `read(after_id, limit)` is the
        storage's conflict log read: rows with ids above `after_id`, in id order."""
        step = 1
        for _ in range(MAX_GALLOP_STEPS):  # find an id past the end, doubling the stride
            probe = read(self.highest_id + step - 1, 1)
            if not probe:
                break
            self.highest_id = probe[0][0]
            step *= 2
        # the newest id lies in [highest_id, highest_id + step): narrow it down
        low, high = self.highest_id, self.highest_id + step
        while high - low > 1:
            middle = (low + high) // 2
            probe = read(middle - 1, 1)
            if probe:
                low = self.highest_id = probe[0][0]
            else:
                high = middle
        # the last `count` ids, widening the window where ids have gaps (a rolled-back
        # transaction leaves one); a window of `span` ids holds at most `span` rows
        span = count
        for _ in range(MAX_WIDENINGS):
            after = max(0, self.highest_id - span)
            rows = read(after, span)
            if len(rows) >= count or after == 0:
                break
            span *= 2
        return conflict_entries(reversed(rows[-count:]), catalog)
