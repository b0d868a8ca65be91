"""Repair planning: which version of a DIVERGED key wins, and what to write where.

Theory of operation: the winner is chosen by the merge rule itself
(`VersionScheme.supersedes`, today `atoll.replication.merge.decide`) over every state the
session saw for the key, live items and tombstones alike — exactly the version each
region would keep had it received every other region's version by replication. So a
region missing a newer version receives it, a region holding a version nobody else has
keeps it and pushes it, and no acknowledged write is lost that replication would have
kept. The winning version is sent whole (fetched from a region that holds it and checked
against the content hash it listed), with the row's causal metadata (`Entry.causal`,
opaque here: the store writes it as it writes the item), and applied at each target by
`repair_applies`: only if the target still holds what verify saw there (a compare-and-set
on the row's leaf hash), or if the merge rule prefers the winner to whatever is there
now. Applying a repair twice changes nothing the second time (idempotent).

Equal versions with different contents cannot come from replication (one change, one
content): the good copy is the one whose stored checksum passes, else the one whose
bucket the scrub did not find changed behind Atoll's back, else the majority; if that
still leaves a tie, the key is reported unrepairable rather than guessed.

When the newest version is a tombstone, the regions holding a live item get the
tombstone; regions with no item need nothing. A live item present in one region while
every other holds nothing (its tombstone purged everywhere) is pushed back: with no
version to compare, the merge rule keeps the only one there is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from atoll.antientropy.hashing import leaf_hash
from atoll.antientropy.messages import Listed
from atoll.antientropy.store import ALREADY, APPLIED, SKIPPED, Entry, RepairRecord
from atoll.antientropy.verdict import agree, readable
from atoll.antientropy.versions import VersionScheme


@dataclass(frozen=True, slots=True)
class KeyRepair:
    """The winner of one key and the regions that must receive it."""

    pk: bytes
    sk: bytes
    winner: Listed
    source: str
    targets: tuple[tuple[str, int, str, bool], ...]  # (region, replaces leaf, reason, conflict)


@dataclass(frozen=True, slots=True)
class Unrepairable:
    pk: bytes
    sk: bytes
    reason: str


def choose_winner(states: Mapping[str, Listed | None], scheme: VersionScheme,
                  damaged: frozenset[str] = frozenset()) -> tuple[str, Listed] | str:
    """(source region, winning state) over `states`, or why no winner can be chosen."""
    present = sorted((region, s) for region, s in states.items()
                     if s is not None and readable(s.version, scheme))
    if not present:
        return "no region holds a readable version of the key"
    top = present[0][1].version
    for _, state in present[1:]:
        if state.version != top and scheme.supersedes(state.version, top):
            top = state.version
    holders = [(region, s) for region, s in present if s.version == top]
    if len(_contents(holders)) > 1:
        holders = _prefer([(r, s) for r, s in holders if s.intact], holders)
    if len(_contents(holders)) > 1:
        holders = _prefer([(r, s) for r, s in holders if r not in damaged], holders)
    if len(_contents(holders)) > 1:
        holders = _majority(holders)
    if len(_contents(holders)) != 1:
        return "the newest version has different contents in different regions"
    region, state = holders[0]
    if state.content is not None and not state.intact:
        return "the only copy of the newest version fails its checksum"
    return region, state


Holders = list[tuple[str, Listed]]


def _contents(holders: Holders) -> set[tuple[bytes | None, bool]]:
    return {(s.content, s.intact) for _, s in holders}


def _prefer(better: Holders, holders: Holders) -> Holders:
    return better or holders


def _majority(holders: Holders) -> Holders:
    counts: dict[tuple[bytes | None, bool], int] = {}
    for _, state in holders:
        key = (state.content, state.intact)
        counts[key] = counts.get(key, 0) + 1
    best = max(counts.values())
    winners = [key for key, count in counts.items() if count == best]
    if len(winners) != 1:
        return holders
    return [(r, s) for r, s in holders if (s.content, s.intact) == winners[0]]


def plan_key(table: str, pk: bytes, sk: bytes, states: Mapping[str, Listed | None],
             targets: Sequence[str], scheme: VersionScheme,
             damaged: frozenset[str] = frozenset()) -> KeyRepair | Unrepairable | None:
    """The repair of one key over `states` (every region the session saw), writing only
    to `targets` (the regions of the pairs that DIVERGED on it); None if none needs it."""
    chosen = choose_winner(states, scheme, damaged)
    if isinstance(chosen, str):
        return Unrepairable(pk, sk, chosen)
    source, winner = chosen
    planned = []
    for region in sorted(set(targets)):
        state = states.get(region)
        if agree(state, winner) or (winner.content is None and _no_item(state)):
            continue
        replaces = 0 if state is None else _leaf(table, state)
        conflict = (state is not None and state.version != winner.version
                    and readable(state.version, scheme)
                    and scheme.concurrent(winner.version, state.version))
        planned.append((region, replaces, _reason(state, winner), conflict))
    if not planned:
        return None
    return KeyRepair(pk, sk, winner, source, tuple(planned))


def _no_item(state: Listed | None) -> bool:
    return state is None or state.content is None


def _leaf(table: str, state: Listed) -> int:
    return leaf_hash(table, state.pk, state.sk, state.version, state.content)


def _reason(state: Listed | None, winner: Listed) -> str:
    if state is None or (state.content is None and winner.content is not None):
        return "missing"
    if winner.content is None:
        return "deleted"
    if state.version == winner.version:
        return "corrupt" if not state.intact else "content"
    return "older"


def records_for(table: str, repair: KeyRepair, item: bytes | None, causal: bytes = b""
                ) -> list[tuple[str, RepairRecord]]:
    """(target region, record) for each target, with the winner's fetched bytes and
    causal metadata."""
    return [(region, RepairRecord(table, repair.pk, repair.sk, repair.winner.version, item,
                                  repair.source, replaces, reason, conflict, causal))
            for region, replaces, reason, conflict in repair.targets]


def repair_applies(record: RepairRecord, current: Entry | None, scheme: VersionScheme) -> str:
    """What a store does with `record` given the key's row now (inside its transaction):
    APPLIED (write the record), ALREADY (the row already is the winner) or SKIPPED."""
    table = record.table
    winner_leaf = Entry(record.pk, record.sk, record.version, record.item).leaf(table)
    current_leaf = 0 if current is None else current.leaf(table)
    if current_leaf == winner_leaf and (current is None or current.intact):
        return ALREADY
    newer = (current is not None and current.intact and readable(current.version, scheme)
             and scheme.supersedes(record.version, current.version))
    if record.item is None and (current is None or current.item is None):
        # No item either way; a newer tombstone is still written: it keeps the newest
        # delete's version.
        return APPLIED if newer else ALREADY
    if current_leaf == record.replaces:
        return APPLIED  # the row is still what verify saw and judged
    return APPLIED if newer else SKIPPED
