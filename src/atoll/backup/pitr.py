"""Point-in-time recovery: per table, snapshots plus an archive of its changes.

Theory of operation
- Region data, as in DynamoDB global tables (each replica has its own setting): a table's
  PITR lives in the node that enabled it, under `<backup dir>/pitr/<table id>/`.
- Enabling takes a table snapshot (Storage.snapshot_table) at once and writes it to a
  file in the background. From the same turn of the event loop on, the archiver routes
  every changelog record that touches the table into the table's archive (archive.py).
- The archiver reads the changelog — every change applied here, local or from peers —
  per origin after its own cursor, a page at a time, every ARCHIVE_INTERVAL_S; it
  appends the records of PITR tables to their segments, fsyncs them, then persists its
  cursor. Replication's retention must not purge a record before that: `holds()` is the
  archiver's persisted cursor, which the retention plan takes as a ceiling (see
  atoll.replication.retention). Only the archived tables' records are kept past the
  purge, so PITR holds back purging for its tables alone.
- Snapshots: one at enabling, then every `snapshot_interval_s`. Snapshot n starts epoch
  n of the archive: every record archived before it is covered by it (its cursors are at
  or above the archiver's cursor when it was opened), so a restore from snapshot n reads
  epochs >= n only, skipping records at or below the snapshot's cursors.
- The window: a restore to T uses the newest complete snapshot whose `covered_ms` (the
  newest stamp it contains) is at or before T, plus the archive (replay.py). Earliest
  restorable = max(enable time, oldest kept snapshot's covered_ms, now - window), latest
  = now. Retention keeps the newest snapshot at or before now - window and everything
  after it, and drops the rest (whole snapshots and epochs). The window is
  RecoveryPeriodInDays, capped by the node's `window_cap_s` if set (tests use seconds).
- If the changelog was purged past the archiver's cursor (the retention's bounded
  maximum overrode the hold), the snapshots that needed the lost records are dropped;
  a table left without one takes a new snapshot, and its window starts again there.
- Restarts: PITR state is in `state.json` per table and the archiver's cursor in
  `archiver.json`, each replaced atomically. A snapshot whose file was not complete is
  discarded; records archived twice merge to the same state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from atoll.backup import archive
from atoll.backup.format import BackupReader, BackupWriter
from atoll.backup.store import fsync_directory, write_atomically
from atoll.clock.hlc import hlc_physical_ms
from atoll.errors import InvalidRestoreTime, PointInTimeRecoveryUnavailable
from atoll.storage.protocol import SnapshotRow, Storage, TableSnapshot

log = logging.getLogger(__name__)

ARCHIVE_INTERVAL_S = 0.5
PAGE_RECORDS = 1000
MAX_ROUND_PAGES = 50  # per origin and round: a round yields to the loop between pages
SEGMENT_MAX_BYTES = 64 * 1024 * 1024
SNAPSHOT_PAGE_ROWS = 5000
DAY_MS = 86_400_000
DEFAULT_RECOVERY_DAYS = 35


@dataclass
class SnapshotInfo:
    n: int  # also the epoch it starts
    cursors: dict[str, int]  # per origin, the highest seq it contains
    covered_ms: int  # the newest physical stamp among the changes it contains
    taken_ms: int
    complete: bool = False


@dataclass
class PitrTable:
    name: str
    table_id: str
    directory: str
    enabled_ms: int
    days: int
    snapshots: list[SnapshotInfo] = field(default_factory=list)
    epoch: int = 0  # the newest snapshot's number: where records are archived now
    needle: tuple[bytes, bytes] = (b"", b"")  # how its records name it (see `_route`)
    buffers: dict[int, list[bytes]] = field(default_factory=dict)  # epoch -> records
    writers: dict[int, archive.SegmentWriter] = field(default_factory=dict)
    pins: int = 0  # restores reading its files (retention waits)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "table_id": self.table_id, "enabled_ms": self.enabled_ms,
                "days": self.days, "epoch": self.epoch,
                "snapshots": [vars(s) for s in self.snapshots if s.complete]}

    def snapshot_path(self, info: SnapshotInfo) -> str:
        return os.path.join(self.directory, f"snapshot-{info.n:06d}.atb")


def _needles(name: str) -> tuple[bytes, bytes]:
    """The byte strings by which a change body names a table: an item op's `"w":` field
    or a table op's `"t":` field (atoll.replication.change's canonical JSON). An item's
    own JSON cannot contain them: its values are typed maps, never bare strings."""
    quoted = orjson.dumps(name)
    return b'"w":' + quoted, b'"t":' + quoted


class PointInTimeRecovery:
    def __init__(self, directory: str, storage: Storage, now_ms: Callable[[], int],
                 table_id_of: Callable[[str], str | None],
                 window_cap_s: float | None = None,
                 snapshot_interval_s: float = 86_400.0) -> None:
        self.directory = os.path.join(directory, "pitr")
        os.makedirs(self.directory, exist_ok=True)
        self.storage = storage
        self.now_ms = now_ms
        self.table_id_of = table_id_of  # the live table's id, or None if it does not exist
        self.window_cap_ms = int(window_cap_s * 1000) if window_cap_s else None
        self.snapshot_interval_ms = int(snapshot_interval_s * 1000)
        self.tables: dict[str, PitrTable] = {}  # by table id
        self.cursors: dict[str, int] = {}  # archived through, per origin (persisted)
        self._persisted: dict[str, int] = {}  # what `holds` answers: durable
        self._io = asyncio.Lock()  # archive files: one writer/remover at a time
        self._round = asyncio.Lock()
        self._writing: set[asyncio.Task[Any]] = set()
        self.archived_records = 0
        self.lost_records = 0
        self._load()

    # --- persistence --------------------------------------------------------------------
    def _cursor_path(self) -> str:
        return os.path.join(self.directory, "archiver.json")

    def _load(self) -> None:
        try:
            with open(self._cursor_path(), "rb") as source:
                self.cursors = {str(o): int(s) for o, s in orjson.loads(source.read()).items()}
        except FileNotFoundError:
            self.cursors = {}
        self._persisted = dict(self.cursors)
        for name in sorted(os.listdir(self.directory)):
            state_path = os.path.join(self.directory, name, "state.json")
            if not os.path.exists(state_path):
                continue
            with open(state_path, "rb") as source:
                data = orjson.loads(source.read())
            table = PitrTable(data["name"], data["table_id"], os.path.join(self.directory, name),
                              int(data["enabled_ms"]), int(data["days"]),
                              [SnapshotInfo(**s) for s in data["snapshots"]], int(data["epoch"]),
                              _needles(data["name"]))
            for leftover in os.listdir(table.directory):  # a snapshot cut short by a stop
                if leftover.endswith(".partial"):
                    os.remove(os.path.join(table.directory, leftover))
            self.tables[table.table_id] = table

    def _save(self, table: PitrTable) -> None:
        write_atomically(os.path.join(table.directory, "state.json"),
                         orjson.dumps(table.to_json()))

    # --- what others ask ----------------------------------------------------------------
    def holds(self) -> dict[str, int]:
        """Per origin, the highest changelog seq the archive holds durably: replication's
        retention may purge up to here and no further (nothing while no table has PITR)."""
        return dict(self._persisted) if self.tables else {}

    def enabled(self, table_id: str) -> PitrTable | None:
        return self.tables.get(table_id)

    def window_ms(self, table: PitrTable) -> int:
        window = table.days * DAY_MS
        return min(window, self.window_cap_ms) if self.window_cap_ms else window

    def earliest_ms(self, table: PitrTable) -> int | None:
        complete = [s for s in table.snapshots if s.complete]
        if not complete:
            return None
        return max(table.enabled_ms, complete[0].covered_ms, self.now_ms() - self.window_ms(table))

    def describe(self, table_id: str) -> dict[str, Any]:
        """PointInTimeRecoveryDescription, as DynamoDB gives it (times in seconds)."""
        table = self.tables.get(table_id)
        if table is None:
            return {"PointInTimeRecoveryStatus": "DISABLED"}
        now = self.now_ms()
        earliest = self.earliest_ms(table)
        return {"PointInTimeRecoveryStatus": "ENABLED", "RecoveryPeriodInDays": table.days,
                "EarliestRestorableDateTime": (earliest if earliest is not None
                                               else table.enabled_ms) / 1000,
                "LatestRestorableDateTime": now / 1000}

    # --- enabling and disabling ---------------------------------------------------------
    def enable(self, name: str, table_id: str, days: int, snapshot: TableSnapshot) -> PitrTable:
        """Start PITR for a table from `snapshot` (opened this loop turn; closed here)."""
        existing = self.tables.get(table_id)
        if existing is not None:
            existing.days = days
            snapshot.close()
            self._spawn(asyncio.to_thread(self._save, existing), f"pitr save {name}")
            return existing
        if not self.tables:  # the archiver was idle: start it where this snapshot is
            self.cursors = {o: seq for o, (seq, _hlc) in snapshot.cursors.items()}
        table = PitrTable(name, table_id, os.path.join(self.directory, table_id),
                          self.now_ms(), days, needle=_needles(name))
        os.makedirs(table.directory, exist_ok=True)
        self.tables[table_id] = table
        self._start_snapshot(table, snapshot)
        return table

    async def disable(self, table_id: str) -> None:
        """Stop PITR for the table and delete its snapshots and archive."""
        table = self.tables.pop(table_id, None)
        if table is not None:
            await self._remove_files(table)

    async def _remove_files(self, table: PitrTable) -> None:
        async with self._io:
            await asyncio.to_thread(_remove_table_files, table)

    # --- snapshots ----------------------------------------------------------------------
    def _start_snapshot(self, table: PitrTable, snapshot: TableSnapshot) -> None:
        """Snapshot n starts epoch n now; its file is written in the background."""
        vector = snapshot.cursors
        covered = max((hlc_physical_ms(hlc) for _seq, hlc in vector.values()), default=0)
        info = SnapshotInfo(table.epoch + 1, {o: seq for o, (seq, _hlc) in vector.items()},
                            covered, self.now_ms())
        table.epoch = info.n
        table.snapshots.append(info)
        state = snapshot.state
        header = {"kind": "pitr-snapshot", "table": table.name, "table_id": table.table_id,
                  "definition": orjson.loads(snapshot.definition),
                  # the table name's replicated state: (created, version) and the
                  # region-independent definition replay merges table ops against
                  "state": None if state is None else [
                      [state[0], state[1]], [state[2], state[3]],
                      orjson.loads(state[4]) if state[4] is not None else None],
                  "cursors": {o: list(v) for o, v in vector.items()}}
        self._spawn(self._write_snapshot(table, info, snapshot, header),
                    f"pitr snapshot {table.name} #{info.n}")

    async def _write_snapshot(self, table: PitrTable, info: SnapshotInfo,
                              snapshot: TableSnapshot, header: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(write_snapshot_file, snapshot, table.snapshot_path(info),
                                    header, True)
        except FileNotFoundError:
            if self.tables.get(table.table_id) is not table:
                return  # disabled meanwhile: its directory went
            raise
        finally:
            snapshot.close()
        if self.tables.get(table.table_id) is not table:
            return  # disabled meanwhile
        info.complete = True
        await asyncio.to_thread(self._save, table)
        log.info("PITR snapshot %d of %s written", info.n, table.name)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._writing.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._writing.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed", name, exc_info=t.exception())
        task.add_done_callback(done)
        return task

    # --- the archiver -------------------------------------------------------------------
    async def run(self) -> None:
        """The background loop: archive, take due snapshots, apply the window."""
        while True:
            try:
                await self.archive_round()
                self._due_snapshots()
                await self._retention()
            except asyncio.CancelledError:
                raise
            except Exception:  # a disk fault: logged, the next round retries
                log.exception("point-in-time recovery round failed")
            await asyncio.sleep(ARCHIVE_INTERVAL_S)

    async def stop(self) -> None:
        for task in list(self._writing):
            task.cancel()
        await asyncio.gather(*self._writing, return_exceptions=True)
        for table in self.tables.values():
            for writer in table.writers.values():
                writer.close()
            table.writers.clear()

    async def archive_round(self) -> None:
        """Archive every committed changelog record past the cursor; then fsync, persist.
        One round at a time (a restore asks for one besides the loop's)."""
        async with self._round:
            await self._archive()

    async def _archive(self) -> None:
        self._drop_gone_tables()
        if not self.tables:
            return
        starts = self.storage.log_start()
        for origin in self.storage.cursor_vector():
            after = self.cursors.get(origin, 0)
            if starts.get(origin, 0) > after:
                self._lost(origin, after, starts[origin])
                after = starts[origin]
            for _page in range(MAX_ROUND_PAGES):
                records = self.storage.changes_since(origin, after, PAGE_RECORDS)
                if not records:
                    break
                self._route(origin, records)
                after = records[-1][0]
                self.cursors[origin] = after
                if len(records) < PAGE_RECORDS:
                    break
                await asyncio.sleep(0)  # let requests in between pages
        await self._flush_buffers()

    def _route(self, origin: str, records: list[tuple[int, int, bytes]]) -> None:
        tables = list(self.tables.values())
        for seq, hlc, body in records:
            encoded = b""
            for table in tables:
                item, ddl = table.needle
                if item in body or ddl in body:
                    encoded = encoded or archive.encode_record(origin, seq, hlc, body)
                    table.buffers.setdefault(table.epoch, []).append(encoded)
                    self.archived_records += 1

    async def _flush_buffers(self) -> None:
        batches = []
        for table in self.tables.values():
            if table.buffers:
                batches.append((table, table.buffers))
                table.buffers = {}
        cursors = dict(self.cursors)
        async with self._io:
            await asyncio.to_thread(self._write_batches, batches, cursors)
        self._persisted = cursors

    def _write_batches(self, batches: list[tuple[PitrTable, dict[int, list[bytes]]]],
                       cursors: dict[str, int]) -> None:
        touched = []
        for table, buffers in batches:
            if not os.path.isdir(table.directory):
                continue  # disabled meanwhile
            for epoch, records in sorted(buffers.items()):
                writer = self._writer(table, epoch)
                writer.append(b"".join(records))
                touched.append(writer)
        for writer in touched:
            writer.sync()
        if cursors != self._persisted:
            write_atomically(self._cursor_path(), orjson.dumps(cursors))

    def _writer(self, table: PitrTable, epoch: int) -> archive.SegmentWriter:
        """The open segment of an epoch: a new part per epoch per process, and whenever
        the current one outgrows SEGMENT_MAX_BYTES."""
        writer = table.writers.get(epoch)
        if writer is not None and writer.size_bytes < SEGMENT_MAX_BYTES:
            return writer
        if writer is not None:
            writer.close()
        parts = [part for e, part, _path in archive.segments(table.directory) if e == epoch]
        writer = archive.SegmentWriter(os.path.join(
            table.directory, archive.segment_name(epoch, max(parts, default=-1) + 1)))
        for old_epoch in [e for e in table.writers if e < epoch]:
            table.writers.pop(old_epoch).close()
        table.writers[epoch] = writer
        return writer

    def _lost(self, origin: str, after: int, start: int) -> None:
        """Records (after, start] of `origin` were purged before they were archived."""
        self.lost_records += start - after
        for table in self.tables.values():
            kept = [s for s in table.snapshots if s.cursors.get(origin, 0) >= start]
            if len(kept) != len(table.snapshots):
                log.warning("PITR for %s lost changes %s/%d..%d (purged before archived): its "
                            "window restarts at a new snapshot", table.name, origin, after + 1,
                            start)
                table.snapshots = kept
                if not kept:
                    table.enabled_ms = self.now_ms()
                    self._snapshot_now(table)

    def _drop_gone_tables(self) -> None:
        for table_id, table in list(self.tables.items()):
            if self.table_id_of(table.name) != table_id:
                log.info("PITR of %s ends: the table was deleted", table.name)
                self.tables.pop(table_id, None)
                self._spawn(self._remove_files(table), f"pitr remove {table.name}")

    def _snapshot_now(self, table: PitrTable) -> None:
        snapshot = self.storage.snapshot_table(table.name)
        if snapshot is None:
            return
        self._start_snapshot(table, snapshot)

    def _due_snapshots(self) -> None:
        now = self.now_ms()
        for table in self.tables.values():
            newest = table.snapshots[-1] if table.snapshots else None
            if newest is None or (newest.complete
                                  and now - newest.taken_ms >= self.snapshot_interval_ms):
                self._snapshot_now(table)

    async def _retention(self) -> None:
        """Drop snapshots and epochs no restore inside the window can need."""
        now = self.now_ms()
        for table in list(self.tables.values()):
            complete = [s for s in table.snapshots if s.complete]
            if table.pins or not complete:
                continue
            horizon = now - self.window_ms(table)
            base = max((s for s in complete if s.covered_ms <= horizon),
                       key=lambda s: s.n, default=complete[0])
            old = [s for s in table.snapshots if s.n < base.n]
            if not old:
                continue
            table.snapshots = [s for s in table.snapshots if s.n >= base.n]
            async with self._io:
                await asyncio.to_thread(_remove_before, table, base.n, old)
                await asyncio.to_thread(self._save, table)

    # --- restoring ----------------------------------------------------------------------
    async def restore_source(self, table_id: str, until_ms: int
                             ) -> tuple[PitrTable, dict[str, Any], Callable[[], Iterator[SnapshotRow]],
                                        Callable[[], Iterator[archive.ArchivedRecord]]]:
        """What replay.replay needs to rebuild the table as of `until_ms` (ms): the
        snapshot's header and two re-openable streams. The table is pinned (its files
        kept) until `release`."""
        table = self.tables.get(table_id)
        if table is None:
            raise PointInTimeRecoveryUnavailable(
                "Point in time recovery has not yet been enabled for this source table")
        await self.archive_round()  # everything committed until now is in the archive
        earliest = self.earliest_ms(table)
        latest = self.now_ms()
        if earliest is None or not earliest <= until_ms <= latest:
            raise InvalidRestoreTime(
                "Invalid restore time specified: RestoreDateTime must be between "
                f"EarliestRestorableDateTime and LatestRestorableDateTime ({_window(earliest)} "
                f"to {latest / 1000:.3f}); it was {until_ms / 1000:.3f}")
        info = max((s for s in table.snapshots if s.complete and s.covered_ms <= until_ms),
                   key=lambda s: s.n)
        paths = [p for e, _part, p in archive.segments(table.directory) if e >= info.n]
        table.pins += 1
        reader_path = table.snapshot_path(info)
        with open(reader_path, "rb") as source:
            header = BackupReader(source, reader_path).header
        header["cursors"] = info.cursors

        def snapshot() -> Iterator[SnapshotRow]:
            with open(reader_path, "rb") as source:
                yield from BackupReader(source, reader_path).rows()

        def records() -> Iterator[archive.ArchivedRecord]:
            for path in paths:
                yield from archive.read_segment(path)

        return table, header, snapshot, records

    def release(self, table: PitrTable) -> None:
        table.pins = max(0, table.pins - 1)


def _window(earliest: int | None) -> str:
    return f"{earliest / 1000:.3f}" if earliest is not None else "(no snapshot yet)"


def write_snapshot_file(snapshot: TableSnapshot, path: str, header: dict[str, Any],
                        tombstones: bool) -> dict[str, Any]:
    """Write a table snapshot (items, then tombstones if asked) as a backup file at
    `path`, fsynced: written beside as `.partial`, renamed when complete."""
    partial = path + ".partial"
    with open(partial, "wb") as out:
        writer = BackupWriter(out, {**header, "item_count": snapshot.item_count,
                                    "size_bytes": snapshot.size_bytes})
        for dead in (False, True) if tombstones else (False,):
            after = None
            while True:
                page = snapshot.rows(after, SNAPSHOT_PAGE_ROWS, dead)
                for row in page:
                    writer.row(*row)
                if len(page) < SNAPSHOT_PAGE_ROWS:
                    break
                after = page[-1][:3]
        footer = writer.finish()
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    fsync_directory(os.path.dirname(path))
    return footer


def _remove_before(table: PitrTable, first: int, snapshots: list[SnapshotInfo]) -> None:
    for info in snapshots:
        try:
            os.remove(table.snapshot_path(info))
        except FileNotFoundError:
            pass
    for epoch, _part, path in archive.segments(table.directory):
        if epoch < first:
            writer = table.writers.pop(epoch, None)
            if writer is not None:
                writer.close()
            os.remove(path)


def _remove_table_files(table: PitrTable) -> None:
    for writer in table.writers.values():
        writer.close()
    table.writers.clear()
    shutil.rmtree(table.directory, ignore_errors=True)
