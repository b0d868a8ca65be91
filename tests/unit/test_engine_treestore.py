"""The verify core over a real node's storage: `StorageTreeStore` and `repair_job`.

Region "a" is an engine on SQLite, driven through its operation handlers; region "b" is
the core's `MemoryTreeStore` holding the same rows (copied from what "a" fetches, with
each row's causal state). Rows of
"a" are then damaged directly in its SQLite file, behind the engine's back, as the
acceptance test does to a live node: a flipped byte (checksum left as it was), a deleted
row, a row edited with its checksum recomputed. Sessions run as a node runs them: the
SQLite side off the event loop (its writes come back to the loop through write_now).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from atoll.antientropy import (
    DIVERGED_KIND,
    UNCONFIRMED_KIND,
    MemoryTreeStore,
    Session,
    SessionConfig,
    Status,
    TableReport,
    VerdictBook,
    drive,
    serve,
)
from atoll.antientropy.versions import BadVersion
from atoll.engine import Engine
from atoll.engine.engine import HANDLERS
from atoll.engine.repairs import causal_bytes, read_causal, repair_job
from atoll.engine.treestore import StorageTreeStore, TreeNotReady
from atoll.errors import InternalError
from atoll.model.keys import encode_key_value, partition_hash
from atoll.replication.change import Version
from atoll.storage import SqliteStorage
from atoll.storage.treeprotocol import TREE_BUCKETS
from tests.support import in_a_loop

TABLE = "orders"
ITEMS = 300


async def call(engine: Engine, operation: str, **request: Any) -> Any:
    result = await HANDLERS[operation](engine.context, request)
    return orjson.loads(result if type(result) is bytes else orjson.dumps(result))


@asynccontextmanager
async def region_a(path: Path, trees: bool = True) -> AsyncIterator[Engine]:
    storage = SqliteStorage(str(path / "a.db"), durable=False, region="a", trees=trees)
    engine = Engine(storage, region="a")
    storage.start(asyncio.get_running_loop())
    try:
        yield engine
    finally:
        storage.close()


async def fill(engine: Engine) -> None:
    await call(engine, "CreateTable", TableName=TABLE, BillingMode="PAY_PER_REQUEST",
               KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
               AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "g", "AttributeType": "S"}],
               GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [
                   {"AttributeName": "g", "KeyType": "HASH"}],
                   "Projection": {"ProjectionType": "ALL"}}])
    for n in range(ITEMS):
        await call(engine, "PutItem", TableName=TABLE,
                   Item={"pk": {"S": f"k{n:04d}"}, "g": {"S": f"g{n % 7}"}, "n": {"N": str(n)}})
    for n in range(0, ITEMS, 10):  # some tombstones too
        await call(engine, "DeleteItem", TableName=TABLE, Key={"pk": {"S": f"k{n:04d}"}})


class Pair:
    """Region "a" (the engine's storage) and "b" (a copy of its rows in memory)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.a = StorageTreeStore(engine.storage.tree_access(), "a",
                                  lambda record, now_ms: repair_job(engine.context, record, now_ms))
        self.b = MemoryTreeStore("b")
        versions = self.a.table_versions(TABLE)
        assert versions is not None
        self.b.create_table(TABLE, versions[0])
        for bucket in range(0, TREE_BUCKETS, 256):
            for _hash, entries in (self.a.bucket_snapshot(TABLE, bucket + i) for i in range(256)):
                for entry in self.a.fetch(TABLE, [(e.pk, e.sk) for e in entries]):
                    assert entry is not None
                    self.b.write(TABLE, entry.pk, entry.sk, entry.version, entry.item,
                                 entry.causal)
        for origin, cursor in self.a.cursors().items():
            self.b.set_cursor(origin, cursor.seq, cursor.hlc)
        self.book = VerdictBook()
        self.clock = itertools.count(1_000)

    async def verify(self, deep: bool = False, repair: bool = False,
                     damage: dict[str, set[int]] | None = None) -> TableReport:
        stores = {"a": self.a, "b": self.b}
        session = Session(TABLE, ["a", "b"], next(self.clock), next(self.clock), self.book,
                          config=SessionConfig(deep=deep, repair=repair), damage=damage)
        return await asyncio.to_thread(
            drive, session, lambda r, d: serve(d, stores[r], next(self.clock)),
            lambda: next(self.clock))


def key_of(n: int) -> tuple[int, bytes]:
    pk = encode_key_value({"S": f"k{n:04d}"}, "S")
    return partition_hash(pk), pk


def behind_the_back(engine: Engine, sql: str, *args: Any) -> None:
    """SQL on the database file through a connection of its own (an operator's)."""
    conn = sqlite3.connect(engine.storage.path, isolation_level=None)
    try:
        conn.execute(sql, args)
    finally:
        conn.close()


def diverged(report: TableReport) -> set[bytes]:
    return {d.pk for d in report.differences if d.kind == DIVERGED_KIND}


@in_a_loop
async def test_identical_regions_match_cheap_and_deep(tmp_path: Path) -> None:
    async with region_a(tmp_path) as engine:
        await fill(engine)
        pair = Pair(engine)
        assert (await pair.verify()).status is Status.MATCH
        deep = await pair.verify(deep=True)
        assert deep.status is Status.MATCH and deep.damaged_buckets == {"a": 0, "b": 0}
        assert deep.pairs[0].keys_compared == ITEMS


@in_a_loop
async def test_a_flipped_byte_and_a_deleted_row_are_diverged_then_repaired(tmp_path: Path) -> None:
    async with region_a(tmp_path) as engine:
        await fill(engine)
        pair = Pair(engine)
        tid = engine.catalog.table(TABLE).tid
        h, flipped = key_of(21)
        row = sqlite3.connect(engine.storage.path).execute(
            "SELECT item FROM items WHERE tid=? AND h=? AND pk=?", (tid, h, flipped)).fetchone()
        damaged = bytes(row[0]).replace(b'"21"', b'"29"')  # the checksum is left as it was
        behind_the_back(engine, "UPDATE items SET item=? WHERE tid=? AND h=? AND pk=?",
                        damaged, tid, h, flipped)
        h2, deleted = key_of(42)
        behind_the_back(engine, "DELETE FROM items WHERE tid=? AND h=? AND pk=?", tid, h2, deleted)

        assert (await pair.verify()).status is Status.MATCH  # the trees say what Atoll wrote
        first = await pair.verify(deep=True)
        assert first.damaged_buckets == {"a": 2, "b": 0}
        assert first.corrupt == [("a", (flipped, b""))]
        assert {(d.pk, d.kind) for d in first.differences} == {
            (flipped, UNCONFIRMED_KIND), (deleted, UNCONFIRMED_KIND)}
        second = await pair.verify(repair=True)
        assert diverged(second) == {flipped, deleted}
        assert sorted((e.pk, e.reason, e.outcome) for e in second.repairs) == sorted(
            [(flipped, "corrupt", "applied"), (deleted, "missing", "applied")])

        for n in (21, 42):  # served again, the item and its index row as written
            got = await call(engine, "GetItem", TableName=TABLE, Key={"pk": {"S": f"k{n:04d}"}},
                             ConsistentRead=True)
            assert got["Item"]["n"] == {"N": str(n)}
            found = await call(engine, "Query", TableName=TABLE, IndexName="by_g",
                               KeyConditionExpression="g = :g",
                               ExpressionAttributeValues={":g": {"S": f"g{n % 7}"}})
            assert {"N": str(n)} in [item["n"] for item in found["Items"]]
        logged = engine.storage.repairs()
        assert [orjson.loads(r[3])["outcome"] for r in logged] == ["applied", "applied"]
        final = await pair.verify(deep=True)
        assert final.status is Status.MATCH and final.damaged_buckets == {"a": 0, "b": 0}
        again = await pair.verify(repair=True)  # nothing left to repair
        assert again.status is Status.MATCH and again.repairs == []


@pytest.mark.parametrize("found, causal, read", [
    ((b"", (5, "a"), None), b"", (b"", None)),  # the row form alone
    ((b"", (5, "a"), (3, "b")), b'p[3,"b",null]', (b"", Version(3, "b"))),  # over a prev
    ((b'{"c":{"a":5}}', (5, "a"), None), b's{"c":{"a":5}}', (b'{"c":{"a":5}}', None)),
])
def test_causal_metadata_round_trips(found: Any, causal: bytes, read: Any) -> None:
    assert causal_bytes(found) == causal
    assert read_causal(causal) == read


@pytest.mark.parametrize("causal", [b"s", b"x{}", b'p[3,"b",[1,"a"]]', b"p{}"])
def test_malformed_causal_metadata_is_refused(causal: bytes) -> None:
    with pytest.raises(BadVersion):
        read_causal(causal)


@in_a_loop
async def test_a_repair_gives_the_row_its_causal_state_back(tmp_path: Path) -> None:
    """A counter's row holds a state beyond the row form (this region's contribution);
    flipped in "a" and repaired from "b", it gets that state back exactly as it was, so
    it merges later writes as every other copy does (without it the row would be a plain
    number: the next increment would show the same, but the contribution would be gone)."""
    async with region_a(tmp_path) as engine:
        await fill(engine)
        for _ in range(3):
            await call(engine, "UpdateItem", TableName=TABLE, Key={"pk": {"S": "k0005"}},
                       UpdateExpression="ADD c :one",
                       ExpressionAttributeValues={":one": {"N": "1"}})
        pair = Pair(engine)
        tid = engine.catalog.table(TABLE).tid
        h, pk = key_of(5)
        [before] = pair.a.fetch(TABLE, [(pk, b"")])
        assert before is not None and before.causal.startswith(b"s")  # a state, not the row form
        assert pair.b.row(TABLE, pk) == before
        behind_the_back(engine, "UPDATE items SET item=CAST(replace(CAST(item AS TEXT), "
                                "'\"3\"', '\"4\"') AS BLOB) WHERE tid=? AND h=? AND pk=?",
                        tid, h, pk)
        engine.storage._cache.entries.clear()  # a restarted node: nothing cached
        await pair.verify(deep=True)
        repaired = await pair.verify(repair=True)
        assert [(e.pk, e.reason, e.outcome) for e in repaired.repairs] == [
            (pk, "corrupt", "applied")]
        [after] = pair.a.fetch(TABLE, [(pk, b"")])
        assert after == before
        await call(engine, "UpdateItem", TableName=TABLE, Key={"pk": {"S": "k0005"}},
                   UpdateExpression="ADD c :one", ExpressionAttributeValues={":one": {"N": "1"}})
        got = await call(engine, "GetItem", TableName=TABLE, Key={"pk": {"S": "k0005"}})
        assert got["Item"]["c"] == {"N": "4"}


@in_a_loop
async def test_a_flipped_row_is_never_served(tmp_path: Path) -> None:
    async with region_a(tmp_path) as engine:
        await fill(engine)
        tid = engine.catalog.table(TABLE).tid
        h, pk = key_of(33)
        behind_the_back(engine, "UPDATE items SET item=CAST(replace(CAST(item AS TEXT), "
                                "'\"33\"', '\"34\"') AS BLOB) WHERE tid=? AND h=? AND pk=?",
                        tid, h, pk)
        engine.storage._cache.entries.clear()  # a restarted node: nothing cached
        with pytest.raises(InternalError):
            await call(engine, "GetItem", TableName=TABLE, Key={"pk": {"S": "k0033"}})


@in_a_loop
async def test_an_edited_row_with_its_checksum_recomputed_loses_on_scrub_evidence(
        tmp_path: Path) -> None:
    async with region_a(tmp_path) as engine:
        await fill(engine)
        pair = Pair(engine)
        tid = engine.catalog.table(TABLE).tid
        h, pk = key_of(57)
        forged = b'{"g":{"S":"g1"},"n":{"N":"1000000"},"pk":{"S":"k0057"}}'
        behind_the_back(engine, "UPDATE items SET item=?, crc=? WHERE tid=? AND h=? AND pk=?",
                        forged, zlib.crc32(forged), tid, h, pk)
        first = await pair.verify(deep=True)  # a scrubs: its bucket is damaged evidence
        assert first.damaged_buckets == {"a": 1, "b": 0} and first.corrupt == []
        second = await pair.verify(repair=True, damage={"a": {h >> 16}})
        assert [(e.region, e.source, e.reason) for e in second.repairs] == [("a", "b", "content")]
        got = await call(engine, "GetItem", TableName=TABLE, Key={"pk": {"S": "k0057"}})
        assert got["Item"]["n"] == {"N": "57"}


@in_a_loop
async def test_a_table_whose_tree_is_not_built_refuses_to_be_compared(tmp_path: Path) -> None:
    async with region_a(tmp_path, trees=False) as engine:
        await fill(engine)
    async with region_a(tmp_path, trees=True) as engine:
        store = StorageTreeStore(engine.storage.tree_access(), "a",
                                 lambda record, now_ms: repair_job(engine.context, record, now_ms))
        with pytest.raises(TreeNotReady):
            store.bucket_hashes(TABLE, 0, 16)
        tid = engine.catalog.table(TABLE).tid
        built = 0
        while built < TREE_BUCKETS:
            built = await engine.storage.write(lambda txn: txn.tree_build(tid, 20_000))
        pair = Pair(engine)
        assert (await pair.verify(deep=True)).status is Status.MATCH
