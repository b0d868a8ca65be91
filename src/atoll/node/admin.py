"""The node's own pages and actions on the client port (`/health`, `/_atoll/...`).

Theory of operation: each page or action names what it needs, as an `Access` of the
permission table (atoll.auth.permissions), and is answered only for a request signed
with a key that may do it (api/access.py: the same verifier, modes and refusal log as
DynamoDB requests; refusals get DynamoDB's error shapes):

| path                        | method | needs                                        |
|-----------------------------|--------|----------------------------------------------|
| /health, /                  | GET    | nothing: liveness only (/ echoes the Host)   |
| /_atoll/status              | GET    | any key                                      |
| /_atoll/conflicts[/after/N] | GET    | any key; only tables the key may read shown  |
| /_atoll/topology            | GET    | any key                                      |
| /_atoll/topology            | POST   | admin (atoll:UpdateTopology)                 |
| /_atoll/keys                | GET    | admin (atoll:ListKeys)                       |
| /_atoll/keys                | POST   | admin (atoll:CreateKey)                      |
| /_atoll/keys/revoke         | POST   | admin (atoll:RevokeKey)                      |
| /_atoll/clock               | POST   | admin (atoll:SetClock; `--settable-clock`)   |
| /_atoll/backup              | POST   | admin (atoll:CopyDatabase)                   |
| /_atoll/verify/runs         | POST   | admin (atoll:StartVerify)                    |
| /_atoll/verify/runs/<id>    | GET    | admin (atoll:DescribeVerify)                 |
| /_atoll/repairs[/after/N]   | GET    | admin (atoll:ReadRepairs)                    |

`/health` is never refused: a request signed by a key with status access (or any,
auth off) gets what is wrong as well (rows failing their checksum, a clock refusing
writes), any other liveness only, not counted as a refusal.
The database copy, verify runs and the repairs log are admin's: a copy holds every
table and key secret (sealed), a verify run loads every region, and a repair record
holds item images of any table.

The peer port answers other regions only (node.py, atoll.node.peers): of these pages,
the topology and the status (which `atoll restore` reads as the region it restores).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from atoll.api.access import AccessControl
from atoll.api.errors import error_response
from atoll.auth.errors import AuthError
from atoll.auth.keys import ROLES, AccessKey
from atoll.auth.permissions import (
    ADMIN,
    ATOLL_CREATE_KEY,
    ATOLL_DESCRIBE_STATUS,
    ATOLL_LIST_KEYS,
    ATOLL_READ_CONFLICTS,
    ATOLL_REVOKE_KEY,
    ATOLL_UPDATE_TOPOLOGY,
    READ,
    Access,
)
from atoll.engine.internal import is_internal
from atoll.errors import ServiceUnavailable
from atoll.http.wire import Request
from atoll.node.keys import KeyStore, public_fields
from atoll.storage import SqliteStorage, Storage
from atoll.storage.sqlite.filecopy import CopyRefused

JSON = b"application/json"
MAX_SESSION_SECONDS = 7 * 24 * 3600
ATOLL_DESCRIBE_TOPOLOGY = "atoll:DescribeTopology"

STATUS = Access(ATOLL_DESCRIBE_STATUS, READ, (), False)
CONFLICTS = Access(ATOLL_READ_CONFLICTS, READ, (), False)
TOPOLOGY_READ = Access(ATOLL_DESCRIBE_TOPOLOGY, READ, (), False)
TOPOLOGY_WRITE = Access(ATOLL_UPDATE_TOPOLOGY, ADMIN, (), False)
LIST_KEYS = Access(ATOLL_LIST_KEYS, ADMIN, (), False)
CREATE_KEY = Access(ATOLL_CREATE_KEY, ADMIN, (), False)
REVOKE_KEY = Access(ATOLL_REVOKE_KEY, ADMIN, (), False)
SET_CLOCK = Access("atoll:SetClock", ADMIN, (), False)  # `serve --settable-clock` (tests)
COPY_DATABASE = Access("atoll:CopyDatabase", ADMIN, (), False)
START_VERIFY = Access("atoll:StartVerify", ADMIN, (), False)
READ_VERIFY = Access("atoll:DescribeVerify", ADMIN, (), False)
READ_REPAIRS = Access("atoll:ReadRepairs", ADMIN, (), False)

Answer = tuple[int, bytes]
KEYS_PATH = "/_atoll/keys"
STATUS_PATH = "/_atoll/status"
BACKUP_PATH = "/_atoll/backup"
VERIFY_RUNS_PATH = "/_atoll/verify/runs"  # POST: start `atoll verify`; GET <path>/<id>: see it
REPAIRS_PATH = "/_atoll/repairs"
# GET pages and what they need (and, by prefix, the paged logs: `page_access`)
PAGES = {STATUS_PATH: STATUS, "/_atoll/topology": TOPOLOGY_READ, KEYS_PATH: LIST_KEYS}
_PREFIXES = (("/_atoll/conflicts", CONFLICTS), (VERIFY_RUNS_PATH + "/", READ_VERIFY),
             (REPAIRS_PATH, READ_REPAIRS))


def page_access(path: str) -> Access | None:
    """What a GET of `path` needs; None: no such page."""
    needs = PAGES.get(path)
    if needs is not None:
        return needs
    for prefix, access in _PREFIXES:
        if path.startswith(prefix):
            return access
    return None


def signed(request: Request) -> bool:
    """Whether the request carries a signature (a header or a presigned URL's query)."""
    return b"X-Amz-Signature=" in request.url or any(
        name.lower() == b"authorization" for name, _value in request.headers)


def _message(status: int, message: str) -> Answer:
    return status, orjson.dumps({"message": message})


class Gate:
    """Authentication and authorization of one client-port request to a node page."""

    def __init__(self, access: AccessControl) -> None:
        self.access = access

    def check(self, request: Request, body: bytes, needs: Access,
              what: str) -> tuple[AccessKey | None, Answer | None]:
        """(the key, None) if the request may proceed, else (None, the refusal)."""
        try:
            key = self.access.authenticate(request.method, request.url, request.headers,
                                           body, what)
            self.access.allow(key, needs, what)
        except (AuthError, ServiceUnavailable) as error:
            return None, error_response(error)
        return key, None


def conflicts_for(key: AccessKey | None, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conflict records `key` may read: of tables it may see, never internal ones."""
    return [r for r in rows if not is_internal(str(r.get("table", "")))
            and (key is None or key.may_see(str(r.get("table", ""))))]


class KeyActions:
    """`/_atoll/keys`: list, create, revoke (admin only; see the module docstring)."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    async def list(self) -> Answer:
        found = await self.keys.all_keys()
        return 200, orjson.dumps({"keys": [public_fields(k) for k in found]})

    async def create(self, body: bytes) -> Answer:
        try:
            request = orjson.loads(body or b"{}")
            if not isinstance(request, dict):
                raise TypeError("a JSON object")
            role = request.get("role")
            tables = request.get("tables")
            seconds = request.get("session_seconds")
            if role not in ROLES:
                raise ValueError(f"role must be one of {', '.join(ROLES)}")
            if tables is not None and (not isinstance(tables, list)
                                       or not all(isinstance(t, str) for t in tables)):
                raise ValueError("tables must be a list of table names")
            if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)
                                        or not 1 <= seconds <= MAX_SESSION_SECONDS):
                raise ValueError(f"session_seconds must be 1..{MAX_SESSION_SECONDS}")
            if tables is not None and any(is_internal(t) for t in tables):
                raise ValueError("a key cannot name an internal table")
            key = await self.keys.create(role, tables, seconds)
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            return _message(400, f"bad key request: {exc}")
        answer = {**public_fields(key), "secret_access_key": key.secret.reveal()}
        if key.session_token is not None:
            answer["session_token"] = key.session_token.reveal()
        return 200, orjson.dumps(answer)

    async def revoke(self, body: bytes) -> Answer:
        try:
            request = orjson.loads(body or b"{}")
            key_id = request.get("key_id") if isinstance(request, dict) else None
        except orjson.JSONDecodeError:
            key_id = None
        if not isinstance(key_id, str):
            return _message(400, 'expected {"key_id": "..."}')
        key = await self.keys.revoke(key_id)
        if key is None:
            return _message(404, f"no key {key_id}")
        return 200, orjson.dumps(public_fields(key))


PostRoute = Callable[[bytes], Coroutine[Any, Any, Answer]]


async def copy_database(storage: Storage, body: bytes) -> Answer:
    """`atoll backup --endpoint`: a consistent copy of this node's whole database,
    written by the node to the path the body names (SQLite's online backup API)."""
    try:
        request = orjson.loads(body)
        path = request["path"]
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ValueError("path must be an absolute file path")
    except (ValueError, KeyError, TypeError) as exc:
        return _message(400, f"expected {{\"path\": \"/abs/file\"}}: {exc}")
    if not isinstance(storage, SqliteStorage):
        return _message(400, "this node's region is stored in PostgreSQL: back it up with "
                        "PostgreSQL's own tools")
    began = time.monotonic()
    try:
        size = await asyncio.to_thread(storage.copy_to, path)
    except (OSError, CopyRefused, sqlite3.Error) as exc:
        return _message(500, f"the copy failed: {exc}")
    return 200, orjson.dumps({"path": path, "size_bytes": size, "region": storage.region,
                              "seconds": round(time.monotonic() - began, 3)})
