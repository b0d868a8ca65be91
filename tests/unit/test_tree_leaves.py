"""The write path's leaf (`state_leaf`) is the leaf of the row a scrub rebuilds
(`row_leaf(newest(...))`) for every relation of a key's live item and tombstone,
including a live item at its tombstone's version (an item that joined its key's
delete): otherwise each such write leaves its bucket unlike its rows."""

from __future__ import annotations

import pytest

from atoll.storage.trees import newest, row_leaf, state_leaf

ITEM = b'{"pk":{"S":"k"},"v":{"N":"1"}}'


@pytest.mark.parametrize("live_version, dead_version", [
    ((200, "a"), None), (None, (200, "a")), ((200, "a"), (100, "b")),
    ((100, "b"), (200, "a")), ((200, "a"), (200, "a")), ((200, "a"), (200, "b")),
])
def test_the_write_paths_leaf_is_the_rebuilt_rows_leaf(
        live_version: tuple[int, str] | None, dead_version: tuple[int, str] | None) -> None:
    live = None if live_version is None else (*live_version, ITEM, True, len(ITEM))
    row = newest(7, b"k", b"", live, dead_version)
    assert state_leaf("t", b"k", b"", live, dead_version) == row_leaf("t", row)
    if live_version == dead_version:
        assert row is not None and row.item == ITEM  # the item that joined its delete
