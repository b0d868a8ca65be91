"""atoll.checksum.crc32 is zlib's CRC-32, bit for bit: every checksum already stored, every
partition hash (a Scan's order) and every `x-amz-crc32` an SDK checks was made by zlib's."""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from atoll.checksum import crc32


@settings(max_examples=500)
@given(st.binary(max_size=5000), st.integers(min_value=0, max_value=2**32 - 1))
def test_crc32_is_zlibs_for_any_bytes_and_start(data: bytes, start: int) -> None:
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data, start) == zlib.crc32(data, start)


def test_crc32_is_zlibs_on_every_length_and_alignment_up_to_a_few_blocks() -> None:
    # the accelerated paths fold 16- and 64-byte blocks: every length and offset
    # around their edges takes another mix of the block and tail code
    data = bytes((i * 131 + 7) % 251 for i in range(1200))
    for offset in range(0, 17):
        for length in range(0, 300):
            chunk = data[offset:offset + length]
            assert crc32(chunk) == zlib.crc32(chunk), (offset, length)


def test_crc32_is_zlibs_on_large_buffers_and_buffer_types() -> None:
    big = bytes(range(256)) * 4099 + b"tail"  # ~1 MB, odd length
    assert crc32(big) == zlib.crc32(big)
    assert crc32(bytearray(big)) == zlib.crc32(big)
    assert crc32(memoryview(big)[3:]) == zlib.crc32(big[3:])
    # chained over pieces, as a running checksum is
    running = 0
    for i in range(0, len(big), 7777):
        running = crc32(big[i:i + 7777], running)
    assert running == zlib.crc32(big)


def test_known_values() -> None:
    assert crc32(b"") == 0
    assert crc32(b"123456789") == 0xCBF43926  # the CRC-32 check value
