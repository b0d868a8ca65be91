"""Table and changelog snapshots read through one SQL read transaction (SQLite, PostgreSQL).

Theory of operation: a backend opens a connection of its own, starts a read transaction
on it in which every statement sees the database as committed at one moment (SQLite: a
WAL read transaction; PostgreSQL: REPEATABLE READ), and hands this module a `SqlReader`
for it. What a snapshot reads — the table's row and pinned state, the cursor vector,
pages of items, tombstones and log records — is the same SQL on both backends, written
here once with `?` placeholders (a reader translates them to its driver's style). Item
rows and log records are checked against their CRC32 as they are read. Closing releases
the reader once (ends its transaction and closes its connection); a closed snapshot
refuses further reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from atoll.checksum import crc32
from atoll.storage.protocol import CorruptionDetected, ScanKey, SnapshotRow, TableStateRow

LogRow = tuple[int, int, bytes]  # (origin_seq, hlc, body)


class SqlReader(Protocol):
    """One connection inside its read transaction."""

    def query(self, sql: str, args: Sequence[Any]) -> list[Any]:
        """The rows of one statement (`?` placeholders) read in the transaction."""
        ...

    def release(self) -> None:
        """End the transaction and close the connection (called once)."""
        ...


def _blob(value: Any) -> bytes | None:
    """A stored blob as bytes (drivers may hand back other buffer types)."""
    return bytes(value) if value is not None else None


def cursor_vector(reader: SqlReader, region: str) -> dict[str, tuple[int, int]]:
    """As the storage's `cursor_vector`, inside the snapshot's transaction: this region's
    entry is its latest changelog record when that is ahead of its cursor."""
    vector = {str(o): (int(s), int(h))
              for o, s, h in reader.query("SELECT origin, seq, hlc FROM cursors", ())}
    rows = reader.query("SELECT origin_seq, hlc FROM changelog WHERE origin = ?"
                        " ORDER BY origin_seq DESC LIMIT 1", (region,))
    if rows and (int(rows[0][0]), int(rows[0][1])) > vector.get(region, (0, 0)):
        vector[region] = (int(rows[0][0]), int(rows[0][1]))
    return vector


class SqlTableSnapshot:
    def __init__(self, reader: SqlReader, tid: int, definition: bytes,
                 state: TableStateRow | None, cursors: dict[str, tuple[int, int]],
                 item_count: int, size_bytes: int) -> None:
        self._reader: SqlReader | None = reader
        self.tid = tid
        self.definition = definition
        self.state = state
        self.cursors = cursors
        self.item_count = item_count
        self.size_bytes = size_bytes

    def rows(self, after: ScanKey | None, limit: int, tombstones: bool) -> list[SnapshotRow]:
        reader = self._reader
        if reader is None:
            raise ValueError("snapshot closed")
        if tombstones:
            sql = "SELECT h, pk, sk, hlc, origin, NULL, NULL FROM tombstones WHERE tid = ?"
        else:
            sql = "SELECT h, pk, sk, hlc, origin, item, crc FROM items WHERE tid = ?"
        args: list[Any] = [self.tid]
        if after is not None:
            sql += " AND (h, pk, sk) > (?, ?, ?)"
            args += list(after)
        sql += " ORDER BY h, pk, sk LIMIT ?"
        args.append(limit)
        result: list[SnapshotRow] = []
        for h, pk, sk, hlc, origin, item, crc in reader.query(sql, args):
            if item is not None and crc32(item) != crc:
                raise CorruptionDetected("Stored item failed its checksum")
            result.append((int(h), bytes(pk), bytes(sk), int(hlc), str(origin), _blob(item)))
        return result

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.release()


def pin_table(reader: SqlReader, region: str, name: str) -> SqlTableSnapshot | None:
    """The table `name` as the reader's transaction sees it (None, and the reader
    released, if it is not live). The first statement is where the snapshot starts."""
    row = reader.query("SELECT tid, definition, item_count, size_bytes FROM tables"
                       " WHERE name = ?", (name,))
    if not row:
        reader.release()
        return None
    tid, definition, item_count, size_bytes = row[0]
    states = reader.query(
        "SELECT created_hlc, created_origin, version_hlc, version_origin, definition"
        " FROM table_states WHERE name = ?", (name,))
    pinned: TableStateRow | None = None
    if states:
        state = states[0]
        pinned = (int(state[0]), str(state[1]), int(state[2]), str(state[3]), _blob(state[4]))
    return SqlTableSnapshot(reader, int(tid), bytes(definition), pinned,
                            cursor_vector(reader, region), int(item_count), int(size_bytes))


class SqlChangesSnapshot:
    """The changelog and the kept logs in the reader's transaction."""

    def __init__(self, reader: SqlReader, region: str,
                 decode_markers: Callable[[bytes], list[bytes]]) -> None:
        self._reader: SqlReader | None = reader
        self.kept_tables = {
            str(name): tuple(decode_markers(bytes(markers)))
            for name, markers in reader.query("SELECT name, markers FROM kept_tables", ())}
        self.cursors = cursor_vector(reader, region)

    def _rows(self, sql: str, args: tuple[Any, ...], what: str) -> list[LogRow]:
        reader = self._reader
        if reader is None:
            raise ValueError("snapshot closed")
        rows = []
        for seq, hlc, body, crc in reader.query(sql, args):
            if crc32(body) != crc:
                raise CorruptionDetected(f"{what} record {seq} failed its checksum")
            rows.append((int(seq), int(hlc), bytes(body)))
        return rows

    def changes(self, origin: str, after_seq: int, limit: int) -> list[LogRow]:
        return self._rows("SELECT origin_seq, hlc, body, crc FROM changelog WHERE origin = ?"
                          " AND origin_seq > ? ORDER BY origin_seq LIMIT ?",
                          (origin, after_seq, limit), f"changelog {origin}")

    def kept(self, table: str, origin: str, after_seq: int, limit: int) -> list[LogRow]:
        return self._rows("SELECT origin_seq, hlc, body, crc FROM kept_changes WHERE"
                          " table_name = ? AND origin = ? AND origin_seq > ? ORDER BY"
                          " origin_seq LIMIT ?", (table, origin, after_seq, limit),
                          f"kept {origin}")

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.release()
