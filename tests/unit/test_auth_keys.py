"""Access keys: formats, masked secrets, and the sealed (stored and replicated) form."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable

import orjson
import pytest

from atoll.auth.errors import SealedRecordError
from atoll.auth.keys import (
    DATA_KEY_BYTES,
    ROLE_ADMIN,
    ROLE_READ_ONLY,
    ROLE_READ_WRITE,
    AccessKey,
    Secret,
    create_key,
    data_key_id,
    open_key,
    seal_key,
)


def seeded(seed: str) -> Callable[[int], bytes]:
    state = {"n": 0}

    def random_bytes(n: int) -> bytes:
        state["n"] += 1
        digest = hashlib.sha512(f"{seed}/{state['n']}".encode()).digest()
        return (digest * (n // len(digest) + 1))[:n]
    return random_bytes


DATA_KEY = hashlib.sha256(b"cluster data key").digest()
OTHER_DATA_KEY = hashlib.sha256(b"another cluster").digest()


def test_ids_and_secrets_have_aws_formats() -> None:
    key = create_key(ROLE_READ_WRITE, now_ms=1_700_000_000_000)
    assert re.fullmatch(r"AKAT[A-Z2-7]{16}", key.key_id)
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", key.secret.reveal())
    assert key.session_token is None and key.expires_ms is None
    session = create_key(ROLE_READ_ONLY, now_ms=1, session_expires_ms=3_600_001)
    assert re.fullmatch(r"ASAT[A-Z2-7]{16}", session.key_id)
    assert session.session_token is not None and len(session.session_token.reveal()) == 128


def test_keys_come_from_the_random_source_given() -> None:
    a = create_key(ROLE_ADMIN, now_ms=1, random_bytes=seeded("x"))
    b = create_key(ROLE_ADMIN, now_ms=1, random_bytes=seeded("x"))
    c = create_key(ROLE_ADMIN, now_ms=1)
    d = create_key(ROLE_ADMIN, now_ms=1)
    assert (a.key_id, a.secret.reveal()) == (b.key_id, b.secret.reveal())
    assert c.key_id != d.key_id and c.secret.reveal() != d.secret.reveal()


def test_secrets_never_show_in_repr_str_format_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    key = create_key(ROLE_READ_WRITE, now_ms=1, session_expires_ms=5)
    secret = key.secret.reveal()
    token = key.session_token.reveal() if key.session_token else ""
    caplog.set_level(logging.INFO)
    logging.getLogger("test").info("key %s %r", key, key)
    shown = [repr(key), str(key), f"{key}", f"{key.secret}", str(key.secret),
             repr(key.secret), caplog.text, str(ValueError(key)),
             repr(dataclasses.asdict(key))]
    for text in shown:
        assert secret not in text and token not in text
        assert key.key_id in text or "********" in text
    with pytest.raises(TypeError):
        orjson.dumps(key.secret)  # a secret is never serialised by accident


def test_secret_equality_and_copies() -> None:
    secret = Secret("a")
    assert copy.copy(secret) is secret and copy.deepcopy(secret) is secret
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"


@pytest.mark.parametrize("change,problem", [
    ({"role": "superuser"}, "role must be one of"),
    ({"role": ROLE_ADMIN, "tables": frozenset({"T"})}, "admin key cannot be limited"),
    ({"tables": frozenset()}, "table list holds"),
    ({"key_id": "short"}, "key id must be"),
    ({"key_id": "akatlowercase0000000"}, "key id must be"),
    ({"secret": Secret("")}, "needs a secret"),
    ({"session_token": Secret("t")}, "a session key has both"),
    ({"created_ms": -1}, "created_ms"),
    ({"revoked_ms": -5}, "revoked_ms"),
])
def test_invalid_records_are_refused(change: dict[str, object], problem: str) -> None:
    key = create_key(ROLE_READ_WRITE, now_ms=1)
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(key, **change)  # type: ignore[arg-type]


def test_revocation_keeps_the_earliest_time() -> None:
    key = create_key(ROLE_READ_WRITE, now_ms=1)
    assert not key.revoked
    revoked = key.revoke(now_ms=10)
    assert revoked.revoked and revoked.revoked_ms == 10
    assert revoked.revoke(now_ms=20).revoked_ms == 10
    assert revoked.revoke(now_ms=5).revoked_ms == 5


def test_table_lists_and_expiry() -> None:
    key = create_key(ROLE_READ_ONLY, now_ms=1, tables=["A", "B"])
    assert key.may_see("A") and not key.may_see("C")
    assert create_key(ROLE_READ_ONLY, now_ms=1).may_see("C")
    session = create_key(ROLE_READ_ONLY, now_ms=1, session_expires_ms=100)
    assert not session.expired(99) and session.expired(100)


# -- the sealed form ---------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    create_key(ROLE_READ_WRITE, now_ms=1_700_000_000_000, tables=["Orders", "Users"]),
    create_key(ROLE_ADMIN, now_ms=2),
    create_key(ROLE_READ_ONLY, now_ms=3, session_expires_ms=4).revoke(now_ms=3),
], ids=["table-limited", "admin", "revoked-session"])
def test_sealed_records_round_trip(key: AccessKey) -> None:
    record = seal_key(key, DATA_KEY)
    opened = open_key(orjson.loads(orjson.dumps(record)), DATA_KEY)
    assert opened == key
    assert opened.secret.reveal() == key.secret.reveal()
    assert opened.session_token == key.session_token


def test_a_sealed_record_never_carries_a_secret_in_clear() -> None:
    key = create_key(ROLE_READ_WRITE, now_ms=1, session_expires_ms=9)
    stored = orjson.dumps(seal_key(key, DATA_KEY))
    assert key.secret.reveal().encode() not in stored
    assert key.session_token is not None
    assert key.session_token.reveal().encode() not in stored
    assert DATA_KEY not in stored and base64.b64encode(DATA_KEY) not in stored
    assert key.key_id.encode() in stored  # the id is public


def test_each_sealing_uses_a_fresh_nonce() -> None:
    key = create_key(ROLE_READ_WRITE, now_ms=1)
    assert seal_key(key, DATA_KEY)["secret"] != seal_key(key, DATA_KEY)["secret"]


def test_another_clusters_data_key_is_refused_and_named() -> None:
    record = seal_key(create_key(ROLE_READ_WRITE, now_ms=1), DATA_KEY)
    with pytest.raises(SealedRecordError, match="another cluster"):
        open_key(record, OTHER_DATA_KEY)
    forged = {**record, "data_key_id": data_key_id(OTHER_DATA_KEY)}
    with pytest.raises(SealedRecordError, match="tampered"):
        open_key(forged, OTHER_DATA_KEY)


def _flip_byte(blob: object, index: int) -> str:
    assert isinstance(blob, str)
    raw = bytearray(base64.b64decode(blob))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


TAMPERING: dict[str, Callable[[dict[str, object]], dict[str, object]]] = {
    "role-raised": lambda r: {**r, "role": ROLE_ADMIN, "tables": None},
    "tables-widened": lambda r: {**r, "tables": ["Orders", "Secrets"]},
    "tables-dropped": lambda r: {**r, "tables": None},
    "key-id-changed": lambda r: {**r, "key_id": "AKAT" + "B" * 16},
    "created-changed": lambda r: {**r, "created_ms": 2},
    "expiry-extended": lambda r: {**r, "expires_ms": 10**15},
    "nonce-bit": lambda r: {**r, "secret": _flip_byte(r["secret"], 0)},
    "ciphertext-bit": lambda r: {**r, "secret": _flip_byte(r["secret"], 14)},
    "tag-bit": lambda r: {**r, "secret": _flip_byte(r["secret"], -1)},
    "token-as-secret": lambda r: {**r, "secret": r["session_token"]},
    "truncated": lambda r: {**r, "secret": str(r["secret"])[:20]},
    "not-base64": lambda r: {**r, "secret": "!!!!"},
    "version": lambda r: {**r, "version": 2},
    "created-missing": lambda r: {k: v for k, v in r.items() if k != "created_ms"},
    "created-text": lambda r: {**r, "created_ms": "1"},
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_is_refused(name: str) -> None:
    key = create_key(ROLE_READ_ONLY, now_ms=1, tables=["Orders"], session_expires_ms=99)
    record = seal_key(key, DATA_KEY)
    assert open_key(record, DATA_KEY) == key
    with pytest.raises(SealedRecordError):
        open_key(TAMPERING[name](record), DATA_KEY)


def test_revocation_is_a_one_field_change_any_region_can_make() -> None:
    key = create_key(ROLE_READ_WRITE, now_ms=1)
    record = seal_key(key, DATA_KEY)
    revoked = open_key({**record, "revoked_ms": 50}, DATA_KEY)
    assert revoked.revoked and revoked.secret == key.secret


def test_data_keys_must_be_32_bytes() -> None:
    key = create_key(ROLE_READ_WRITE, now_ms=1)
    with pytest.raises(ValueError):
        seal_key(key, DATA_KEY[:16])
    with pytest.raises(ValueError):
        open_key(seal_key(key, DATA_KEY), DATA_KEY + b"x")
    assert len(DATA_KEY) == DATA_KEY_BYTES
