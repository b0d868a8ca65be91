"""The verifier's view of the access keys: a cache that answers most lookups with one
dict read, and asks its owner to reload an entry only after a commit.

Theory of operation: every signed request looks its key up (atoll.auth.sigv4), so the
lookup is on the request path and compiled with it. An entry is (the epoch it was
checked at, the stored record's bytes or None, the key or None). `committed()` moves the
epoch: the owner (atoll.node.keys.KeyStore) calls it after every commit of its storage,
so an entry from an older epoch is handed to the owner's `reload(key_id, entry)`, which
reads the stored record again and writes the entry back (`put`). So a revocation is in
force from the first lookup after the commit that brought it. How the record is read
and opened is the owner's business: this module does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from atoll.auth.keys import AccessKey

# (epoch checked at, the stored record's bytes or None, the key or None)
CacheEntry = tuple[int, bytes | None, AccessKey | None]
Reload = Callable[[str, CacheEntry | None], AccessKey | None]


class KeyCache:
    """Keys by id, valid while no commit happened since each entry was checked."""

    def __init__(self, reload: Reload, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("a key cache holds at least one entry")
        self.reload = reload
        self.max_entries = max_entries
        self.epoch = 0
        self.entries: dict[str, CacheEntry] = {}

    def lookup(self, key_id: str) -> AccessKey | None:
        """The key with this id (None: no such usable record), reloaded by the owner if a
        commit happened since its entry was checked."""
        entry = self.entries.get(key_id)
        if entry is not None and entry[0] == self.epoch:
            return entry[2]
        return self.reload(key_id, entry)

    def committed(self) -> None:
        self.epoch += 1

    def put(self, key_id: str, raw: bytes | None, key: AccessKey | None) -> None:
        """Remember what `key_id`'s record holds now (evicting the oldest entry when full)."""
        if key_id not in self.entries and len(self.entries) >= self.max_entries:
            del self.entries[next(iter(self.entries))]
        self.entries[key_id] = (self.epoch, raw, key)

    def forget(self, key_id: str) -> None:
        self.entries.pop(key_id, None)
