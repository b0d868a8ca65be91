"""BackupService: what the engine's backup and PITR operations ask of the node.

Theory of operation: the engine's handlers (atoll.engine.backups, atoll.engine.pitr)
validate requests, pin table snapshots and describe answers; this service owns what
outlives a request — the backup files and their catalog (store.py), point-in-time
recovery (pitr.py) and the background tasks that write them — and runs the blocking
file work on threads. Backups and PITR are region data: see store.py and pitr.py.

A backup is written from its snapshot after CreateBackup answered (CREATING, then
AVAILABLE). A restore verifies the whole backup file (every record's CRC32 and the
file's SHA-256) before it creates anything, and reads it again, verifying again, while
it loads. SYSTEM backups (made when a table with PITR is deleted) expire after
SYSTEM_BACKUP_DAYS and are deleted by a sweep.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from atoll.backup.format import BackupReader, verify_file
from atoll.backup.pitr import PointInTimeRecovery, write_snapshot_file
from atoll.backup.store import (
    AVAILABLE,
    CREATING,
    DELETED,
    BackupEntry,
    BackupStore,
    backup_arn,
    backup_id,
)
from atoll.errors import BackupInUse
from atoll.storage.protocol import Storage, TableSnapshot
from atoll.tasks import TaskSet

log = logging.getLogger(__name__)

SYSTEM_BACKUP_DAYS = 35
EXPIRY_SWEEP_S = 60.0


class BackupService:
    def __init__(self, directory: str, storage: Storage, region: str, account: str,
                 now_ms: Callable[[], int], table_id_of: Callable[[str], str | None],
                 pitr_window_cap_s: float | None = None,
                 pitr_snapshot_interval_s: float = 86_400.0) -> None:
        self.directory = directory
        self.region = region
        self.account = account
        self.now_ms = now_ms
        self.store = BackupStore(directory, region, account)
        self.pitr = PointInTimeRecovery(directory, storage, now_ms, table_id_of,
                                        pitr_window_cap_s, pitr_snapshot_interval_s)
        self._tasks = TaskSet(log)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self.spawn(self.pitr.run(), "pitr")
        self.spawn(self._expire_loop(), "backup expiry")

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        await self.pitr.stop()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run background work owned by the service (cancelled at `stop`), logging a
        failure."""
        return self._tasks.spawn(coro, name)

    def status(self) -> dict[str, Any]:
        entries = self.store.entries()
        return {"directory": self.directory, "backups": len(entries),
                "creating": sum(1 for e in entries if e.status == CREATING),
                "pitr": self.pitr.status()}

    # --- on-demand backups ----------------------------------------------------------------
    def begin_backup(self, snapshot: TableSnapshot, table_name: str, backup_name: str,
                     kind: str, source: dict[str, Any], features: dict[str, Any],
                     header: dict[str, Any]) -> BackupEntry:
        """Register a CREATING backup of `snapshot` (taken for this request) and write it
        in the background; the snapshot is closed once written."""
        now = self.now_ms()
        ident = backup_id(now)
        details: dict[str, Any] = {
            "BackupArn": backup_arn(self.region, self.account, table_name, ident),
            "BackupName": backup_name, "BackupStatus": CREATING, "BackupType": kind,
            "BackupCreationDateTime": now / 1000}
        if kind == "SYSTEM":
            details["BackupExpiryDateTime"] = now / 1000 + SYSTEM_BACKUP_DAYS * 86_400
        entry = BackupEntry(ident, details["BackupArn"], details, source, features)
        self.store.register(entry)
        self.spawn(self._write(entry, snapshot, {**header, "created_ms": now}),
                   f"backup {entry.arn}")
        return entry

    async def _write(self, entry: BackupEntry, snapshot: TableSnapshot,
                     header: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self.store.save, entry)
            footer = await asyncio.to_thread(write_snapshot_file, snapshot,
                                             self.store.data_path(entry), header, False)
            entry.details["BackupSizeBytes"] = footer["size_bytes"]
            entry.details["BackupStatus"] = AVAILABLE
            await asyncio.to_thread(self.store.save, entry)
            log.info("backup %s written: %d items, %d bytes", entry.arn, footer["items"],
                     footer["size_bytes"])
        except BaseException:
            self.store.forget(entry)
            await asyncio.shield(asyncio.to_thread(self.store.remove, entry))
            raise
        finally:
            snapshot.close()

    def get(self, arn: str) -> BackupEntry:
        return self.store.get(arn)

    def entries(self) -> list[BackupEntry]:
        return self.store.entries()

    async def delete(self, arn: str) -> BackupEntry:
        entry = self.store.get(arn)
        if entry.status == CREATING:
            raise BackupInUse(f"Backup is being created: {arn}")
        if entry.restores:
            raise BackupInUse(f"Backup is being restored to a table: {arn}")
        self.store.forget(entry)
        await asyncio.to_thread(self.store.remove, entry)
        entry.details["BackupStatus"] = DELETED
        return entry

    async def open_for_restore(self, arn: str) -> tuple[BackupEntry, dict[str, Any]]:
        """The backup and its header, its whole file verified first; `release` after."""
        entry = self.store.get(arn)
        if entry.status != AVAILABLE:
            raise BackupInUse(f"Backup is being created: {arn}")
        entry.restores += 1
        try:
            header, _footer = await asyncio.to_thread(verify_file, self.store.data_path(entry))
        except BaseException:
            entry.restores -= 1
            raise
        return entry, header

    def backup_items(self, entry: BackupEntry) -> Callable[[], Iterator[bytes]]:
        """A fresh pass over the backup's items each call (verified as they are read)."""
        path = self.store.data_path(entry)

        def items() -> Iterator[bytes]:
            with open(path, "rb") as source:
                for row in BackupReader(source, path).rows():
                    if row[5] is not None:
                        yield row[5]
        return items

    def release(self, entry: BackupEntry) -> None:
        entry.restores = max(0, entry.restores - 1)

    async def _expire_loop(self) -> None:
        while True:
            now_s = self.now_ms() / 1000
            for entry in self.store.entries():
                expiry = entry.details.get("BackupExpiryDateTime")
                if expiry is not None and expiry <= now_s and not entry.restores:
                    try:
                        await self.delete(entry.arn)
                        log.info("system backup %s expired and was deleted", entry.arn)
                    except Exception as exc:
                        log.warning("could not delete expired backup %s: %s", entry.arn, exc)
            await asyncio.sleep(EXPIRY_SWEEP_S)


def default_directory(data_dir: str) -> str:
    return os.path.join(data_dir, "backups")
