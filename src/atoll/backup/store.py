"""BackupStore: a node's on-demand backups, as files under its backup directory.

Theory of operation
- Backups are region data, as in DynamoDB: a backup is taken by one region's node, lives
  in that node's backup directory and is listed, described, restored and deleted there
  (its ARN names that region). What a restore creates is an ordinary table, which
  replicates to every region. Nothing about a backup is replicated.
- Layout: `<dir>/tables/<id>.atb` holds the rows (atoll.backup.format) and
  `<id>.json` the backup's description. The id is `<creation ms, 14 digits>-<8 hex>`,
  as DynamoDB's backup ARNs end. Each metadata file is replaced atomically (written
  beside, fsynced, renamed, directory fsynced), and a data file is renamed into place
  only once it is complete and fsynced, so a crash leaves either the old state or the
  new one.
- A backup is CREATING from its request until its file is complete, then AVAILABLE.
  One found CREATING when the store opens was cut short by a crash: it is removed.
- The store's methods do file I/O and are meant to run off the event loop (the
  service calls them through `asyncio.to_thread`), except `entries`, `get` and
  `register`, which only read or change the in-memory index.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from atoll.errors import BackupNotFound
from atoll.files import fsync_directory, write_atomically

log = logging.getLogger(__name__)

CREATING, AVAILABLE, DELETED = "CREATING", "AVAILABLE", "DELETED"
_ARN_RE = re.compile(r"arn:aws:dynamodb:([^:]*):(\d{12}):table/([a-zA-Z0-9_.-]{3,255})"
                     r"/backup/(\d{14}-[0-9a-f]{8})\Z")


@dataclass
class BackupEntry:
    """One backup's description (what DescribeBackup answers) and where its file is."""

    backup_id: str
    arn: str
    details: dict[str, Any]  # BackupDetails
    source: dict[str, Any]  # SourceTableDetails
    features: dict[str, Any]  # SourceTableFeatureDetails
    restores: int = 0  # restores reading the file now (DeleteBackup waits for none)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.details["BackupStatus"])

    def description(self) -> dict[str, Any]:
        return {"BackupDetails": dict(self.details), "SourceTableDetails": dict(self.source),
                "SourceTableFeatureDetails": dict(self.features)}

    def summary(self) -> dict[str, Any]:
        summary = {"TableName": self.source["TableName"], "TableId": self.source["TableId"],
                   "TableArn": self.source["TableArn"]}
        summary.update({k: v for k, v in self.details.items()})
        return summary

    def to_json(self) -> dict[str, Any]:
        return {"id": self.backup_id, "arn": self.arn, "details": self.details,
                "source": self.source, "features": self.features}


def backup_id(now_ms: int) -> str:
    return f"{now_ms:014d}-{secrets.token_hex(4)}"


def backup_arn(region: str, account: str, table: str, ident: str) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}/backup/{ident}"


class BackupStore:
    def __init__(self, directory: str, region: str, account: str) -> None:
        self.directory = os.path.join(directory, "tables")
        self.region = region
        self.account = account
        os.makedirs(self.directory, exist_ok=True)
        self._entries: dict[str, BackupEntry] = {}  # by id
        self._load()

    # --- the index (any thread that owns the store; the service uses the loop's) ---------
    def entries(self) -> list[BackupEntry]:
        """Every backup, oldest first (by creation time, then ARN)."""
        return sorted(self._entries.values(),
                      key=lambda e: (e.details["BackupCreationDateTime"], e.arn))

    def get(self, arn: str) -> BackupEntry:
        match = _ARN_RE.match(arn)
        entry = self._entries.get(match.group(4)) if match else None
        if entry is None or entry.arn != arn:
            raise BackupNotFound(f"Backup not found: {arn}")
        return entry

    def register(self, entry: BackupEntry) -> None:
        self._entries[entry.backup_id] = entry

    def forget(self, entry: BackupEntry) -> None:
        self._entries.pop(entry.backup_id, None)

    # --- files (off the event loop) --------------------------------------------------------
    def data_path(self, entry: BackupEntry) -> str:
        return os.path.join(self.directory, entry.backup_id + ".atb")

    def partial_path(self, entry: BackupEntry) -> str:
        return os.path.join(self.directory, entry.backup_id + ".atb.partial")

    def _meta_path(self, ident: str) -> str:
        return os.path.join(self.directory, ident + ".json")

    def save(self, entry: BackupEntry) -> None:
        """Write the entry's metadata atomically."""
        write_atomically(self._meta_path(entry.backup_id), orjson.dumps(entry.to_json()))

    def publish(self, entry: BackupEntry) -> None:
        """The entry's partial file is complete and fsynced: move it into place."""
        os.replace(self.partial_path(entry), self.data_path(entry))
        fsync_directory(self.directory)

    def remove(self, entry: BackupEntry) -> None:
        """Delete the backup's files (metadata last: a crash between leaves a metadata
        file whose data file is gone, which `_load` drops)."""
        for path in (self.partial_path(entry), self.data_path(entry),
                     self._meta_path(entry.backup_id)):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        fsync_directory(self.directory)

    def _load(self) -> None:
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(self.directory, name)
            try:
                data = orjson.loads(open(path, "rb").read())
                entry = BackupEntry(data["id"], data["arn"], data["details"], data["source"],
                                    data["features"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("ignoring unreadable backup metadata %s: %s", path, exc)
                continue
            if entry.status != AVAILABLE or not os.path.exists(self.data_path(entry)):
                log.warning("removing backup %s: it was still %s when the node stopped",
                            entry.arn, entry.status)
                self.remove(entry)
                continue
            self._entries[entry.backup_id] = entry

