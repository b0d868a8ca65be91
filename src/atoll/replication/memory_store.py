"""`MemoryStore`: the in-memory `ReplicaStore` (simulator and tests).

Theory of operation: plain dicts. Atomicity comes from an undo log: every mutation of a
write method records the old value, and an exception restores them in reverse, so a
refused call leaves the store exactly as it was. "Durable" means the object survives a
simulated crash: the simulator throws away a region's protocol state, never its store.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from atoll.invariant import invariant
from atoll.replication import itemstate
from atoll.replication.change import Change, ItemKey, ItemWrite, Op, Version
from atoll.replication.cursors import ZERO, Cursor, Cursors, advance
from atoll.replication.errors import OutOfOrder, UnknownTable
from atoll.replication.itemstate import Dot
from atoll.replication.merge import Conflict, Stored, TableState, key_item, merge_change
from atoll.replication.store import ApplyResult, RetentionPlan, Snapshot

_MISSING = object()
MAX_CONFLICTS = 100_000  # the conflict log keeps the newest this many


class MemoryStore:
    def __init__(self, region: str, max_conflicts: int = MAX_CONFLICTS) -> None:
        self._region = region
        self.items: dict[ItemKey, Stored] = {}
        self.tables: dict[str, TableState] = {}
        self._cursors: dict[str, Cursor] = {}
        self._log: dict[str, dict[int, tuple[int, Change]]] = {}  # origin -> seq -> (pos, change)
        self._log_start: dict[str, int] = {}
        self._next_pos = 0
        self._conflicts: list[Conflict] = []
        self._max_conflicts = max_conflicts
        self._undo: list[tuple[Any, Any, Any]] | None = None
        # For checkers: tombstones retention deleted (they had reached every region).
        self.purged_tombstones: deque[tuple[ItemKey, Version]] = deque(maxlen=max_conflicts)

    @property
    def region(self) -> str:
        return self._region

    # --- reads -------------------------------------------------------------------------
    def cursors(self) -> dict[str, Cursor]:
        return dict(self._cursors)

    def table_state(self, table: str) -> TableState | None:
        return self.tables.get(table)

    def stored(self, key: ItemKey) -> Stored | None:
        return self.items.get(key)

    def changes_since(self, cursors: Cursors, limit: int) -> list[Change]:
        picked: list[tuple[int, Change]] = []
        for origin, log in self._log.items():
            after = cursors.get(origin, ZERO).seq
            last = self._cursors.get(origin, ZERO).seq
            start = max(after, self._log_start.get(origin, 0)) + 1
            for seq in range(start, min(last, start + limit - 1) + 1):
                picked.append(log[seq])
        picked.sort(key=lambda entry: entry[0])
        return [change for _, change in picked[:limit]]

    def log_start(self) -> dict[str, int]:
        return dict(self._log_start)

    def conflicts(self) -> list[Conflict]:
        return list(self._conflicts)

    def snapshot(self) -> Snapshot:
        tables = {name: state for name, state in self.tables.items() if state.live}
        items = {key: s for key, s in self.items.items() if s.item is not None}
        return Snapshot(tables, items)

    def logged_seqs(self, origin: str) -> list[int]:
        return sorted(self._log.get(origin, {}))

    def log_size(self) -> int:
        return sum(len(log) for log in self._log.values())

    def tombstones(self) -> int:
        return sum(1 for s in self.items.values() if s.item is None)

    # --- writes ------------------------------------------------------------------------
    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        def body() -> ApplyResult:
            applied = duplicates = 0
            conflicts: list[Conflict] = []
            for change in changes:
                cursor = self._cursors.get(change.origin, ZERO)
                if change.seq <= cursor.seq:
                    duplicates += 1
                    continue
                if change.seq != cursor.seq + 1:
                    raise OutOfOrder(f"{change.origin}/{change.seq} after cursor {cursor.seq}")
                conflicts.extend(self._apply_one(change))
                applied += 1
            return ApplyResult(applied, duplicates, tuple(conflicts))
        return self._atomically(body)

    def local_write(self, hlc: int, ops: Sequence[Op]) -> Change:
        own = self._cursors.get(self._region, ZERO)
        if hlc <= own.hlc:
            raise OutOfOrder(f"local hlc {hlc} is not above the last one {own.hlc}")
        filled: list[Op] = []
        for op in ops:
            if isinstance(op, ItemWrite):
                state = self.tables.get(op.table)
                if state is None or not state.live:
                    raise UnknownTable(op.table)
                op = local_item_write(self.items.get(op.key), op, hlc, self._region,
                                      state.definition or {})
            filled.append(op)
        change = Change.create(self._region, own.seq + 1, hlc, filled)
        self._atomically(lambda: self._apply_one(change))
        return change

    def purge(self, plan: RetentionPlan, limit: int) -> int:
        purged = 0
        for origin, through in sorted(plan.purge_through.items()):
            invariant(through <= self._cursors.get(origin, ZERO).seq, "purge past the cursor")
            log = self._log.get(origin, {})
            seq = self._log_start.get(origin, 0)
            while seq < through and purged < limit:
                seq += 1
                del log[seq]
                purged += 1
            self._log_start[origin] = seq
        for key in [k for k, s in self.items.items()
                    if s.item is None and s.version.hlc < plan.tombstone_horizon_hlc]:
            if purged >= limit:
                break
            self.purged_tombstones.append((key, self.items.pop(key).version))
            purged += 1
        return purged

    # --- internals ---------------------------------------------------------------------
    def _apply_one(self, change: Change) -> list[Conflict]:
        effects = merge_change(change, self.items.get, self.tables.get)
        for name, state in effects.tables.items():
            self._set(self.tables, name, state)
        for name in effects.dropped_tables:
            for key in [k for k in self.items if k[0] == name]:
                self._set(self.items, key, _MISSING)
        for key, stored in effects.items.items():
            self._set(self.items, key, stored)
        if effects.conflicts:
            self._record_conflicts(effects.conflicts)
        log = self._log.setdefault(change.origin, {})
        self._set(log, change.seq, (self._next_pos, change))
        self._next_pos += 1
        cursors = dict(self._cursors)
        advance(cursors, change.origin, change.seq, change.hlc)
        self._set(self._cursors, change.origin, cursors[change.origin])
        return effects.conflicts

    def _record_conflicts(self, conflicts: list[Conflict]) -> None:
        before = list(self._conflicts)
        self._conflicts.extend(conflicts)
        del self._conflicts[:-self._max_conflicts]
        invariant(self._undo is not None, "conflicts recorded outside a transaction")
        assert self._undo is not None
        self._undo.append((_ListBox(self._conflicts), None, before))

    def _set(self, target: dict[Any, Any], key: Any, value: Any) -> None:
        invariant(self._undo is not None, "store mutated outside a transaction")
        assert self._undo is not None
        self._undo.append((target, key, target.get(key, _MISSING)))
        if value is _MISSING:
            target.pop(key, None)
        else:
            target[key] = value

    def _atomically(self, body: Callable[[], Any]) -> Any:
        invariant(self._undo is None, "nested store transaction")
        self._undo = []
        try:
            result = body()
        except BaseException:
            for target, key, old in reversed(self._undo):
                if isinstance(target, _ListBox):
                    target.items[:] = old
                elif old is _MISSING:
                    target.pop(key, None)
                else:
                    target[key] = old
            raise
        finally:
            self._undo = None
        return result


class _ListBox:
    """Undo entry for the conflict list (restored as a whole)."""

    def __init__(self, items: list[Conflict]) -> None:
        self.items = items


def local_item_write(stored: Stored | None, op: ItemWrite, hlc: int, region: str,
                     definition: dict[str, Any]) -> ItemWrite:
    """A local whole-item write (a put of `op.item`, or a delete) made through the item's
    causal state (atoll.replication.itemstate), as the engine's writes are: the op with
    the new state and, in the row form, the `prev` that rebuilds it."""
    key = key_item(definition, op.pk, op.sk)
    old = None if stored is None else itemstate.Stored(
        stored.state, Dot(stored.version.hlc, stored.version.origin),
        None if stored.prev is None else Dot(stored.prev.hlc, stored.prev.origin))
    dot = Dot(hlc, region)
    item = op.item
    if item is None:
        new = itemstate.delete_stored(old, dot)
    else:
        new, item = itemstate.put_stored(old, item, key.keys(), dot)
    prev = None if new.prev is None else Version(new.prev.hlc, new.prev.region)
    return dataclasses.replace(op, item=item, prev=prev, state=new.data)
