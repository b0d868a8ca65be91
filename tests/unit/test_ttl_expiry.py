"""Which items the TTL sweeper may delete (DynamoDB's rules: a Number of epoch seconds
not after now, and not more than five years in the past)."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.engine.ttl import MAX_AGE_S, expired

NOW_S = 1_800_000_000.5


@pytest.mark.parametrize("value,is_expired", [
    ({"N": str(int(NOW_S) - 1)}, True),
    ({"N": str(int(NOW_S))}, True),
    ({"N": "1800000000.4"}, True),
    ({"N": "1800000000.6"}, False),
    ({"N": str(int(NOW_S) + 60)}, False),
    ({"N": str(int(NOW_S - MAX_AGE_S) - 10)}, False),  # too old: ignored, as DynamoDB does
    ({"S": str(int(NOW_S) - 1)}, False),  # not a number
    ({"NS": ["1"]}, False),
    (None, False),  # no TTL attribute
])
def test_expired(value: Any, is_expired: bool) -> None:
    item = {"pk": {"S": "a"}}
    if value is not None:
        item["exp"] = value
    assert expired(item, "exp", NOW_S) is is_expired
