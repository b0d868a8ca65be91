"""The verifier's key cache: one dict read while nothing was committed, the owner's
reload after every commit, bounded."""

from __future__ import annotations

import pytest

from atoll.auth.keycache import CacheEntry, KeyCache
from atoll.auth.keys import ROLE_READ_ONLY, AccessKey, create_key

KEY = create_key(ROLE_READ_ONLY, now_ms=1)


class Owner:
    """Stands for the key store: counts reloads, answers from `stored`."""

    def __init__(self) -> None:
        self.stored: dict[str, AccessKey] = {KEY.key_id: KEY}
        self.reloads: list[tuple[str, CacheEntry | None]] = []
        self.cache = KeyCache(self.reload, max_entries=3)

    def reload(self, key_id: str, entry: CacheEntry | None) -> AccessKey | None:
        self.reloads.append((key_id, entry))
        key = self.stored.get(key_id)
        self.cache.put(key_id, None if key is None else key.key_id.encode(), key)
        return key


def test_lookups_are_answered_from_the_cache_until_a_commit() -> None:
    owner = Owner()
    assert owner.cache.lookup(KEY.key_id) is KEY
    assert owner.cache.lookup(KEY.key_id) is KEY
    assert owner.cache.lookup("unknown") is None
    assert owner.cache.lookup("unknown") is None
    assert [r[0] for r in owner.reloads] == [KEY.key_id, "unknown"]
    revoked = KEY.revoke(now_ms=2)
    owner.stored[KEY.key_id] = revoked
    assert owner.cache.lookup(KEY.key_id) is KEY  # no commit yet: nothing says otherwise
    owner.cache.committed()
    assert owner.cache.lookup(KEY.key_id) is revoked
    assert owner.reloads[-1] == (KEY.key_id, (0, KEY.key_id.encode(), KEY))
    assert owner.cache.lookup(KEY.key_id) is revoked and len(owner.reloads) == 3


def test_forgotten_entries_are_reloaded_and_the_cache_is_bounded() -> None:
    owner = Owner()
    owner.cache.lookup(KEY.key_id)
    owner.cache.forget(KEY.key_id)
    owner.cache.lookup(KEY.key_id)
    assert len(owner.reloads) == 2 and owner.reloads[-1] == (KEY.key_id, None)
    for i in range(10):
        owner.cache.lookup(f"unknown{i}")
    assert len(owner.cache.entries) == 3
    assert list(owner.cache.entries) == ["unknown7", "unknown8", "unknown9"]
    with pytest.raises(ValueError):
        KeyCache(owner.reload, max_entries=0)
