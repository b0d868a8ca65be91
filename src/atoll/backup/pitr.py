"""Point-in-time recovery: per table, snapshots plus the changelog records kept for it.

Theory of operation
- Region data, as in DynamoDB global tables (each replica has its own setting): a table's
  PITR lives in the node that enabled it — its state and snapshots under
  `<backup dir>/pitr/<table id>/`, its kept records in the node's storage.
- The changes come from the changelog, which holds every change applied here (local or
  from peers) with its HLC. Enabling first tells the storage to keep the table's records
  past the changelog's purge (WriteTxn.keep_changes: replication's retention purges
  records every region acknowledged, and the purge now moves the table's records to its
  kept log instead of deleting them, in SQL, in the same transaction). So PITR holds
  back the purge for its tables only, and the write path does no extra work at all.
  Then it pins a first table snapshot (Storage.snapshot_table), written to a file in the
  background: every record it lacks is above its cursors, and still in the changelog or
  the kept log.
- Snapshots: one at enabling, then every `snapshot_interval_s`, so that a restore has
  fewer changes to replay. A restore to T uses the newest complete snapshot whose
  `covered_ms` (the newest stamp among the changes it holds) is at or before T, and
  replays the table's records above its cursors that are stamped at or before T
  (replay.py), read through one Storage.snapshot_changes() of the changelog and kept log.
- The window: earliest restorable = max(enable time, oldest kept snapshot's covered_ms,
  now - window), latest = now. Retention keeps the newest snapshot at or before
  now - window and everything after it: older snapshot files go, and so do the kept
  records at or below that snapshot's cursors. The window is RecoveryPeriodInDays,
  capped by the node's `window_cap_s` if set (tests use seconds).
- Restarts: PITR state is in `state.json` per table, replaced atomically; a snapshot
  whose file was not complete is discarded. A table found kept in storage with no PITR
  state (its state files were removed) is released; one with state but no longer kept
  (its database was restored from an older copy) starts its window again.
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

from atoll.backup.format import BackupReader, BackupWriter
from atoll.clock.hlc import hlc_physical_ms
from atoll.errors import InvalidRestoreTime, PointInTimeRecoveryUnavailable, TableNotFound
from atoll.files import fsync_directory, write_atomically
from atoll.storage.protocol import (
    ChangesSnapshot,
    SnapshotRow,
    Storage,
    TableSnapshot,
    WriteJob,
    WriteTxn,
)
from atoll.tasks import TaskSet

log = logging.getLogger(__name__)

ROUND_INTERVAL_S = 1.0
SNAPSHOT_PAGE_ROWS = 5000
RECORD_PAGE = 1000
PURGE_LIMIT = 2000  # kept records per purge job (a purge is a write job: kept short)
MAX_PURGE_JOBS = 50  # per table and round
DAY_MS = 86_400_000
DEFAULT_RECOVERY_DAYS = 35

ArchivedRecord = tuple[str, int, int, bytes]  # (origin, seq, hlc, changelog frame)


@dataclass
class SnapshotInfo:
    n: int
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
    pins: int = 0  # restores reading its files (retention waits)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "table_id": self.table_id, "enabled_ms": self.enabled_ms,
                "days": self.days, "snapshots": [vars(s) for s in self.snapshots if s.complete]}

    def snapshot_path(self, info: SnapshotInfo) -> str:
        return os.path.join(self.directory, f"snapshot-{info.n:06d}.atb")


def markers(name: str) -> tuple[bytes, bytes]:
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
        self._tasks = TaskSet(log)
        self._load()

    # --- persistence --------------------------------------------------------------------
    def _load(self) -> None:
        for name in sorted(os.listdir(self.directory)):
            state_path = os.path.join(self.directory, name, "state.json")
            if not os.path.exists(state_path):
                continue
            with open(state_path, "rb") as source:
                data = orjson.loads(source.read())
            table = PitrTable(data["name"], data["table_id"], os.path.join(self.directory, name),
                              int(data["enabled_ms"]), int(data["days"]),
                              [SnapshotInfo(**s) for s in data["snapshots"]])
            for leftover in os.listdir(table.directory):  # a snapshot cut short by a stop
                if leftover.endswith(".partial"):
                    os.remove(os.path.join(table.directory, leftover))
            self.tables[table.table_id] = table

    def _save(self, table: PitrTable) -> None:
        write_atomically(os.path.join(table.directory, "state.json"),
                         orjson.dumps(table.to_json()))

    # --- what others ask ----------------------------------------------------------------
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
        earliest = self.earliest_ms(table)
        return {"PointInTimeRecoveryStatus": "ENABLED", "RecoveryPeriodInDays": table.days,
                "EarliestRestorableDateTime": (earliest if earliest is not None
                                               else table.enabled_ms) / 1000,
                "LatestRestorableDateTime": self.now_ms() / 1000}

    # --- enabling and disabling ---------------------------------------------------------
    async def enable(self, name: str, table_id: str, days: int) -> PitrTable:
        """Start (or re-set the window of) PITR for the live table `name`."""
        existing = self.tables.get(table_id)
        if existing is not None:
            existing.days = days
            await asyncio.to_thread(self._save, existing)
            return existing
        # Kept from this commit on; the snapshot below is opened after it, so every record
        # it lacks is either still in the changelog or moved to the kept log.
        await self.storage.write(_keep_job(name))
        snapshot = self.storage.snapshot_table(name)
        if snapshot is None or self.table_id_of(name) != table_id:
            if snapshot is not None:
                snapshot.close()
            raise TableNotFound(f"Table not found: {name}")
        table = PitrTable(name, table_id, os.path.join(self.directory, table_id),
                          self.now_ms(), days)
        os.makedirs(table.directory, exist_ok=True)
        self.tables[table_id] = table
        self._start_snapshot(table, snapshot)
        return table

    async def disable(self, table_id: str) -> None:
        """Stop PITR for the table: release its kept records, delete its snapshots."""
        table = self.tables.pop(table_id, None)
        if table is not None:
            await self._forget(table)

    async def _forget(self, table: PitrTable) -> None:
        if not any(t.name == table.name for t in self.tables.values()):
            await self.storage.write(_release_job(table.name))
        await asyncio.to_thread(shutil.rmtree, table.directory, True)

    # --- snapshots ----------------------------------------------------------------------
    def _start_snapshot(self, table: PitrTable, snapshot: TableSnapshot) -> None:
        """Register snapshot n (pinned now) and write its file in the background."""
        vector = snapshot.cursors
        covered = max((hlc_physical_ms(hlc) for _seq, hlc in vector.values()), default=0)
        number = max((s.n for s in table.snapshots), default=0) + 1
        info = SnapshotInfo(number, {o: seq for o, (seq, _hlc) in vector.items()}, covered,
                            self.now_ms())
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
        self._tasks.spawn(self._write_snapshot(table, info, snapshot, header),
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
            return
        info.complete = True
        await asyncio.to_thread(self._save, table)
        log.info("PITR snapshot %d of %s written", info.n, table.name)

    # --- the background loop ------------------------------------------------------------
    async def run(self) -> None:
        """Reconcile with the storage once, then every ROUND_INTERVAL_S: drop the PITR of
        deleted tables, take due snapshots, apply the window."""
        await self._reconcile()
        while True:
            try:
                await self._drop_gone_tables()
                self._due_snapshots()
                await self._retention()
            except asyncio.CancelledError:
                raise
            except Exception:  # a disk or storage fault: logged, the next round retries
                log.exception("point-in-time recovery round failed")
            await asyncio.sleep(ROUND_INTERVAL_S)

    async def stop(self) -> None:
        await self._tasks.cancel_all()

    async def _reconcile(self) -> None:
        changes = self.storage.snapshot_changes()
        kept = dict(changes.kept_tables)
        changes.close()
        wanted = {t.name for t in self.tables.values()}
        for name in sorted(set(kept) - wanted):
            log.warning("releasing the kept changes of %s: it has no PITR state here", name)
            await self.storage.write(_release_job(name))
        for table in self.tables.values():
            if kept.get(table.name) != markers(table.name):
                log.warning("PITR of %s restarts its window: its changes were not kept "
                            "(the database was replaced)", table.name)
                await self.storage.write(_keep_job(table.name))
                table.snapshots = []
                table.enabled_ms = self.now_ms()

    async def _drop_gone_tables(self) -> None:
        for table_id, table in list(self.tables.items()):
            if self.table_id_of(table.name) != table_id and not table.pins:
                log.info("PITR of %s ends: the table was deleted", table.name)
                self.tables.pop(table_id, None)
                await self._forget(table)

    def _due_snapshots(self) -> None:
        now = self.now_ms()
        for table in self.tables.values():
            newest = table.snapshots[-1] if table.snapshots else None
            if newest is None or (newest.complete
                                  and now - newest.taken_ms >= self.snapshot_interval_ms):
                snapshot = self.storage.snapshot_table(table.name)
                if snapshot is not None:
                    self._start_snapshot(table, snapshot)

    async def _retention(self) -> None:
        """Drop snapshots and kept records no restore inside the window can need."""
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
            await asyncio.to_thread(self._save, table)
            for info in old:
                await asyncio.to_thread(_remove, table.snapshot_path(info))
            for origin, through in base.cursors.items():
                for _job in range(MAX_PURGE_JOBS):
                    gone = await self.storage.write(_purge_job(table.name, origin, through))
                    if gone < PURGE_LIMIT:
                        break

    # --- restoring ----------------------------------------------------------------------
    def restore_source(self, table_id: str, until_ms: int
                       ) -> tuple[PitrTable, dict[str, Any], Callable[[], Iterator[SnapshotRow]],
                                  Callable[[], Iterator[ArchivedRecord]], ChangesSnapshot]:
        """What replay.replay needs to rebuild the table as of `until_ms`: the snapshot's
        header and two re-openable streams, the second read through one pinned view of the
        changelog and kept log (returned too, for the caller to close once replayed: it
        holds back WAL checkpoints). The table's files are kept until `release`."""
        table = self.tables.get(table_id)
        if table is None:
            raise PointInTimeRecoveryUnavailable(
                "Point in time recovery has not yet been enabled for this source table")
        earliest = self.earliest_ms(table)
        latest = self.now_ms()
        if earliest is None or not earliest <= until_ms <= latest:
            raise InvalidRestoreTime(
                "Invalid restore time specified: RestoreDateTime must be between "
                f"EarliestRestorableDateTime and LatestRestorableDateTime ({_seconds(earliest)} "
                f"to {latest / 1000:.3f}); it was {until_ms / 1000:.3f}")
        info = max((s for s in table.snapshots if s.complete and s.covered_ms <= until_ms),
                   key=lambda s: s.n)
        path = table.snapshot_path(info)
        with open(path, "rb") as source:
            header = BackupReader(source, path).header
        header["cursors"] = info.cursors
        changes = self.storage.snapshot_changes()
        table.pins += 1
        name, needles = table.name, markers(table.name)

        def snapshot() -> Iterator[SnapshotRow]:
            with open(path, "rb") as source:
                yield from BackupReader(source, path).rows()

        def records() -> Iterator[ArchivedRecord]:
            for origin in sorted(set(changes.cursors) | set(info.cursors)):
                for kept in (True, False):  # what the purge moved, then what it left
                    start = info.cursors.get(origin, 0)
                    while True:
                        page = (changes.kept(name, origin, start, RECORD_PAGE) if kept
                                else changes.changes(origin, start, RECORD_PAGE))
                        for seq, hlc, body in page:
                            if needles[0] in body or needles[1] in body:
                                yield origin, seq, hlc, body
                        if len(page) < RECORD_PAGE:
                            break
                        start = page[-1][0]

        return table, header, snapshot, records, changes

    def release(self, table: PitrTable) -> None:
        """A restore is done with the table's files."""
        table.pins = max(0, table.pins - 1)

    def status(self) -> dict[str, Any]:
        return {"tables": sorted(t.name for t in self.tables.values()),
                "snapshots": sum(len(t.snapshots) for t in self.tables.values())}


def _keep_job(name: str) -> WriteJob:
    def job(txn: WriteTxn) -> None:
        txn.keep_changes(name, markers(name))
    return job


def _release_job(name: str) -> WriteJob:
    def job(txn: WriteTxn) -> None:
        txn.release_changes(name)
    return job


def _purge_job(name: str, origin: str, through: int) -> WriteJob:
    def job(txn: WriteTxn) -> int:
        return txn.purge_kept_changes(name, origin, through, PURGE_LIMIT)
    return job


def _seconds(ms: int | None) -> str:
    return f"{ms / 1000:.3f}" if ms is not None else "(no snapshot yet)"


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


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
                writer.rows(page)
                if len(page) < SNAPSHOT_PAGE_ROWS:
                    break
                after = page[-1][:3]
        footer = writer.finish()
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    fsync_directory(os.path.dirname(path))
    return footer
