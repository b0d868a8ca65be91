"""SortedRows, the memory storage's index structure: ranges against a naive filter of
sorted keys, undo by `restore`, and a walk left open across inserts and removals."""

from __future__ import annotations

import itertools
import random

from atoll.storage.memory.rows import SortedRows, successor

KEYS = [(h, pk) for h in (0, 1, 2**32 - 1) for pk in (b"", b"\x00", b"a", b"a\x00", b"b")]


def _rows(keys: list[tuple[int, bytes]]) -> SortedRows[tuple[int, bytes], int]:
    rows: SortedRows[tuple[int, bytes], int] = SortedRows()
    for n, key in enumerate(random.Random(1).sample(keys, len(keys))):
        rows.set(key, n)
    return rows


def test_walks_match_a_naive_filter_of_the_sorted_keys() -> None:
    rows = _rows(KEYS)
    probes = [(0,), (1, b"a"), (1, successor(b"a")), (2**32 - 1, b"b"), (2**32,)]
    bounds = [None] + [(probe, inclusive) for probe in probes for inclusive in (True, False)]
    for low, high in itertools.product(bounds, repeat=2):
        expected = [key for key in sorted(KEYS)
                    if (low is None or key > low[0] or (low[1] and key == low[0]))
                    and (high is None or key < high[0] or (high[1] and key == high[0]))]
        assert [key for key, _ in rows.walk(low, high)] == expected, (low, high)
        assert [key for key, _ in rows.walk(low, high, reverse=True)] == expected[::-1]
        assert [key for key, _ in rows.first(3, low, high)] == expected[:3]


def test_restore_undoes_a_set_and_a_pop() -> None:
    rows = _rows(KEYS)
    before = list(rows.walk(None, None))
    replaced = rows.set((1, b"a"), 99)
    added = rows.set((1, b"new"), 7)
    removed = rows.pop((0, b""))
    assert rows.pop((5, b"absent")) is None
    rows.restore((0, b""), removed)
    rows.restore((1, b"new"), added)
    rows.restore((1, b"a"), replaced)
    assert list(rows.walk(None, None)) == before and len(rows) == len(KEYS)


def test_a_walk_left_open_resumes_after_its_last_key_when_keys_move() -> None:
    for reverse in (False, True):
        rows = _rows(KEYS)
        walk = rows.walk(None, None, reverse)
        order = sorted(KEYS, reverse=reverse)
        seen = [next(walk)[0], next(walk)[0]]
        rows.pop(seen[-1])  # the key just yielded goes
        rows.pop(order[2])  # and the next one
        rows.set(order[0], -1)  # a replaced row moves nothing
        ahead = [(1, b"a\x01"), (0, b"\x00\x00") if reverse else (2**32 - 1, b"c")]
        for key in ahead:  # new keys ahead of the walk: it meets them
            rows.set(key, 0)
        rest = sorted(order[3:] + ahead, reverse=reverse)
        seen += [key for key, _ in walk]
        assert seen == order[:2] + rest, reverse
