"""Access keys: the records a request is signed with, and how they are stored.

Theory of operation
- An access key is cluster data: an id (public, like an AWS access key id), a secret
  (shared between the client and the cluster, used only as HMAC key material), a role
  (`admin`, `read-write`, `read-only`; see `atoll.auth.permissions` for what each may
  call), an optional list of tables it is limited to, the time it was created, and the
  time it was revoked if it was. A key issued as a session key also has a session token
  (sent by the client as `X-Amz-Security-Token`) and an expiry.
- Ids and secrets come from the operating system's CSPRNG (`secrets.token_bytes`,
  injectable so tests are deterministic). Ids look like AWS's: 20 upper-case base32
  characters, prefixed `AKAT` (a long-term Atoll key) or `ASAT` (a session key), so
  secret scanners and people recognise them; secrets are 40 base64 characters (30
  random bytes, 240 bits), the same alphabet and length as AWS secret keys, so every
  SDK and credentials file accepts them.
- A secret is wrapped in `Secret`, whose repr and str are masked: a key record can be
  logged, put in an exception or printed by a debugger without the secret in clear.
  Only `reveal()` returns it, and only the signer and the sealer call that.
- Keys are replicated to every region through the changelog like a table, and the
  changelog, snapshots and conflict log are readable by anyone who holds a node's data
  files. So the stored form (`seal_key`) never carries a secret in clear: the secret and
  the session token are encrypted with AES-256-GCM under the cluster data key (32
  random bytes made by `atoll certs init`, present on every node). Each sealing uses a
  fresh random 96-bit nonce. The associated data binds the ciphertext to the key's
  immutable fields (id, role, table list, creation and expiry time) and to its purpose
  (secret or token): a sealed secret copied into a record of another id or a stronger
  role, or a token swapped into the secret's place, fails to open instead of granting
  anything. `revoked_ms` is deliberately outside the associated data: revoking must
  stay a one-field change any region can make and replicate; it only ever takes
  rights away (a record merge must keep a revocation: once revoked, always revoked).
- A stored record names the data key it was sealed under by a short fingerprint, so a
  node holding another cluster's data key reports that plainly instead of "tampered".

Pure: no I/O, no clock (times are arguments, in ms since the epoch), no module-level
randomness.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from atoll.auth.errors import SealedRecordError

ROLE_ADMIN = "admin"
ROLE_READ_WRITE = "read-write"
ROLE_READ_ONLY = "read-only"
ROLES = (ROLE_ADMIN, ROLE_READ_WRITE, ROLE_READ_ONLY)

KEY_ID_PREFIX = "AKAT"
SESSION_KEY_ID_PREFIX = "ASAT"
KEY_ID_CHARS = 20
SECRET_CHARS = 40
SESSION_TOKEN_BYTES = 96
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
MAX_TABLES_PER_KEY = 256
MAX_TABLE_NAME_CHARS = 255
RECORD_VERSION = 1

RandomBytes = Callable[[int], bytes]


class Secret:
    """A string that never shows itself: repr/str are masked, equality is constant-time."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode("utf-8"), other._value.encode("utf-8"))

    def __hash__(self) -> int:
        return hash(self._value)

    def __copy__(self) -> Secret:
        return self  # immutable; and copying must not need the value spelled out

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self


@dataclass(frozen=True, slots=True)
class AccessKey:
    """One access key. `tables` None means every table; times are ms since the epoch."""

    key_id: str
    role: str
    tables: frozenset[str] | None
    created_ms: int
    secret: Secret
    revoked_ms: int | None = None
    session_token: Secret | None = None
    expires_ms: int | None = None

    def __post_init__(self) -> None:
        problems = key_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None

    def expired(self, now_ms: int) -> bool:
        return self.expires_ms is not None and now_ms >= self.expires_ms

    def may_see(self, table: str) -> bool:
        """Whether a table-limited key may see `table` (for filtering ListTables)."""
        return self.tables is None or table in self.tables

    def revoke(self, now_ms: int) -> AccessKey:
        """This key revoked at `now_ms` (an earlier revocation stands)."""
        if self.revoked_ms is not None and self.revoked_ms <= now_ms:
            return self
        return replace(self, revoked_ms=now_ms)


def key_problems(key: AccessKey) -> list[str]:
    """Why `key` is not a valid record (empty when it is)."""
    problems = []
    if not isinstance(key.key_id, str) or not 16 <= len(key.key_id) <= 128 \
            or not key.key_id.isascii() or not key.key_id.isalnum() \
            or key.key_id.upper() != key.key_id:
        problems.append("key id must be 16-128 upper-case letters and digits")
    if key.role not in ROLES:
        problems.append(f"role must be one of {', '.join(ROLES)}, got {key.role!r}")
    if key.tables is not None:
        if key.role == ROLE_ADMIN:
            problems.append("an admin key cannot be limited to tables (it manages keys)")
        if not key.tables or len(key.tables) > MAX_TABLES_PER_KEY:
            problems.append(f"a table list holds 1 to {MAX_TABLES_PER_KEY} tables")
        for table in key.tables:
            if not isinstance(table, str) or not 1 <= len(table) <= MAX_TABLE_NAME_CHARS:
                problems.append(f"bad table name {table!r}")
    if not isinstance(key.secret, Secret) or not key.secret.reveal():
        problems.append("a key needs a secret")
    if (key.session_token is None) != (key.expires_ms is None):
        problems.append("a session key has both a token and an expiry; a long-term key neither")
    for name, value in (("created_ms", key.created_ms), ("revoked_ms", key.revoked_ms),
                        ("expires_ms", key.expires_ms)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            problems.append(f"{name} must be a non-negative integer")
    return problems


def create_key(role: str, now_ms: int, tables: Iterable[str] | None = None,
               session_expires_ms: int | None = None,
               random_bytes: RandomBytes = secrets.token_bytes) -> AccessKey:
    """A new key. With `session_expires_ms` it is a session key: an `ASAT` id, a session
    token the client must send, and an expiry."""
    session = session_expires_ms is not None
    prefix = SESSION_KEY_ID_PREFIX if session else KEY_ID_PREFIX
    id_chars = KEY_ID_CHARS - len(prefix)
    key_id = prefix + base64.b32encode(random_bytes(10)).decode("ascii")[:id_chars]
    secret = Secret(base64.b64encode(random_bytes(30)).decode("ascii"))
    token = Secret(base64.b64encode(random_bytes(SESSION_TOKEN_BYTES)).decode("ascii")) \
        if session else None
    return AccessKey(key_id, role, None if tables is None else frozenset(tables), now_ms,
                     secret, session_token=token, expires_ms=session_expires_ms)


def data_key_id(data_key: bytes) -> str:
    """A short public fingerprint of a cluster data key (never the key itself)."""
    return hashlib.sha256(b"atoll-data-key-id\0" + data_key).hexdigest()[:16]


def _associated_data(key_id: str, role: str, tables: list[str] | None, created_ms: int,
                     expires_ms: int | None, purpose: str) -> bytes:
    fields = [RECORD_VERSION, purpose, key_id, role, tables, created_ms, expires_ms]
    return b"atoll-access-key\0" + orjson.dumps(fields)


def _check_data_key(data_key: bytes) -> None:
    if not isinstance(data_key, bytes) or len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"a cluster data key is {DATA_KEY_BYTES} bytes")


def seal_key(key: AccessKey, data_key: bytes,
             random_bytes: RandomBytes = secrets.token_bytes) -> dict[str, object]:
    """The stored and replicated form of `key`: plain JSON values, secrets encrypted."""
    _check_data_key(data_key)
    tables = None if key.tables is None else sorted(key.tables)
    aead = AESGCM(data_key)

    def seal(value: Secret, purpose: str) -> str:
        nonce = random_bytes(NONCE_BYTES)
        aad = _associated_data(key.key_id, key.role, tables, key.created_ms, key.expires_ms,
                               purpose)
        sealed = aead.encrypt(nonce, value.reveal().encode("utf-8"), aad)
        return base64.b64encode(nonce + sealed).decode("ascii")

    return {"version": RECORD_VERSION, "key_id": key.key_id, "role": key.role,
            "tables": tables, "created_ms": key.created_ms, "revoked_ms": key.revoked_ms,
            "expires_ms": key.expires_ms, "data_key_id": data_key_id(data_key),
            "secret": seal(key.secret, "secret"),
            "session_token": None if key.session_token is None
            else seal(key.session_token, "session-token")}


def open_key(record: Mapping[str, object], data_key: bytes) -> AccessKey:
    """The key a stored record holds; SealedRecordError if it cannot be trusted."""
    _check_data_key(data_key)
    fields = _record_fields(record)
    key_id, role, tables, created_ms, revoked_ms, expires_ms = fields
    if record.get("data_key_id") != data_key_id(data_key):
        raise SealedRecordError(
            f"key {key_id} was sealed under data key {record.get('data_key_id')!r}; this "
            f"node's data key is {data_key_id(data_key)!r} (another cluster's data key?)")
    aead = AESGCM(data_key)

    def unseal(name: str, purpose: str) -> Secret:
        blob = record.get(name)
        try:
            raw = base64.b64decode(blob, validate=True) if isinstance(blob, str) else b""
        except ValueError:
            raw = b""
        if len(raw) <= NONCE_BYTES + 16:
            raise SealedRecordError(f"key {key_id}: {name} is not a sealed value")
        aad = _associated_data(key_id, role, tables, created_ms, expires_ms, purpose)
        try:
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except InvalidTag:
            raise SealedRecordError(
                f"key {key_id}: {name} does not open under this cluster's data key "
                "(the record was tampered with)") from None
        return Secret(plain.decode("utf-8"))

    secret = unseal("secret", "secret")
    token = None if record.get("session_token") is None else unseal("session_token",
                                                                    "session-token")
    try:
        return AccessKey(key_id, role, None if tables is None else frozenset(tables),
                         created_ms, secret, revoked_ms, token, expires_ms)
    except ValueError as problem:
        raise SealedRecordError(f"key {key_id}: {problem}") from None


def _record_fields(record: Mapping[str, object]) -> tuple[
        str, str, list[str] | None, int, int | None, int | None]:
    if record.get("version") != RECORD_VERSION:
        raise SealedRecordError(f"unknown key record version {record.get('version')!r}")
    key_id, role, tables = record.get("key_id"), record.get("role"), record.get("tables")
    if not isinstance(key_id, str) or not isinstance(role, str):
        raise SealedRecordError("a key record needs a key_id and a role")
    if tables is not None and not (isinstance(tables, list)
                                   and all(isinstance(t, str) for t in tables)):
        raise SealedRecordError(f"key {key_id}: tables must be a list of names")
    times: list[int | None] = []
    for name in ("created_ms", "revoked_ms", "expires_ms"):
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise SealedRecordError(f"key {key_id}: {name} must be an integer")
        times.append(value)
    created_ms, revoked_ms, expires_ms = times
    if created_ms is None:
        raise SealedRecordError(f"key {key_id}: created_ms is missing")
    return key_id, role, tables, created_ms, revoked_ms, expires_ms
