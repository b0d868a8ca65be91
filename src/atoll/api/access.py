"""Who may do what: the auth mode, request signatures, roles, and hidden tables.

Theory of operation
- Every DynamoDB request, and every `/_atoll/...` page or action on the client port, is
  checked in two steps. `authenticate` runs before the body is decoded: it verifies the
  request's AWS Signature Version 4 (atoll.auth.sigv4) over the method, the raw URL,
  every header as received and the body, and yields the access key that signed it.
  `authorize` runs once the body is decoded, and checks the key's role and table list
  against what the request touches (atoll.auth.permissions).
- The mode (`atoll serve --auth`) says what a failure does:
  `required` refuses the request with DynamoDB's error (api/errors.py maps each one);
  `warn` serves it anyway and counts what would have been refused (the migration path:
  turn it on, watch `/_atoll/status`, fix the clients, then require);
  `off` checks nothing (a local, DynamoDB-Local-like node).
- Refusals are counted by reason in `/_atoll/status` and logged with the key id (never
  a secret) and the reason — at most one line per reason every LOG_INTERVAL_S, with the
  count of those not logged, so a flood of bad requests cannot flood the log.
- The work a refused request costs is bounded by the verifier (a refusal by parsing
  costs no hash; the body is hashed only for a known key) and here by a fixed amount of
  bookkeeping: no allocation per refusal beyond the exception.
- A key unknown here is not always unknown to the cluster: keys are replicated data
  (atoll.node.keys), and a region that started empty or from an old backup, or that is
  being rebuilt from a peer's snapshot, may lack keys its peers hold. So while
  `keys_complete()` says this region has not caught up (the node asks its replicator;
  always true for a lone node), a request whose key is unknown is refused with
  ServiceUnavailable (HTTP 503, retryable: SDKs retry it, failover clients try another
  region) instead of UnrecognizedClientException, which no client retries. Before that
  answer a DynamoDB request waits for the keys (`authenticate(may_wait=True)` raises
  KeyNotHereYet, the api awaits `wait_for_key`; only when the node gave a `pause`): its
  signature is checked again every KEY_WAIT_POLL_S, for at most KEY_WAIT_S, and it is
  served as soon as its key has landed (a rebuild copies a peer's keys table within its
  first seconds), refused as soon as the region caught up without it. At most MAX_KEY_WAITERS requests wait at once; others get the
  503 at once, so requests naming made-up keys cannot pile up. An unknown key is never
  served, in any state (warn mode aside, which serves everything), and a revoked,
  expired or wrongly signed key is refused at once, as ever. Such a refusal is counted
  under its own reason.
- Internal tables (engine/internal.py, `atoll:` names) are hidden from every request,
  whatever the mode and the key: a request naming one is answered as if the table did
  not exist, and ListTables never lists one.

Time is read through the `now_ms` and `mono_s` given at construction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from atoll.auth.errors import (
    REASON_KEYS_INCOMPLETE,
    REASON_UNKNOWN_KEY,
    AccessDenied,
    AuthError,
    UnrecognizedClient,
)
from atoll.auth.keys import AccessKey
from atoll.auth.permissions import (
    PARTIQL,
    TABLE_MEMBERS,
    TABLES_BEYOND_MEMBERS,
    Access,
    authorize,
    may_whatever_the_tables,
    request_tables,
    required_access,
    table_from_arn,
)
from atoll.auth.sigv4 import SigV4Verifier
from atoll.engine.internal import PREFIX as INTERNAL_PREFIX
from atoll.engine.internal import is_internal
from atoll.errors import ResourceNotFound, ServiceUnavailable, ValidationError
from atoll.partiql.tokens import QUOTED, tokenize

log = logging.getLogger("atoll.auth")

OFF = "off"
WARN = "warn"
REQUIRED = "required"
MODES = (OFF, WARN, REQUIRED)
LOG_INTERVAL_S = 10.0
KEY_WAIT_S = 5.0  # a request whose key is unknown while this region catches up
KEY_WAIT_POLL_S = 0.05
MAX_KEY_WAITERS = 64
MAX_REASONS = 64  # distinct reasons counted (the verifier has fewer)


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _always_complete() -> bool:
    return True


class KeyNotHereYet(Exception):
    """`authenticate(may_wait=True)`: the key is unknown while this region's keys are
    incomplete; the caller awaits `wait_for_key`. Never answered to a client."""


class RefusalLog:
    """Refusals counted per reason; logged at most once per reason and interval."""

    def __init__(self, mono_s: Callable[[], float] = time.monotonic,
                 interval_s: float = LOG_INTERVAL_S) -> None:
        self.mono_s = mono_s
        self.interval_s = interval_s
        self.refused_total = 0  # refused (required) or would have been (warn)
        self.served_anyway = 0  # of those, served because the mode is warn
        self.by_reason: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def record(self, error: AuthError, what: str, served: bool) -> None:
        self.refused_total += 1
        if served:
            self.served_anyway += 1
        reason = error.reason if error.reason in self.by_reason \
            or len(self.by_reason) < MAX_REASONS else "other"
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        now = self.mono_s()
        last = self._last_logged.get(reason)
        if last is not None and now - last < self.interval_s:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            return
        self._last_logged[reason] = now
        unlogged = self._unlogged.pop(reason, 0)
        more = f" (and {unlogged} more for this reason since the last line)" if unlogged else ""
        log.warning("%s %s: %s, key %s: %s%s", "would refuse (auth warn)" if served else "refused",
                    what, reason, error.key_id or "-", error.message[:200], more)

    def summary(self) -> dict[str, Any]:
        return {"refused_total": self.refused_total, "served_anyway": self.served_anyway,
                "by_reason": dict(sorted(self.by_reason.items()))}


class AccessControl:
    """The mode, the verifier and the refusal log of one node's client port."""

    def __init__(self, mode: str, verifier: SigV4Verifier | None, region: str,
                 now_ms: Callable[[], int] = _wall_ms,
                 mono_s: Callable[[], float] = time.monotonic,
                 keys_complete: Callable[[], bool] = _always_complete,
                 pause: Callable[[float], Awaitable[None]] | None = None) -> None:
        """`keys_complete`: whether this region holds every key its peers hold (see the
        module docstring); the node points it at its replicator once it has one.
        `pause(seconds)`: how a request waits for its key (None: it does not wait)."""
        if mode not in MODES:
            raise ValueError(f"auth mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode != OFF and verifier is None:
            raise ValueError(f"auth mode {mode} needs a verifier")
        self.mode = mode
        self.enabled = mode != OFF
        self.verifier = verifier
        self.region = region
        self.now_ms = now_ms
        self.keys_complete = keys_complete
        self.pause = pause
        self.key_waiters = 0
        self.refusals = RefusalLog(mono_s)

    def authenticate(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]],
                     body: bytes, what: str, may_wait: bool = False) -> AccessKey | None:
        """The key that signed this request; None when auth is off, or (warn) when the
        signature does not verify. Raises the AuthError when the mode requires it, or
        ServiceUnavailable for a key unknown while this region's keys are incomplete —
        or, `may_wait`, KeyNotHereYet when the caller should `wait_for_key` instead."""
        if not self.enabled:
            return None
        assert self.verifier is not None
        try:
            return self.verifier.verify_wire(method, url, headers, body, self.now_ms())
        except AuthError as error:
            if may_wait and self._waits(error):
                raise KeyNotHereYet() from None
            self._refuse(error, what)
            return None

    async def wait_for_key(self, method: bytes, url: bytes,
                           headers: list[tuple[bytes, bytes]], body: bytes,
                           what: str) -> AccessKey | None:
        """`authenticate` again every KEY_WAIT_POLL_S, for at most KEY_WAIT_S, while the
        key is unknown and this region's keys incomplete (see the module docstring)."""
        assert self.pause is not None and self.verifier is not None
        self.key_waiters += 1
        try:
            for _ in range(int(KEY_WAIT_S / KEY_WAIT_POLL_S)):
                await self.pause(KEY_WAIT_POLL_S)
                try:
                    return self.verifier.verify_wire(method, url, headers, body,
                                                     self.now_ms())
                except AuthError as error:
                    if error.reason != REASON_UNKNOWN_KEY or self.keys_complete():
                        break
        finally:
            self.key_waiters -= 1
        return self.authenticate(method, url, headers, body, what)

    def _waits(self, error: AuthError) -> bool:
        """Whether a request refused with `error` waits for its key to land here."""
        return (self.pause is not None and self.mode == REQUIRED
                and self.key_waiters < MAX_KEY_WAITERS
                and error.reason == REASON_UNKNOWN_KEY and not self.keys_complete())

    def _refuse(self, error: AuthError, what: str) -> None:
        if error.reason == REASON_UNKNOWN_KEY and not self.keys_complete():
            self.refused(UnrecognizedClient(error.message, REASON_KEYS_INCOMPLETE,
                                            error.key_id), what, retryable=True)
        else:
            self.refused(error, what)

    def may(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]],
            body: bytes, access: Access) -> bool:
        """Whether the request is signed by a key that may do `access` (always, auth
        off), without counting or logging anything: for pages that answer everyone and
        show more to a key (`/health`), where a bad signature only gets the open answer."""
        if not self.enabled:
            return True
        assert self.verifier is not None
        try:
            authorize(self.verifier.verify_wire(method, url, headers, body, self.now_ms()),
                      access, self.region)
        except AuthError:
            return False
        return True

    def authorize(self, key: AccessKey | None, operation: str,
                  request: Mapping[str, Any]) -> None:
        """Raise AccessDenied (mode required) unless `key` may make this request."""
        if self.enabled and key is not None and not may_whatever_the_tables(key, operation):
            self.allow(key, required_access(operation, request), operation)

    def allow(self, key: AccessKey | None, access: Access, what: str) -> None:
        """Raise AccessDenied (mode required) unless `key` may do `access`; in warn mode
        count it and return. No key: `authenticate` refused the request already (it
        raised, or in warn mode counted it)."""
        if not self.enabled or key is None:
            return
        try:
            authorize(key, access, self.region)
        except AccessDenied as error:
            self.refused(error, what)

    def refused(self, error: AuthError, what: str, retryable: bool = False) -> None:
        """Count and log a refusal; raise it unless the mode is warn (`retryable`: raise
        ServiceUnavailable instead, for a refusal that may not hold once caught up)."""
        served = self.mode == WARN
        self.refusals.record(error, what, served)
        if served:
            return
        if retryable:
            raise ServiceUnavailable(
                f"Region {self.region} is catching up with its peers and does not know the "
                "request's access key yet; retry, or send the request to another region")
        raise error

    def auth_failures(self) -> Mapping[str, int]:
        """Requests refused (or, in warn mode, that would have been) by reason."""
        return self.refusals.by_reason

    def status(self) -> dict[str, Any]:
        return {"mode": self.mode, **self.refusals.summary(),
                "signing_keys_cached": self.verifier.cached_signing_keys
                if self.verifier is not None else 0}


def check_not_internal(operation: str, request: dict[str, Any]) -> None:
    """ResourceNotFound if the request names an internal table (by name, ARN, in a batch
    or transaction, or as a quoted name in a PartiQL statement).

    Every request passes here, so most take a short way: an operation whose body names
    tables only in TABLE_MEMBERS (GetItem, PutItem, Query...) is refused for the same
    names `request_tables` would yield, found without building its list; and a name or
    ARN without the internal prefix in it cannot name an internal table (an ARN's table
    is a part of it), so those are passed over without parsing. The shortest way: a
    body none of whose top-level strings holds the prefix names no internal table in
    TABLE_MEMBERS (one look at each of its few members instead of a lookup of each of
    the eight); otherwise the members are read in TABLE_MEMBERS' order, so the table
    named in the refusal is the same."""
    if operation not in TABLES_BEYOND_MEMBERS:
        for value in request.values():
            if isinstance(value, str) and INTERNAL_PREFIX in value:
                break
        else:
            return
        for member in TABLE_MEMBERS:
            value = request.get(member)
            if isinstance(value, str) and INTERNAL_PREFIX in value:
                _refuse_if_internal(table_from_arn(value))
        return
    for table in request_tables(operation, request):
        _refuse_if_internal(table)
    if operation in PARTIQL:
        for statement in _statements(request):
            try:
                tokens = tokenize(statement)
            except ValidationError:
                continue  # the engine refuses it as malformed
            if any(t.kind == QUOTED and is_internal(t.text) for t in tokens):
                raise ResourceNotFound("Requested resource not found")


def _refuse_if_internal(table: str) -> None:
    if is_internal(table):
        raise ResourceNotFound(f"Requested resource not found: Table: {table} not found")


def _statements(request: Mapping[str, Any]) -> list[str]:
    found = [request.get("Statement")]
    for member in ("Statements", "TransactStatements"):
        entries = request.get(member)
        if isinstance(entries, list):
            found += [e.get("Statement") for e in entries if isinstance(e, Mapping)]
    return [s for s in found if isinstance(s, str)]


def visible_tables(key: AccessKey | None, names: list[str],
                   request: Mapping[str, Any]) -> dict[str, Any]:
    """ListTables for a key limited to some tables: only those, paged as DynamoDB pages
    (Limit, ExclusiveStartTableName, LastEvaluatedTableName)."""
    names = [n for n in names if key is None or key.may_see(n)]
    limit = request.get("Limit", 100)
    start = request.get("ExclusiveStartTableName")
    if start is not None:
        names = [n for n in names if n > start]
    result: dict[str, Any] = {"TableNames": names[:limit]}
    if len(names) > limit:
        result["LastEvaluatedTableName"] = names[limit - 1]
    return result


def visible_streams(key: AccessKey, result: Any) -> Any:
    """ListStreams' answer for a key limited to some tables: the streams of those only
    (a page may then hold fewer than its Limit; LastEvaluatedStreamArn still pages)."""
    if not isinstance(result, dict) or not isinstance(result.get("Streams"), list):
        return result
    streams = [s for s in result["Streams"]
               if isinstance(s, Mapping) and key.may_see(str(s.get("TableName", "")))]
    return {**result, "Streams": streams}
