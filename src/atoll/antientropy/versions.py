"""What anti-entropy needs to know about an item's version, and today's versions.

Theory of operation: the trees and the protocol carry a key's version as opaque,
canonical bytes (two regions holding the same version hold the same bytes), so the
version format can change — per-item causal metadata replaces (hlc, origin) in issue 26
— without touching the trees or the wire. What the verdicts and repairs need from a
version goes through `VersionScheme`:

  stamps(v)         the changes, as (origin, hlc) pairs, that produced v or that v
                    depends on. The verdict calls a version *above the cut* when any
                    stamp has hlc > cut[origin].hlc (an origin's hlc grows with its seq,
                    so this says the change is not yet applied by every region compared).
                    The producing change must be among them; listing more only makes
                    verdicts more cautious (more TRANSIENT), never wrong.
  supersedes(a, b)  whether the merge rule replaces a stored b by an incoming a. It must
                    pick, from any set of versions of a key, the same winner whatever the
                    order they are applied in (a maximum under a total order, or a join
                    with that property): the argument that replication lag cannot cause
                    DIVERGED (verdict.py) rests on it.
  concurrent(a, b)  whether a and b were written without one seeing the other (a repair
                    that replaces one by the other is then logged as a conflict).
  describe(v)       a short, readable form for reports and the repair log.

`HlcScheme` is today's: Version(hlc, origin) plus the overwritten `prev`, decided with
`atoll.replication.merge.decide` (last writer wins by (hlc, origin); a write whose `prev`
is the other version knowingly overwrote it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from atoll.replication.change import ItemWrite, Version
from atoll.replication.merge import Stored, decide

MAX_VERSION_BYTES = 4096


class BadVersion(ValueError):
    """Version bytes that do not decode under the scheme."""


class VersionScheme(Protocol):
    def stamps(self, version: bytes) -> Sequence[tuple[str, int]]: ...

    def supersedes(self, a: bytes, b: bytes) -> bool: ...

    def concurrent(self, a: bytes, b: bytes) -> bool: ...

    def describe(self, version: bytes) -> str: ...


def encode_hlc_version(version: Version, prev: Version | None) -> bytes:
    """Canonical bytes of today's version: orjson [hlc, origin, [prev_hlc, prev_origin]
    or null]. Stores use this for the leaf's version bytes."""
    raw: list[Any] = [version.hlc, version.origin,
                      None if prev is None else [prev.hlc, prev.origin]]
    return orjson.dumps(raw)


def decode_hlc_version(raw: bytes) -> tuple[Version, Version | None]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadVersion("version is not JSON") from None
    if (type(doc) is not list or len(doc) != 3 or not _stamp(doc[0], doc[1])
            or not (doc[2] is None or (type(doc[2]) is list and len(doc[2]) == 2
                                       and _stamp(doc[2][0], doc[2][1])))):
        raise BadVersion("version is not [hlc, origin, prev]")
    prev = None if doc[2] is None else Version(doc[2][0], doc[2][1])
    version = Version(doc[0], doc[1])
    if encode_hlc_version(version, prev) != raw:
        raise BadVersion("version bytes are not canonical")
    return version, prev


def _stamp(hlc: Any, origin: Any) -> bool:
    return type(hlc) is int and hlc >= 0 and type(origin) is str and bool(origin)


class HlcScheme:
    """Today's versions: (hlc, origin) with the overwritten `prev`."""

    def stamps(self, version: bytes) -> Sequence[tuple[str, int]]:
        current, _ = decode_hlc_version(version)
        return ((current.origin, current.hlc),)

    def supersedes(self, a: bytes, b: bytes) -> bool:
        return self._decide(a, b).apply

    def concurrent(self, a: bytes, b: bytes) -> bool:
        if a == b:
            return False
        if self.supersedes(a, b):
            return self._decide(a, b).conflict is not None
        return self._decide(b, a).conflict is not None

    def describe(self, version: bytes) -> str:
        current, _ = decode_hlc_version(version)
        return f"{current.origin}@{current.hlc}"

    @staticmethod
    def _decide(incoming: bytes, stored: bytes) -> Any:
        # decide() looks at versions only: the key and items do not matter here.
        new, new_prev = decode_hlc_version(incoming)
        old, old_prev = decode_hlc_version(stored)
        return decide(Stored(old, None, old_prev), ItemWrite("t", b"k", b"", None, new_prev),
                      new)


HLC_SCHEME = HlcScheme()
