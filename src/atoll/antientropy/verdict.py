"""Lag-aware verdicts: what in a difference is replication still in flight, and what is not.

THE RULE. A session compares one table over regions; for each pair (A, B) of them:

  C_r      r's applied cursors (per origin: the highest contiguous (seq, hlc) applied),
           read in r's answer to Open;
  P_r      per origin, the newest changelog record r has purged, (seq, hlc), read there too;
  E_A[o] = max(C_A[o], P_B[o])   what A has applied, or can no longer get from B's log;
  K[o]   = min(E_A[o], E_B[o])   the pair's stable cut (an origin absent = (0, 0)).

A key's state in a region is absent, a tombstone (version), or a live item (version,
content hash, whether its stored checksum passes). Two states AGREE when both are "no
item" (absent or a tombstone, whatever its version: tombstones are purged at different
moments in different regions and no reader can tell them apart), or both are live with
the same version, the same content and both intact. A version is ABOVE THE CUT when
one of its stamps (VersionScheme.stamps: the change that produced it, and any it depends
on) has hlc > K[origin].hlc. For a key whose states disagree:

  - TRANSIENT   if either side's version (live or tombstone) is above the cut;
  - otherwise it is a below-cut difference with signature (key, state of A, state of B):
    DIVERGED    if the same pair and table showed the same signature in a session that
                completed before this session started (`VerdictBook`);
    UNCONFIRMED otherwise (the next session decides).

A table whose creation/deletion versions differ between A and B is judged the same way
from those versions, with the table name as the key.

WHY REPLICATION LAG NEVER GIVES DIVERGED. Assume no fault: every region applies each
change it accepts through the merge rule, which picks from any set of versions of a key
the same winner whatever the order (VersionScheme.supersedes); rows are changed only by
Atoll; a region's cursors only move forward; changelog records and tombstones are purged
only once every region has applied them (replication/retention.py). The session reads
no row of any side before every side has answered Open (session.py). Then for a key
whose states a, b disagree with neither version above the cut:

 1. Both have versions va != vb (equal versions come from one change, so equal content).
    Say vb wins over va. vb's change is <= K <= E_A: either A applied it before its Open
    (C_A), or B purged it from its log before B's Open (P_B), which needs A to have
    applied it first. Both happen before A read the key, and A's state never moves back
    below a version it applied — so A's state is at least vb: contradiction.
 2. One side has no item, the other a live va (below the cut). If the empty side holds a
    tombstone vt, it is below the cut too and case 1 applies. If it holds nothing, it
    applied va's change (as in 1) and later purged a tombstone vt newer than va, which
    retention allows only after A applied vt; A still showed va, so A read the key before
    applying vt, and the empty side read after purging: possible once, within one session
    (reads on different sides happen at different moments). In any later session A reads
    after the earlier session completed, hence after the purge, hence after applying vt:
    A cannot show va again, and the signature cannot repeat.
So only case 2 can produce a below-cut difference under lag, it can never be seen twice,
and DIVERGED needs two sightings. Faults break the assumptions and are judged DIVERGED
on their second sighting: a dropped change (a region's cursor moved past a change it did
not store), a flipped byte or a row edited or deleted behind Atoll's back (found by the
scrub, which corrects the tree to the rows), a region restored from an old snapshot (its
cursors went back: what its peers purged, P, it can no longer receive, so the cut rises
to it), a region past the retention bound (the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from atoll.antientropy.messages import Listed
from atoll.antientropy.versions import BadVersion, VersionScheme
from atoll.replication.cursors import ZERO, Cursor

Cut = dict[str, Cursor]


@dataclass(frozen=True, slots=True)
class SideView:
    """What one side said in its answer to Open."""

    region: str
    cursors: Mapping[str, Cursor]
    purged: Mapping[str, Cursor]


def pair_cut(a: SideView, b: SideView) -> Cut:
    origins = set(a.cursors) | set(b.cursors) | set(a.purged) | set(b.purged)
    cut = {}
    for origin in sorted(origins):
        effective_a = max(a.cursors.get(origin, ZERO), b.purged.get(origin, ZERO))
        effective_b = max(b.cursors.get(origin, ZERO), a.purged.get(origin, ZERO))
        cut[origin] = min(effective_a, effective_b)
    return cut


def stamp_above(stamps: Iterable[tuple[str, int]], cut: Mapping[str, Cursor]
                ) -> tuple[str, int] | None:
    """The first stamp above the cut, or None when all are at or below it."""
    for origin, hlc in stamps:
        if hlc > cut.get(origin, ZERO).hlc:
            return origin, hlc
    return None


def agree(a: Listed | None, b: Listed | None) -> bool:
    a_none = a is None or a.content is None
    b_none = b is None or b.content is None
    if a_none or b_none:
        return a_none and b_none
    assert a is not None and b is not None
    return (a.version == b.version and a.content == b.content and a.intact and b.intact)


def state_digest(state: Listed | None) -> bytes:
    """A state's part of a signature: all "no item" states are one state."""
    if state is None or state.content is None:
        return b""
    return b"".join((state.version, b"\x00", state.content, b"\x01" if state.intact else b"\x00"))


def readable(version: bytes, scheme: VersionScheme) -> bool:
    """Whether `version` decodes under the scheme (a version column changed behind
    Atoll's back may not): an unreadable version is never above the cut, never a winner."""
    try:
        scheme.stamps(version)
    except BadVersion:
        return False
    return True


def describe_version(version: bytes, scheme: VersionScheme) -> str:
    return scheme.describe(version) if readable(version, scheme) else "(unreadable version)"


def describe_state(state: Listed | None, scheme: VersionScheme) -> str:
    if state is None:
        return "absent"
    if state.content is None:
        return f"tombstone {describe_version(state.version, scheme)}"
    damaged = "" if state.intact else " (fails its checksum)"
    return f"item {describe_version(state.version, scheme)} {state.content.hex()[:12]}{damaged}"


@dataclass(frozen=True, slots=True)
class Judgement:
    kind: str  # results.TRANSIENT_KIND, or "below" for a below-cut difference
    reason: str


def judge_key(a_region: str, a: Listed | None, b_region: str, b: Listed | None,
              cut: Mapping[str, Cursor], scheme: VersionScheme) -> Judgement:
    """Classify a disagreeing pair of states against the cut (the first step of the rule)."""
    for region, state in ((a_region, a), (b_region, b)):
        if state is None:
            continue
        if not readable(state.version, scheme):
            return Judgement("below", f"{region}'s version bytes do not decode")
        above = stamp_above(scheme.stamps(state.version), cut)
        if above is not None:
            origin, hlc = above
            applied = cut.get(origin, ZERO)
            return Judgement("transient", f"{region}'s version {scheme.describe(state.version)}"
                             f" depends on {origin}@{hlc}, above the cut (both regions "
                             f"applied {origin} through seq {applied.seq})")
    return Judgement("below", _below_reason(a_region, a, b_region, b))


def _below_reason(a_region: str, a: Listed | None, b_region: str, b: Listed | None) -> str:
    for region, state in ((a_region, a), (b_region, b)):
        if state is not None and state.content is not None and not state.intact:
            return f"{region}'s row fails its checksum"
    if (a is not None and b is not None and a.version == b.version):
        return "same version, different contents"
    for region, state in ((a_region, a), (b_region, b)):
        if state is None or state.content is None:
            return f"{region} holds no item for a version both regions applied"
    return "different versions, both at or below the cut"


def judge_table(a_versions: Sequence[bytes], b_versions: Sequence[bytes],
                cut: Mapping[str, Cursor], scheme: VersionScheme) -> Judgement:
    for version in (*a_versions, *b_versions):
        if not readable(version, scheme):
            return Judgement("below", "a table version does not decode")
        above = stamp_above(scheme.stamps(version), cut)
        if above is not None:
            return Judgement("transient", f"table change {describe_version(version, scheme)} is above "
                             "the cut")
    return Judgement("below", "the table's creation or deletion differs below the cut")


Signature = tuple[bytes, bytes, bytes, bytes]  # (pk, sk, digest of A's state, of B's)


@dataclass(slots=True)
class _Sighting:
    serial: int  # the completion serial of the session that saw them
    signatures: dict[Signature, frozenset[str]] = field(default_factory=dict)  # -> damaged sides


class VerdictBook:
    """Below-cut differences of the last completed session per (table, region pair), so
    the next session can confirm them. Soft state: losing it costs one more pass."""

    def __init__(self, max_signatures: int = 100_000) -> None:
        self._completed = 0
        self._sightings: dict[tuple[str, str, str], _Sighting] = {}
        self.max_signatures = max_signatures

    def start(self) -> int:
        """A token for a session starting now: sightings recorded by sessions that
        completed before this call can confirm its differences."""
        return self._completed

    def confirmed(self, token: int, table: str, a: str, b: str,
                  signature: Signature) -> frozenset[str] | None:
        """The damaged-side evidence of an earlier sighting of `signature`, or None."""
        sighting = self._sightings.get((table, a, b))
        if sighting is None or sighting.serial > token:
            return None
        return sighting.signatures.get(signature)

    def record(self, table: str,
               pairs: Mapping[tuple[str, str], Mapping[Signature, frozenset[str]]]) -> None:
        """Replace each pair's sightings with those of a session that just completed
        (every pair it compared, including those without any difference)."""
        self._completed += 1
        for (a, b), signatures in pairs.items():
            kept = dict(list(signatures.items())[:self.max_signatures])
            self._sightings[(table, a, b)] = _Sighting(self._completed, kept)

    def forget(self, table: str) -> None:
        for key in [k for k in self._sightings if k[0] == table]:
            del self._sightings[key]
