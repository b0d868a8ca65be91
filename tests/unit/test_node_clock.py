"""The node's clock (atoll.node.clock): an offset wall clock that tests may only move
forward, through POST /_atoll/clock on a node started with --settable-clock."""

from __future__ import annotations

import orjson
import pytest

from atoll.node.clock import MAX_ADVANCE_MS, OffsetClock


def test_advancing_moves_now_forward_by_the_amount() -> None:
    clock = OffsetClock(5)
    before = clock()
    status, body = clock.handle_post(b'{"advance_ms": 3600000}')
    assert status == 200
    answer = orjson.loads(body)
    assert answer["offset_ms"] == 3_600_005
    assert answer["now_ms"] >= before + 3_600_000
    assert clock() >= before + 3_600_000


@pytest.mark.parametrize("body", [b"", b"[]", b'{"advance": 1}', b'{"advance_ms": -1}',
                                  b'{"advance_ms": 1.5}', b'{"advance_ms": true}',
                                  b'{"advance_ms": %d}' % (MAX_ADVANCE_MS + 1)])
def test_only_a_forward_move_of_at_most_a_year_is_accepted(body: bytes) -> None:
    clock = OffsetClock()
    status, _answer = clock.handle_post(body)
    assert status == 400 and clock.offset_ms == 0
