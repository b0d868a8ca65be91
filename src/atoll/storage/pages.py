"""Pages read at once: a range read's rows handed on as two columns, items and sizes.

Theory of operation: a page the engine answers as it was stored (no filter, no
projection) needs of each row only its item's bytes (for the answer) and its size (the
page's 1 MB bound, the capacity it consumed); LastEvaluatedKey is taken from the last
item. So a page read (`scan_page`, `query_index_page`, `scan_index_page`: at most
SCAN_PAGE_ROWS rows, fetched at once) reads no key columns (each column of each row costs
SQLite's stepping and, in sqlite3, a release and retake of the GIL), and turns its rows
into columns with C loops: `zip(*rows)` splits (item, size, crc) rows, `map(crc32, ...)`
checksums every item, one tuple comparison checks them all. Compiled, a Python step per
row (unpack, check, append) costs ~0.15 µs, ~15% of a Scan page of 100 rows.

Every checksum is verified before anything of the page is handed on. When one fails, the
storage reads the same range again through its keyed range read, which reports the
damaged row by table and key and raises CorruptionDetected.

`sized=False` drops the size column as well (item and crc: two columns a row): the sizes
are then the items' stored lengths, each at least the item's size (an item's JSON spells
every name and value out, in at least as many bytes as DynamoDB counts for it: see
atoll.model.values.item_size). That serves a page whose sizes only bound it: when the
lengths sum to at most 1 MB, so do the sizes, and the page is whole. A caller that counts
capacity, filters row by row or finds the lengths over 1 MB asks for the sizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from atoll.checksum import crc32

PageColumns = tuple[Sequence[bytes], Sequence[int]]
"""(items, sizes) of a page read at once: its stored items in order, and their sizes."""


def page_columns(rows: Iterable[tuple[bytes, int]]) -> PageColumns:
    """The columns of (item, size) rows."""
    listed = list(rows)
    if not listed:
        return (), ()
    items, sizes = zip(*listed)
    return items, sizes


def columns(sized: bool) -> str:
    """The columns a page read selects: (item, size, crc), or (item, crc) unsized."""
    return "item, size, crc" if sized else "item, crc"


def verified_columns(rows: list[Any], sized: bool) -> PageColumns | None:
    """The (items, sizes) columns of rows of `columns(sized)` if every item matches its
    CRC32, else None; unsized, the sizes are the items' lengths."""
    if not rows:
        return (), ()
    if sized:
        items, sizes, crcs = zip(*rows)
    else:
        items, crcs = zip(*rows)
        sizes = tuple(map(len, items))
    if tuple(map(crc32, items)) != crcs:
        return None
    return items, sizes


class PageReads(Protocol):
    """The page reads of a Storage: each returns the items and sizes of the first `limit`
    (at most SCAN_PAGE_ROWS) rows the range read it names would yield, without their
    keys, every row's checksum verified. With `sized=False` each size may be the item's
    stored length instead (never less than its size; see above)."""

    def scan_page(self, tid: int, after: tuple[int, bytes, bytes] | None, h_end: int | None,
                  h_start: int, limit: int, sized: bool = True) -> PageColumns:
        """A Scan page of a table: `scan_items`' rows."""
        ...

    def query_index_page(self, tid: int, iid: int, h: int, pk: bytes,
                         lower: tuple[bytes, bool] | None, upper: tuple[bytes, bool] | None,
                         forward: bool, start: tuple[bytes, bytes, bytes] | None, limit: int,
                         sized: bool = True) -> PageColumns:
        """A Query page of an index: `query_index`' rows."""
        ...

    def scan_index_page(self, tid: int, iid: int,
                        after: tuple[int, bytes, bytes, bytes, bytes] | None,
                        h_end: int | None, h_start: int, limit: int, sized: bool = True
                        ) -> PageColumns:
        """A Scan page of an index: `scan_index`' rows."""
        ...
