"""The conflict log as people read it (atoll.node.conflictlog): keys decoded with the
table's key schema, and the newest entries found without scanning the log."""

from __future__ import annotations

import orjson

from atoll.engine.catalog import Catalog
from atoll.engine.tabledef import TableDef
from atoll.model.keys import encode_key_value
from atoll.node.conflictlog import RecentConflicts, conflict_entries, readable_key

MUSIC = TableDef(name="Music", hash_key="Artist", range_key="Year",
                 attribute_types={"Artist": "S", "Year": "N"}, created_at=0.0)


def _record(artist: str, year: str) -> bytes:
    return orjson.dumps({"table": "Music",
                         "pk": encode_key_value({"S": artist}, "S").hex(),
                         "sk": encode_key_value({"N": year}, "N").hex(),
                         "winner": {"hlc": 2, "origin": "a", "item": None},
                         "loser": {"hlc": 1, "origin": "b", "item": None}})


def test_keys_read_as_the_user_wrote_them() -> None:
    catalog = Catalog([MUSIC])
    entries = conflict_entries([(1, 1000, "Music", _record("Arvo Pärt", "-1.50"))], catalog)
    assert entries[0]["key"] == {"Artist": {"S": "Arvo Pärt"}, "Year": {"N": "-1.5"}}
    assert entries[0]["pk"]  # the stored form stays beside it


def test_a_gone_table_or_a_schema_that_does_not_fit_keeps_the_raw_key() -> None:
    catalog = Catalog([MUSIC])
    assert readable_key(catalog, "Gone", "61", "") is None
    assert readable_key(catalog, "Music", "61", "ff00") is None  # not an encoded number


class _Log:
    """The storage's conflict log read: ids above `after`, in order (and the reads made)."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.reads = 0

    def __call__(self, after: int, limit: int) -> list[tuple[int, int, str, bytes]]:
        self.reads += 1
        found = []
        for i in self.ids:
            if i > after:
                found.append((i, i * 10, "Music", _record("x", str(i))))
                if len(found) == limit:
                    break
        return found


def test_the_newest_entries_come_newest_first_in_few_reads() -> None:
    catalog = Catalog([MUSIC])
    log = _Log(list(range(1, 100_001)))
    recent = RecentConflicts()
    latest = recent.latest(log, catalog, 3)
    assert [e["id"] for e in latest] == [100_000, 99_999, 99_998]
    assert log.reads < 45  # galloping and bisecting, not paging through 100,000
    log.ids.append(100_001)
    log.reads = 0
    assert [e["id"] for e in recent.latest(log, catalog, 2)] == [100_001, 100_000]
    assert log.reads <= 4


def test_an_empty_log_and_gaps_in_ids() -> None:
    catalog = Catalog([MUSIC])
    assert RecentConflicts().latest(_Log([]), catalog, 5) == []
    assert [e["id"] for e in RecentConflicts().latest(_Log([3, 17, 18, 90]), catalog, 80)] == \
        [90, 18, 17, 3]
