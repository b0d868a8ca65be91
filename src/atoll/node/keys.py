"""Access keys as cluster data: stored in an internal table, cached for the verifier.

Theory of operation
- Keys live in the internal table `atoll:keys` (engine/internal.py), one item per key,
  written through the engine's ordinary write path (PutItem, UpdateItem handlers): every
  write logs one change, so a key created or revoked in any region reaches every other
  region like any item, and anti-entropy and snapshot rebuilds carry keys too. An item
  holds the key's sealed record (atoll.auth.keys.seal_key): the secret and any session
  token encrypted under the cluster data key, never in clear in the table, the
  changelog, a snapshot or the conflict log.
- Only two writes ever touch a key's item: its creation (a fresh random id, refused if
  the id exists) and its revocation (`revoked_ms` set if absent, never cleared). So no
  write can carry an unrevoked copy of a revoked key, and last-writer-wins keeps every
  revocation. This node also remembers every key it has seen revoked: a record that
  came back unrevoked would still be refused here.
- The verifier asks `lookup(key_id)` on every signed request, synchronously. A cache
  (atoll.auth.keycache, compiled with the request path) answers it with one dict lookup
  while nothing was committed since the entry was checked. Every commit of this node's
  storage — a local write or a batch of changes applied from a peer — moves the cache's
  epoch (a storage commit listener); the next lookup of an entry from an older epoch
  re-reads its item here (one point read), and re-opens the record only if the stored
  bytes changed. So a revocation is in force
  here from the first request after the commit that brought it, in every region.
  Unknown ids are cached too (bounded, MAX_CACHED entries), so a flood of requests
  naming one unknown id costs dict lookups, and one naming random ids a point read each.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from atoll.auth.certs import encode_data_key, read_data_key
from atoll.auth.errors import SealedRecordError
from atoll.auth.keycache import CacheEntry, KeyCache
from atoll.auth.keys import (
    DATA_KEY_BYTES,
    ROLE_ADMIN,
    AccessKey,
    create_key,
    open_key,
    seal_key,
)
from atoll.engine import Engine
from atoll.engine.internal import KEYS_TABLE, ensure_internal_table, keys_table_definition
from atoll.engine.items import put_item, update_item
from atoll.engine.reads import scan
from atoll.engine.tabledef import TableDef
from atoll.errors import ConditionalCheckFailed, ValidationError

log = logging.getLogger(__name__)

MAX_CACHED = 4096
MAX_KEYS_LISTED = 100_000
CREDENTIALS_PROFILE = "atoll"

_TIME_FIELDS = ("created_ms", "revoked_ms", "expires_ms", "version")
_TEXT_FIELDS = ("role", "data_key_id", "secret", "session_token")


def record_item(record: dict[str, Any]) -> dict[str, Any]:
    """A sealed key record as a DynamoDB item (absent values left out)."""
    item: dict[str, Any] = {"key_id": {"S": record["key_id"]}}
    for name in _TIME_FIELDS:
        if record.get(name) is not None:
            item[name] = {"N": str(record[name])}
    for name in _TEXT_FIELDS:
        if record.get(name) is not None:
            item[name] = {"S": record[name]}
    if record.get("tables") is not None:
        item["tables"] = {"L": [{"S": t} for t in record["tables"]]}
    return item


def item_record(item: dict[str, Any]) -> dict[str, Any]:
    """The sealed record an item holds (SealedRecordError if it is not one)."""
    try:
        record: dict[str, Any] = {"key_id": item["key_id"]["S"], "tables": None}
        for name in _TIME_FIELDS:
            record[name] = int(item[name]["N"]) if name in item else None
        for name in _TEXT_FIELDS:
            record[name] = item[name]["S"] if name in item else None
        if "tables" in item:
            record["tables"] = [t["S"] for t in item["tables"]["L"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise SealedRecordError(f"not a key record: {exc!r}") from None
    return record


def public_fields(key: AccessKey) -> dict[str, Any]:
    """What may be shown of a key: everything but its secret and token."""
    return {"key_id": key.key_id, "role": key.role,
            "tables": None if key.tables is None else sorted(key.tables),
            "created_ms": key.created_ms, "revoked_ms": key.revoked_ms,
            "expires_ms": key.expires_ms}


class KeyStore:
    """This node's view of the cluster's access keys."""

    def __init__(self, engine: Engine, data_key: bytes | None,
                 now_ms: Callable[[], int] | None = None) -> None:
        """`data_key` None: a node without the cluster data key (auth off) keeps the
        table, so that keys replicate through it, but can use and make no key."""
        self.engine = engine
        self.data_key = data_key
        self.now_ms = now_ms or engine.now_ms
        self.table: TableDef | None = None
        self.cache = KeyCache(self._reload, MAX_CACHED)
        self.lookup = self.cache.lookup  # the verifier's (see the module docstring)
        self._revoked: dict[str, AccessKey] = {}  # every key seen revoked: stays so
        self._unreadable: set[bytes] = set()  # records already logged as unreadable
        engine.storage.commit_listeners.append(self.cache.committed)

    async def start(self) -> None:
        """Create the keys table here if this node has none yet (before serving)."""
        self.table = await ensure_internal_table(self.engine.context, keys_table_definition())

    # --- the verifier's lookup: what the cache asks after a commit -----------------------
    def _reload(self, key_id: str, entry: CacheEntry | None) -> AccessKey | None:
        raw = self._stored(key_id)
        if entry is not None and entry[1] == raw:
            key = entry[2]
        else:
            key = self._open(raw) if raw is not None else None
        if key is not None and key.key_id != key_id:
            key = None  # an item whose record names another key: never this one
        revoked = self._revoked.get(key_id)
        if revoked is not None:
            key = revoked
        elif key is not None and key.revoked:
            self._revoked[key_id] = key
        self.cache.put(key_id, raw, key)
        return key

    def _stored(self, key_id: str) -> bytes | None:
        table = self.table
        if table is None or not 16 <= len(key_id) <= 128 or not key_id.isascii() \
                or not key_id.isalnum():
            return None  # no key can have such an id (atoll.auth.keys.key_problems)
        row = self.engine.storage.get_item(table.tid, *table.encode_key({"key_id": {"S": key_id}}))
        return None if row is None else row[0]

    def _open(self, raw: bytes) -> AccessKey | None:
        if self.data_key is None:
            return None
        try:
            return open_key(item_record(orjson.loads(raw)), self.data_key)
        except (SealedRecordError, orjson.JSONDecodeError) as exc:
            if raw not in self._unreadable and len(self._unreadable) < MAX_CACHED:
                self._unreadable.add(raw)
                log.error("a stored access key cannot be used: %s", exc)
            return None

    # --- changes (admin actions) ---------------------------------------------------------
    async def create(self, role: str, tables: list[str] | None = None,
                     session_seconds: int | None = None) -> AccessKey:
        """A new key, stored (and so replicated). ValueError for a bad role or tables."""
        now = self.now_ms()
        expires = now + session_seconds * 1000 if session_seconds is not None else None
        key = create_key(role, now, tables, session_expires_ms=expires)
        await self._store(key)
        self.cache.forget(key.key_id)
        log.warning("created access key %s (role %s%s)", key.key_id, key.role,
                    f", tables {sorted(key.tables)}" if key.tables is not None else "")
        return key

    async def _store(self, key: AccessKey) -> None:
        if self.data_key is None:
            raise ValueError("this node has no cluster data key to seal a key with")
        await put_item(self.engine.context, {
            "TableName": KEYS_TABLE, "Item": record_item(seal_key(key, self.data_key)),
            "ConditionExpression": "attribute_not_exists(key_id)"})

    async def revoke(self, key_id: str) -> AccessKey | None:
        """Revoke a key (an earlier revocation stands); None if no such key."""
        if self.lookup(key_id) is None and key_id not in self._revoked:
            return None
        try:
            await update_item(self.engine.context, {
                "TableName": KEYS_TABLE, "Key": {"key_id": {"S": key_id}},
                "UpdateExpression": "SET revoked_ms = if_not_exists(revoked_ms, :now)",
                "ConditionExpression": "attribute_exists(key_id)",
                "ExpressionAttributeValues": {":now": {"N": str(self.now_ms())}}})
        except ConditionalCheckFailed:
            return None
        self.cache.forget(key_id)
        key = self.lookup(key_id)
        log.warning("revoked access key %s", key_id)
        return key

    async def all_keys(self) -> list[AccessKey]:
        """Every key this region holds (unreadable records left out, and logged)."""
        keys: list[AccessKey] = []
        request: dict[str, Any] = {"TableName": KEYS_TABLE, "ConsistentRead": True}
        while len(keys) < MAX_KEYS_LISTED:
            answer = await scan(self.engine.context, request)
            # (a page with no filter or projection is answered as the stored JSON bytes)
            page: dict[str, Any] = orjson.loads(answer) if type(answer) is bytes else answer
            for item in orjson.loads(orjson.dumps(page["Items"])):
                key = self._open(orjson.dumps(item))
                if key is not None:
                    keys.append(self._revoked.get(key.key_id, key))
            if "LastEvaluatedKey" not in page:
                break
            request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}
        return sorted(keys, key=lambda k: (k.created_ms, k.key_id))

    async def bootstrap_admin(self, path: Path, cluster_id: str) -> AccessKey | None:
        """Make an admin key and write it to `path` as an AWS shared-credentials profile,
        unless `path` exists (then the key it names was made before: nothing is done)."""
        if path.exists():
            return None
        key = create_key(ROLE_ADMIN, self.now_ms())
        write_credentials(path, key, f"admin key of Atoll cluster {cluster_id}")
        try:
            await self._store(key)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        log.warning("created admin key %s; credentials in %s (profile %s)", key.key_id, path,
                    CREDENTIALS_PROFILE)
        return key


def write_credentials(path: Path, key: AccessKey, comment: str,
                      profile: str = CREDENTIALS_PROFILE) -> None:
    """`key` as an AWS shared-credentials file (mode 0600, never over an existing one)."""
    lines = [f"# {comment}", f"[{profile}]", f"aws_access_key_id = {key.key_id}",
             f"aws_secret_access_key = {key.secret.reveal()}"]
    if key.session_token is not None:
        lines.append(f"aws_session_token = {key.session_token.reveal()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_data_key_or_make(path: Path) -> bytes:
    """The data key in `path`, made (32 random bytes, mode 0600) if the file is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return read_data_key(path)
        with os.fdopen(fd, "wb") as f:
            f.write(encode_data_key(os.urandom(DATA_KEY_BYTES)))
            f.flush()
            os.fsync(f.fileno())
    try:
        return read_data_key(path)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
