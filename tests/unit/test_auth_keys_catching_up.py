"""A region that may lack keys its peers hold (it started empty or from an old backup,
or is being rebuilt from a peer's snapshot) answers a request whose key it does not know
with a retryable 503, waits a bounded time for the key to land, and never serves a key
it does not hold or holds revoked. The region's state is a real ReplicationCore driven
through a rebuild; requests are signed by botocore (tests/unit/test_auth_sigv4.py)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from atoll.api.access import (
    KEY_WAIT_S,
    MAX_KEY_WAITERS,
    REQUIRED,
    WARN,
    AccessControl,
    KeyNotHereYet,
)
from atoll.api.errors import error_response
from atoll.auth import errors as e
from atoll.auth.keys import AccessKey
from atoll.auth.sigv4 import SignedRequest, SigV4Verifier
from atoll.clock import HybridClock
from atoll.errors import ServiceUnavailable
from atoll.replication.apply import ApplyOutcome
from atoll.replication.core import ReplicationCore
from atoll.replication.protocol import Batch, encode_message
from tests.unit.test_auth_sigv4 import KEY, OTHER, sign, signed_at_ms
from tests.unit.test_replication_puller import CONFIG, records, table

Wire = tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]


def wire(request: SignedRequest) -> Wire:
    target = request.path + ("?" + request.query if request.query else "")
    return (request.method.encode("latin-1"), target.encode("latin-1"),
            [(n.encode("latin-1"), v.encode("latin-1")) for n, v in request.headers],
            request.body)


class Region:
    """A region "b" with one peer "a": its replication core and the keys it holds."""

    def __init__(self, *keys: AccessKey) -> None:
        self.core = ReplicationCore("b", ["a", "b"], CONFIG, HybridClock(lambda: 0),
                                    lambda: 0, 0)
        self.puller = self.core.pullers["a"]
        self.keys = {k.key_id: k for k in keys}

    def access(self, mode: str = REQUIRED, pause: bool = False, at_ms: int = 0
               ) -> AccessControl:
        async def sleep(seconds: float) -> None:
            self.pauses += 1
            await asyncio.sleep(0)
            if self.on_pause is not None:
                self.on_pause(self.pauses)

        self.pauses = 0
        self.on_pause: object = None
        return AccessControl(mode, SigV4Verifier(self.keys.get), "b", lambda: at_ms,
                             keys_complete=self.core.caught_up,
                             pause=sleep if pause else None)

    def answered(self, batch_records: tuple[bytes, ...] = (), more: bool = False,
                 log_start: dict[str, int] | None = None) -> None:
        pull = self.puller.pull({}, ["a"], 0)
        self.puller.on_answer(encode_message(Batch(pull.request_id, batch_records, more,
                                                   log_start or {})), 1, table)


def refusal(access: AccessControl, request: SignedRequest) -> BaseException:
    with pytest.raises((e.AuthError, ServiceUnavailable)) as refused:
        access.authenticate(*wire(request), "GetItem")
    return refused.value


def test_an_unknown_key_gets_a_retryable_503_until_the_region_caught_up() -> None:
    region = Region(OTHER)  # started empty: KEY exists in the cluster, not here yet
    request = sign(KEY)
    access = region.access(at_ms=signed_at_ms(request))
    assert not region.core.caught_up()
    error = refusal(access, request)
    assert isinstance(error, ServiceUnavailable)
    status, body = error_response(error)  # type: ignore[arg-type]
    assert status == 503 and orjson.loads(body)["__type"].endswith(
        "#ServiceUnavailableException")
    # the first answer says the peer's log no longer covers this region: a rebuild
    region.answered(log_start={"a": 40})
    assert isinstance(refusal(access, request), ServiceUnavailable)
    region.puller.take_rebuild()
    assert isinstance(refusal(access, request), ServiceUnavailable)
    region.puller.on_rebuilt(True, 2)
    assert isinstance(refusal(access, request), ServiceUnavailable)  # not caught up yet
    # caught up with the peer (nothing more to bring): an unknown key is unknown
    region.answered(records("a", 1, 2))
    region.puller.take_apply()
    assert isinstance(refusal(access, request), ServiceUnavailable)  # its apply is running
    region.puller.on_applied(ApplyOutcome(applied=2), 3)
    assert region.core.caught_up()
    error = refusal(access, request)
    assert isinstance(error, e.UnrecognizedClient) and error.reason == e.REASON_UNKNOWN_KEY
    assert access.auth_failures() == {e.REASON_KEYS_INCOMPLETE: 5, e.REASON_UNKNOWN_KEY: 1}


def test_a_revoked_or_badly_signed_key_is_refused_as_ever_while_catching_up() -> None:
    revoked = KEY.revoke(5)
    region = Region(revoked, OTHER)
    request = sign(KEY)
    access = region.access(at_ms=signed_at_ms(request))
    error = refusal(access, request)
    assert isinstance(error, e.UnrecognizedClient) and error.reason == e.REASON_REVOKED_KEY
    forged = sign(OTHER, secret="not-the-secret-" + "x" * 25)
    error = refusal(region.access(at_ms=signed_at_ms(forged)), forged)
    assert isinstance(error, e.InvalidSignature)
    known = sign(OTHER)
    assert region.access(at_ms=signed_at_ms(known)).authenticate(
        *wire(known), "GetItem") == OTHER


def test_a_region_catches_up_only_once_the_applies_up_to_an_answer_committed() -> None:
    region = Region()
    region.answered(records("a", 1, 3), more=True)
    region.puller.take_apply()
    region.puller.on_applied(ApplyOutcome(applied=3), 2)
    assert not region.core.caught_up()  # the peer had more
    region.answered(records("a", 4, 5))
    region.puller.take_apply()
    region.puller.on_applied(ApplyOutcome(applied=1, stopped_at_gap=True), 3)
    assert not region.core.caught_up()  # it fell short
    region.answered()
    assert region.core.caught_up()
    region.answered(log_start={"a": 90})  # later, the peer's log moved past it: rebuild
    assert not region.core.caught_up()


def test_a_request_waits_for_its_key_to_land_and_is_then_served() -> None:
    region = Region()
    request = sign(KEY)
    access = region.access(pause=True, at_ms=signed_at_ms(request))
    with pytest.raises(KeyNotHereYet):
        access.authenticate(*wire(request), "GetItem", may_wait=True)

    def landed(pauses: int) -> None:
        if pauses == 3:  # the rebuild copied the peer's keys table
            region.keys[KEY.key_id] = KEY

    region.on_pause = landed
    assert asyncio.run(access.wait_for_key(*wire(request), "GetItem")) == KEY
    assert region.pauses == 3 and access.key_waiters == 0
    assert access.auth_failures() == {}


def test_the_wait_is_bounded_and_ends_when_the_region_catches_up_without_the_key() -> None:
    region = Region()
    request = sign(KEY)
    access = region.access(pause=True, at_ms=signed_at_ms(request))
    with pytest.raises(ServiceUnavailable):
        asyncio.run(access.wait_for_key(*wire(request), "GetItem"))
    assert region.pauses == int(KEY_WAIT_S / 0.05)

    def caught_up(pauses: int) -> None:
        if pauses == 2:
            region.answered()

    access = region.access(pause=True, at_ms=signed_at_ms(request))
    region.on_pause = caught_up
    with pytest.raises(e.UnrecognizedClient):
        asyncio.run(access.wait_for_key(*wire(request), "GetItem"))
    assert region.pauses == 2


def test_no_wait_when_too_many_wait_in_warn_mode_or_without_a_pause() -> None:
    region = Region()
    request = sign(KEY)
    at_ms = signed_at_ms(request)
    access = region.access(pause=True, at_ms=at_ms)
    access.key_waiters = MAX_KEY_WAITERS
    assert isinstance(refusal(access, request), ServiceUnavailable)
    with pytest.raises(ServiceUnavailable):
        access.authenticate(*wire(request), "GetItem", may_wait=True)
    with pytest.raises(ServiceUnavailable):  # no pause given: the 503 at once
        region.access(at_ms=at_ms).authenticate(*wire(request), "GetItem", may_wait=True)
    warn = region.access(WARN, pause=True, at_ms=at_ms)
    assert warn.authenticate(*wire(request), "GetItem", may_wait=True) is None
    assert warn.refusals.served_anyway == 1
