"""Folding the counter contributions of regions that left the topology (issue 28 item 6).

Theory of operation: a counter's state keeps one contribution per region that ever
incremented it (itemstate). When a region X leaves the topology its contributions stop
growing, but every item it incremented still carries them; the fold moves them into the
items' values so that nothing about X adds to a counter any more.

Who and when. One region folds: the lowest-named region of the topology (`folder`), and
only once it holds every change of X that any live region acknowledged holding: its own
cursor for X is at or above every live peer's acknowledged cursor for X (`final_origins`;
a peer that has not acknowledged anything since this region started holds it back). So
the fold sees X's contributions as far as any region has them.

What. Each fold is an ordinary local write of that region (itemstate.fold_regions), a
change replicated like any other: the attribute's value becomes an entry of the fold's
dot holding the visible number, and X's floors rise to its sums, so readers see the
same number. An item is folded only once it is settled: every write of a live region
its state has seen is held by every live region (`settled`: per origin, the meet of
this region's cursors and the cursors every peer acknowledged). Then the fold commutes
with what can still arrive: an increment concurrent with it lives in its own region's
contribution and still counts; a copy of the state that has not seen the fold joins
X's contribution under the raised floors (max), so X adds nothing twice; a write made
concurrently that resets the counter (SET, REMOVE, PutItem, DeleteItem) had seen all of
X's increments (they were everywhere), so it resets them whichever way (hlc, region)
decides between it and the fold — only its own value can lose to the fold's, as any
two concurrent writes of one attribute, and the loss is in the conflict log. Without
settling, a PutItem concurrent with X's last increments and newer than the fold would
hide the fold's entry and lose those increments (tests/properties/test_fold_laws.py).

How. `FoldWork` (soft state, held by the core) walks the live items of every live table
in key order, one page of at most `fold_scan_rows` rows at a time, decodes the states
that name a departed region, and hands out `FoldItems` jobs of at most
`fold_batch_items` items: one change per job, each item re-read and re-checked inside the
job's transaction. A crash loses only the position: the next pass starts from the first
table again and skips what was folded (nothing of X adds any more). A pass that found
nothing to fold for the same departed regions is the last; a new one starts when the
topology or what is final changes, or after a restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import orjson

from atoll.clock.hlc import HybridClock
from atoll.replication import itemstate
from atoll.replication.apply import write_effects
from atoll.replication.change import Change, ItemWrite, Op, Version, encode_change
from atoll.replication.cursors import ZERO, Cursor, Cursors, meet
from atoll.replication.itemstate import Dot, fold_regions, unfolded_regions
from atoll.replication.merge import Stored, key_item, merge_change
from atoll.replication.store import ReplicaStore, RowKey, StoreTxn


def departed_origins(cursors: Mapping[str, Cursor], regions: Collection[str]) -> list[str]:
    """Origins this region holds changes of that are not in the topology, sorted."""
    return sorted(origin for origin in cursors if origin not in regions)


def folder(regions: Collection[str]) -> str:
    """The region that folds: the lowest-named one of the topology."""
    return min(regions)


def final_origins(region: str, regions: Collection[str], departed: Collection[str],
                  own: Cursors, acked: Mapping[str, Cursors]) -> list[str]:
    """The departed origins whose changes this region holds at least as far as every
    live peer acknowledged holding them (a peer not heard from holds all back)."""
    peers = [peer for peer in regions if peer != region]
    if any(peer not in acked for peer in peers):
        return []
    return [origin for origin in departed
            if all(acked[peer].get(origin, ZERO).seq <= own.get(origin, ZERO).seq
                   for peer in peers)]


def settled(region: str, regions: Collection[str], own: Cursors,
            acked: Mapping[str, Cursors]) -> dict[str, int]:
    """Per live origin, the hlc up to which every live region holds its changes (the
    meet of this region's cursors and those every peer acknowledged): a write of origin
    O with an hlc at or below it is everywhere (an origin's changes are numbered in hlc
    order)."""
    vectors = [own, *(acked.get(peer, {}) for peer in regions if peer != region)]
    return {origin: cursor.hlc for origin, cursor in meet(vectors, regions).items()}


def is_settled(state: itemstate.ItemState, settled_hlc: Mapping[str, int]) -> bool:
    """Whether every write of a live region that `state` has seen is held everywhere
    (writes of departed regions are not asked about: `final_origins` covers them)."""
    return all(hlc <= settled_hlc[origin] for origin, hlc in state.ctx.items()
               if origin in settled_hlc)


@dataclass(slots=True)
class FoldStats:
    scanned_rows: int = 0
    folded_items: int = 0
    fold_changes: int = 0
    deferred_items: int = 0  # with writes not yet everywhere when met (a later pass retries)
    passes: int = 0  # passes completed
    state: str = "idle"  # idle | scanning | waiting (X not final yet) | done
    departed: tuple[str, ...] = ()  # origins held here that are not in the topology
    target: tuple[str, ...] = ()  # those the current or last pass folds
    waiting_for: tuple[str, ...] = ()  # departed, not final here yet


@dataclass(frozen=True, slots=True)
class FoldResult:
    folded: int  # items folded by the job (0: all were folded or gone meanwhile)
    change: Change | None
    deferred: int = 0  # items with writes not yet held everywhere: left for a later pass


@dataclass(frozen=True, slots=True)
class FoldItems:
    """One fold change: each of `keys` (one table's) whose state still holds an unfolded
    contribution of `departed`, and whose every write of a live region is held by every
    live region (`settled_hlc`, per origin), is folded at this region's next dot."""

    region: str
    clock: HybridClock
    table: str
    keys: tuple[tuple[bytes, bytes], ...]
    departed: tuple[str, ...]
    settled_hlc: Mapping[str, int]
    now_ms: Callable[[], int]

    def __call__(self, txn: StoreTxn) -> FoldResult:
        table = txn.table_state(self.table)
        if table is None or not table.live:
            return FoldResult(0, None)
        definition = table.definition or {}
        ops: list[Op] = []
        hlc = deferred = 0
        for pk, sk in self.keys:
            stored = txn.stored((self.table, pk, sk))
            if stored is None or stored.item is None:
                continue
            key = key_item(definition, pk, sk)
            state = load_state(stored, key.keys())
            regions = [r for r in unfolded_regions(state, ()) if r in self.departed]
            if not regions:
                continue
            if not is_settled(state, self.settled_hlc):
                deferred += 1
                continue
            if not hlc:
                hlc = self.clock.tick()
            new, item = fold_regions(state, stored.item, regions, Dot(hlc, self.region), key)
            form = itemstate.store(new, item, key.keys())
            prev = None if form.prev is None else Version(form.prev.hlc, form.prev.region)
            ops.append(ItemWrite(self.table, pk, sk, item, prev, form.data))
        if not ops:
            return FoldResult(0, None, deferred)
        change = Change.create(self.region, txn.cursor_seq(self.region) + 1, hlc, ops)
        write_effects(txn, merge_change(change, txn.stored, txn.table_state), self.now_ms())
        txn.log_changes([(change, encode_change(change))])
        txn.set_cursor(self.region, Cursor(change.seq, hlc))
        return FoldResult(len(ops), change, deferred)


def load_state(stored: Stored, key_names: Collection[str]) -> itemstate.ItemState:
    """The causal state of a stored row (this node's own bytes)."""
    old = itemstate.Stored(stored.state, Dot(stored.version.hlc, stored.version.origin),
                           None if stored.prev is None
                           else Dot(stored.prev.hlc, stored.prev.origin))
    return itemstate.load(old, stored.item, key_names)


class FoldWork:
    """The walk over a region's items (soft state: a restart walks again from the start)."""

    def __init__(self, region: str, scan_rows: int, batch_items: int,
                 pages_per_step: int) -> None:
        self.region = region
        self.scan_rows = scan_rows
        self.batch_items = batch_items
        self.pages_per_step = pages_per_step
        self.stats = FoldStats()
        self._target: tuple[str, ...] = ()  # the departed origins this pass folds
        self._done_for: tuple[str, ...] | None = None
        self._tables: list[str] = []
        self._after: RowKey | None = None
        self._found = 0  # candidates found in this pass
        self._settled_hlc: dict[str, int] = {}
        self._pending: deque[tuple[str, tuple[bytes, bytes]]] = deque()

    @property
    def busy(self) -> bool:
        """Whether a pass is under way (the shell asks again without waiting)."""
        return self.stats.state == "scanning"

    def step(self, store: ReplicaStore, regions: Collection[str], acked: Mapping[str, Cursors],
             clock: HybridClock, now_ms: Callable[[], int]) -> FoldItems | None:
        """The next fold job, or None (nothing to fold now: idle, waiting, done, or a
        step's bounded pages scanned without finding any)."""
        if not self._pending and not self._scan(store, regions, acked):
            return None
        table = self._pending[0][0]
        keys: list[tuple[bytes, bytes]] = []
        while self._pending and self._pending[0][0] == table and len(keys) < self.batch_items:
            keys.append(self._pending.popleft()[1])
        return FoldItems(self.region, clock, table, tuple(keys), self._target,
                         self._settled_hlc, now_ms)

    def done(self, result: FoldResult | None) -> None:
        """A fold job's outcome (None: it failed; the next pass finds its items again)."""
        if result is not None:
            self.stats.folded_items += result.folded
            self.stats.fold_changes += result.change is not None
            self.stats.deferred_items += result.deferred
        else:
            self._found += 1  # not done: the next pass looks again

    def _scan(self, store: ReplicaStore, regions: Collection[str],
              acked: Mapping[str, Cursors]) -> bool:
        """Scan up to `pages_per_step` pages; True if candidates are pending."""
        if not self.stats.state == "scanning" and not self._start(store, regions, acked):
            return False
        for _page in range(self.pages_per_step):
            if not self._tables:
                self._end_pass()
                return bool(self._pending)
            table = self._tables[0]
            rows = store.snapshot_rows(table, self._after, self.scan_rows, False)
            self.stats.scanned_rows += len(rows)
            state = store.table_state(table)
            definition = state.definition if state is not None and state.definition else {}
            for row in rows:
                if row.state and self._names_target(row.state) and row.item is not None:
                    key = key_item(definition, row.pk, row.sk)
                    held = itemstate.decode_state(row.state, orjson.loads(row.item), key.keys(),
                                                  trusted=True)
                    if set(unfolded_regions(held, regions)) & set(self._target):
                        self._pending.append((table, (row.pk, row.sk)))
                        self._found += 1
            if len(rows) < self.scan_rows:
                self._tables.pop(0)
                self._after = None
            else:
                self._after = (rows[-1].h, rows[-1].pk, rows[-1].sk)
            if self._pending:
                return True
        return False

    def _names_target(self, data: bytes) -> bool:
        return b'"n":' in data and any(b'"%s"' % origin.encode() in data
                                       for origin in self._target)

    def _start(self, store: ReplicaStore, regions: Collection[str],
               acked: Mapping[str, Cursors]) -> bool:
        stats = self.stats
        if not regions or self.region not in regions or folder(regions) != self.region:
            stats.state, stats.departed, stats.waiting_for = "idle", (), ()
            return False
        own = store.cursors()
        departed = tuple(departed_origins(own, regions))
        stats.departed = departed
        final = tuple(final_origins(self.region, regions, departed, own, acked))
        stats.waiting_for = tuple(o for o in departed if o not in final)
        if not final:
            stats.state = "waiting" if departed else "idle"
            return False
        if final == self._done_for:
            stats.state = "waiting" if stats.waiting_for else "done"
            return False
        self._target = stats.target = final
        self._settled_hlc = settled(self.region, regions, own, acked)
        self._tables = sorted(name for name, s in store.table_states().items() if s.live)
        self._after = None
        self._found = 0
        stats.state = "scanning"
        return True

    def _end_pass(self) -> None:
        self.stats.passes += 1
        if not self._found:
            self._done_for = self._target
        self.stats.state = "idle"

