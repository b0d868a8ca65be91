"""The floor: a minimal server doing the same SQLite work per request as Atoll, nothing more.

What Python and SQLite can do on this machine for each workload, so that Atoll's figures
can be read as a fraction of it. It runs on Atoll's HTTP stack (a raw asyncio Protocol,
httptools parser, uvloop event loop, orjson), keeps items as their DynamoDB JSON in one
SQLite table (WAL, `synchronous=NORMAL`, a commit per write: not durable, as nothing
waits for an fsync) and per request runs the statements the workload needs:

  GetItem          one key lookup
  Query            one range of `Limit` rows of a partition from a sort key (`sk >= :from`)
  Scan             one range of `Limit` rows in key order after ExclusiveStartKey
  BatchGetItem     one key lookup per key
  PutItem          one insert (INSERT OR REPLACE), committed
  BatchWriteItem   one insert per item, one commit
  UpdateItem       one key lookup, then the row written back, committed (not in the
                   default run: it evaluates no expression, so it is no floor for one)

It has no DynamoDB semantics: no validation, no expressions (Query reads `:pk` and
`:from` from ExpressionAttributeValues, as the bench's query.lua sends them), no
checksums, no capacity, no indexes, one table. Answers have DynamoDB's shape and are
built from the stored bytes, so response sizes match Atoll's.

Usage: python bench/floor_server.py --port PORT --data-dir DIR
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

CONTENT_TYPE = b"application/x-amz-json-1.0"
TARGET_PREFIX = "DynamoDB_20120810."
TABLE_DESCRIPTION = (b'{"TableName":"bench","TableStatus":"ACTIVE","KeySchema":['
                     b'{"AttributeName":"pk","KeyType":"HASH"},'
                     b'{"AttributeName":"sk","KeyType":"RANGE"}]}')


def _key_string(key: dict[str, Any], name: str) -> str:
    """A key attribute's value as stored (the bench's keys are strings)."""
    return str(key[name]["S"])


class FloorStore:
    """The SQLite statements, one method per operation; each returns the answer's body."""

    def __init__(self, path: str) -> None:
        import orjson

        self.orjson = orjson
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS items (pk TEXT NOT NULL, sk TEXT NOT NULL,"
                        " item BLOB NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID")
        self.handlers: dict[str, Callable[[dict[str, Any]], bytes]] = {
            "GetItem": self.get_item, "Query": self.query, "Scan": self.scan,
            "BatchGetItem": self.batch_get_item, "PutItem": self.put_item,
            "BatchWriteItem": self.batch_write_item, "UpdateItem": self.update_item,
            "ListTables": lambda r: b'{"TableNames":["bench"]}',
            "CreateTable": lambda r: b'{"TableDescription":' + TABLE_DESCRIPTION + b"}",
            "DescribeTable": lambda r: b'{"Table":' + TABLE_DESCRIPTION + b"}",
        }

    def get_item(self, request: dict[str, Any]) -> bytes:
        key = request["Key"]
        row = self.db.execute("SELECT item FROM items WHERE pk=? AND sk=?",
                              (_key_string(key, "pk"), _key_string(key, "sk"))).fetchone()
        return b"{}" if row is None else b'{"Item":' + row[0] + b"}"

    def _page(self, rows: list[tuple[str, str, bytes]], limit: int) -> bytes:
        body = b'{"Items":[' + b",".join(r[2] for r in rows) + b"]"
        count = str(len(rows)).encode()
        body += b',"Count":' + count + b',"ScannedCount":' + count
        if rows and len(rows) == limit:
            pk, sk, _ = rows[-1]
            body += b',"LastEvaluatedKey":' + self.orjson.dumps(
                {"pk": {"S": pk}, "sk": {"S": sk}})
        return body + b"}"

    def query(self, request: dict[str, Any]) -> bytes:
        values = request["ExpressionAttributeValues"]
        limit = int(request.get("Limit", 100))
        rows = self.db.execute(
            "SELECT pk, sk, item FROM items WHERE pk=? AND sk>=? ORDER BY sk LIMIT ?",
            (values[":pk"]["S"], values[":from"]["S"], limit)).fetchall()
        return self._page(rows, limit)

    def scan(self, request: dict[str, Any]) -> bytes:
        limit = int(request.get("Limit", 100))
        start = request.get("ExclusiveStartKey")
        if start is None:
            rows = self.db.execute("SELECT pk, sk, item FROM items ORDER BY pk, sk LIMIT ?",
                                   (limit,)).fetchall()
        else:
            rows = self.db.execute(
                "SELECT pk, sk, item FROM items WHERE (pk, sk) > (?, ?) ORDER BY pk, sk LIMIT ?",
                (_key_string(start, "pk"), _key_string(start, "sk"), limit)).fetchall()
        return self._page(rows, limit)

    def batch_get_item(self, request: dict[str, Any]) -> bytes:
        parts = []
        for name, spec in request["RequestItems"].items():
            found = []
            for key in spec["Keys"]:
                row = self.db.execute("SELECT item FROM items WHERE pk=? AND sk=?",
                                      (_key_string(key, "pk"), _key_string(key, "sk"))).fetchone()
                if row is not None:
                    found.append(row[0])
            parts.append(self.orjson.dumps(name) + b":[" + b",".join(found) + b"]")
        return b'{"Responses":{' + b",".join(parts) + b'},"UnprocessedKeys":{}}'

    def _insert(self, item: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO items (pk, sk, item) VALUES (?, ?, ?)",
                        (_key_string(item, "pk"), _key_string(item, "sk"),
                         self.orjson.dumps(item)))

    def put_item(self, request: dict[str, Any]) -> bytes:
        self._insert(request["Item"])   # autocommit: one commit
        return b"{}"

    def batch_write_item(self, request: dict[str, Any]) -> bytes:
        self.db.execute("BEGIN")
        try:
            for writes in request["RequestItems"].values():
                for write in writes:
                    self._insert(write["PutRequest"]["Item"])
        finally:
            self.db.execute("COMMIT")
        return b'{"UnprocessedItems":{}}'

    def update_item(self, request: dict[str, Any]) -> bytes:
        key = request["Key"]
        args = (_key_string(key, "pk"), _key_string(key, "sk"))
        self.db.execute("BEGIN")
        try:
            row = self.db.execute("SELECT item FROM items WHERE pk=? AND sk=?", args).fetchone()
            if row is not None:
                self.db.execute("UPDATE items SET item=? WHERE pk=? AND sk=?", (row[0], *args))
        finally:
            self.db.execute("COMMIT")
        return b"{}"


class _DateHeader:
    """The Date header, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = email.utils.formatdate(now, usegmt=True).encode()
        return self._value


def serve(host: str, port: int, store: FloorStore) -> None:
    import httptools
    import orjson
    import uvloop

    date = _DateHeader()

    class FloorProtocol(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.transport: asyncio.Transport | None = None
            self.target = ""
            self.body: list[bytes] = []

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                assert self.transport is not None
                self.transport.close()

        def on_message_begin(self) -> None:
            self.target = ""
            self.body = []

        def on_header(self, name: bytes, value: bytes) -> None:
            if name.lower() == b"x-amz-target":
                self.target = value.decode()

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            assert self.transport is not None
            handler = store.handlers.get(self.target.removeprefix(TARGET_PREFIX))
            if handler is None:
                status, answer = b"400 Bad Request", (
                    b'{"__type":"com.amazonaws.dynamodb.v20120810#UnknownOperationException"}')
            else:
                status, answer = b"200 OK", handler(orjson.loads(b"".join(self.body)))
            keep_alive = self.parser.should_keep_alive()
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: " + CONTENT_TYPE
                + b"\r\nContent-Length: " + str(len(answer)).encode()
                + b"\r\nx-amzn-RequestId: floor\r\nDate: " + date.get()
                + (b"\r\n\r\n" if keep_alive else b"\r\nConnection: close\r\n\r\n")
                + answer)
            if not keep_alive:
                self.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FloorProtocol, host, port, backlog=1024)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.data_dir, exist_ok=True)
    serve(args.host, args.port, FloorStore(os.path.join(args.data_dir, "floor.sqlite")))


if __name__ == "__main__":
    main()
