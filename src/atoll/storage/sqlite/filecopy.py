"""Whole-database copies of a SQLite node: `atoll backup` and `atoll restore`.

SQLite's online backup API copies every page of a database through one read
transaction when asked for all pages in one step: in WAL mode that transaction sees one
committed state (the WAL's committed frames included) while writers go on, so a copy of
a running node's file is as consistent as one of a stopped node's. The copy is written
beside its destination, checked (`PRAGMA quick_check`), fsynced and renamed into place.

These are tools for the SQLite file itself (like `integrity_check`), not part of the
Storage protocol: another backend copies itself with its own tools (pg_dump).
"""

from __future__ import annotations

import os
import sqlite3

from atoll.files import fsync_directory
from atoll.storage.sqlite.connection import migratable
from atoll.storage.sqlite.schema import SCHEMA_VERSION


class CopyRefused(Exception):
    """A file that is not a usable Atoll database, or a copy that failed its check."""


def copy_database(source_path: str, target_path: str) -> int:
    """Copy the database at `source_path` (running or not) to `target_path`; its size."""
    partial = target_path + ".partial"
    for leftover in (partial, partial + "-journal"):
        if os.path.exists(leftover):
            os.remove(leftover)
    source = sqlite3.connect(source_path)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)  # every page in one step: one read transaction
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            _check(target, partial)
        finally:
            target.close()
    finally:
        source.close()
    with open(partial, "rb+") as copied:
        os.fsync(copied.fileno())
    os.replace(partial, target_path)
    fsync_directory(os.path.dirname(os.path.abspath(target_path)))
    return os.path.getsize(target_path)


def check_database(path: str) -> None:
    """CopyRefused unless `path` is an intact Atoll database of this schema version, or
    of an older one that a node migrates when it opens the file."""
    if not os.path.isfile(path):
        raise CopyRefused(f"{path}: no such file")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        _check(conn, path)
    except sqlite3.DatabaseError as exc:
        raise CopyRefused(f"{path} is not an Atoll database: {exc}") from None
    finally:
        conn.close()


def _check(conn: sqlite3.Connection, path: str) -> None:
    verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
    if verdict != "ok":
        raise CopyRefused(f"{path} failed SQLite's check: {verdict}")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError:
        row = None
    if row is None or not migratable(int(row[0])):
        raise CopyRefused(f"{path} is not an Atoll database of schema version {SCHEMA_VERSION}"
                          " or one that migrates to it")


def database_cursors(path: str, region: str) -> dict[str, int]:
    """Per origin, the last change the database at `path` holds (this region's own: its
    latest changelog record or cursor, whichever is higher)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cursors = {str(o): int(s) for o, s in conn.execute("SELECT origin, seq FROM cursors")}
        row = conn.execute("SELECT MAX(origin_seq) FROM changelog WHERE origin=?",
                           (region,)).fetchone()
        if row[0] is not None and int(row[0]) > cursors.get(region, 0):
            cursors[region] = int(row[0])
        return cursors
    finally:
        conn.close()

