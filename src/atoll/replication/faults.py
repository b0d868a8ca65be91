"""Deliberate defects, for tests and drills that must prove their checkers can fail.

`DropItemWrites(region, every)` wraps a store's transactions (stores take it as `wrap`):
every Nth replicated item write — a write of a version another region made, by an apply
or a snapshot — is silently not written, while the change is logged and its cursor
advanced as if it had been. A store never runs with it unless it is built with it: the
simulator's and the conformance suite's stores by tests, a node's by its configuration
(`NodeConfig.fault_drop_every`, the hidden `atoll serve --fault-drop-every N`, which
the drill passes for `DrillOptions.fault_drop_every`). `every=0` drops nothing until
`arm(n)`: then the next n replicated item writes are dropped (the simulator's verify
faults drop one chosen change that way).
"""

from __future__ import annotations

from atoll.invariant import invariant
from atoll.replication.change import Change, ItemKey
from atoll.replication.cursors import Cursor
from atoll.replication.merge import Conflict, Stored, TableState
from atoll.replication.store import StoreTxn


class DropItemWrites:
    def __init__(self, region: str, every: int) -> None:
        invariant(every >= 0, "drop every N >= 0 writes (0: only when armed)")
        self.region = region
        self.every = every
        self.seen = 0  # replicated item writes so far
        self.dropped = 0
        self.armed = 0  # the next this many replicated item writes are dropped

    def arm(self, writes: int) -> None:
        invariant(writes > 0, "arm for at least one write")
        self.armed += writes

    def __call__(self, txn: StoreTxn) -> StoreTxn:
        return _DroppingTxn(txn, self)

    def drops(self, stored: Stored) -> bool:
        if stored.version.origin == self.region:
            return False  # this region's own write: not replicated
        self.seen += 1
        if self.armed:
            self.armed -= 1
        elif not self.every or self.seen % self.every:
            return False
        self.dropped += 1
        return True


class _DroppingTxn:
    def __init__(self, txn: StoreTxn, fault: DropItemWrites) -> None:
        self.txn = txn
        self.fault = fault

    def write_item(self, key: ItemKey, stored: Stored) -> None:
        if not self.fault.drops(stored):
            self.txn.write_item(key, stored)

    def cursor_seq(self, origin: str) -> int:
        return self.txn.cursor_seq(origin)

    def table_state(self, table: str) -> TableState | None:
        return self.txn.table_state(table)

    def stored(self, key: ItemKey) -> Stored | None:
        return self.txn.stored(key)

    def set_table_state(self, table: str, state: TableState) -> None:
        self.txn.set_table_state(table, state)

    def record_conflict(self, conflict: Conflict, detected_ms: int) -> None:
        self.txn.record_conflict(conflict, detected_ms)

    def log_changes(self, records: list[tuple[Change, bytes]]) -> None:
        self.txn.log_changes(records)

    def logged_frame(self, origin: str, seq: int) -> bytes | None:
        return self.txn.logged_frame(origin, seq)

    def set_cursor(self, origin: str, cursor: Cursor) -> None:
        self.txn.set_cursor(origin, cursor)

    def purge_log(self, origin: str, through_seq: int, limit: int) -> int:
        return self.txn.purge_log(origin, through_seq, limit)

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        return self.txn.purge_tombstones(below_hlc, limit)
