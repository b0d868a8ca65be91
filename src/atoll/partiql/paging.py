"""NextToken: where the next page of a SELECT starts, opaque to the client.

Theory of operation: a SELECT runs as one or more reads (one per partition key value,
see `plans`); a page stops when a read stops early (its LastEvaluatedKey) or when Limit
items were read. The token records which read comes next and the LastEvaluatedKey to
resume it from, with a digest of the statement and its parameters: a token handed back
with another statement is refused ("NextToken does not match request", as DynamoDB
answers), one that does not decode is "Invalid NextToken".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import orjson

from atoll.errors import ValidationError

INVALID = "Invalid NextToken"
MISMATCH = "NextToken does not match request"
DIGEST_CHARS = 32


def digest(statement: str, parameters: list[Any] | None) -> str:
    data = orjson.dumps([statement, parameters or []], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def encode(statement_digest: str, read: int, last_key: dict[str, Any] | None) -> str:
    data = orjson.dumps({"d": statement_digest, "r": read, "k": last_key})
    return base64.urlsafe_b64encode(data).decode()


def decode(token: str, statement_digest: str) -> tuple[int, dict[str, Any] | None]:
    """(index of the read to resume, its ExclusiveStartKey or None to start it afresh)."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise ValidationError(INVALID) from None
    if (type(data) is not dict or type(data.get("r")) is not int or data["r"] < 0
            or not isinstance(data.get("k"), dict | None) or type(data.get("d")) is not str):
        raise ValidationError(INVALID)
    if data["d"] != statement_digest:
        raise ValidationError(MISMATCH)
    return data["r"], data["k"]
