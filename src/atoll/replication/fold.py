"""Keeping item states bounded (issue 28 item 6): folding the counter contributions of
regions that left the topology, and compacting states every region acknowledged.

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

Compaction. The same region, in the same walk, writes again (itemstate.compaction_write)
the states whose every dot is causally stable (`StableCut`) without the entries that no
longer show and never can again (itemstate.compact explains why that changes no merge
outcome). Being a write with a new dot, the compacted state supersedes every copy of the
old one in the join, so every region ends with the same bytes.

How. `FoldWork` (soft state, held by the core) walks the live items of every live table
in key order, one page of at most `fold_scan_rows` rows at a time, decodes the states
that name a departed region (a fold pass) or every stored state (a compaction sweep, at
most every `compact_interval_ms`, when the stable cut moved), and hands out `FoldItems`
jobs of at most `fold_batch_items` items: one change per job, each item re-read and
re-checked inside the job's transaction. A crash loses only the position: the next pass
starts from the first table again and skips what was done. A fold pass that found
nothing to fold for the same departed regions is the last; a new one starts when the
topology or what is final changes, or after a restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from atoll.clock.hlc import HybridClock
from atoll.invariant import invariant
from atoll.replication import itemstate
from atoll.replication.apply import write_effects
from atoll.replication.change import Change, ItemWrite, Op, encode_change
from atoll.replication.cursors import ZERO, Cursor, Cursors, meet
from atoll.replication.itemstate import Dot, fold_regions, unfolded_regions
from atoll.replication.itemstate.compact import compact, compaction_write
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


def is_stable(state: itemstate.ItemState, stable_hlc: Mapping[str, int]) -> bool:
    """Whether every dot `state` has seen is causally stable (`StableCut`)."""
    return all(hlc <= stable_hlc.get(origin, 0) for origin, hlc in state.ctx.items())


class StableCut:
    """Per origin, the hlc up to which every dot is causally stable: every live region
    holds it, and every state a live region will still send (a change in flight, a later
    write, a snapshot page, a verify repair) has seen it.

    Two rounds of acknowledgements: a peer's Pull carries what it holds and its own
    cursor (its last local change). When the meet M of this region's cursors and every
    peer's acknowledged ones is taken, each peer R held M when it sent its Pull, so R's
    changes after the own cursor q_R it sent were made on states that include M. Once
    a later meet covers every q_R (every region holds R's changes up to q_R), no state
    that misses part of M is left anywhere: M is stable. Soft state: after a restart,
    or while a peer has not been heard from, nothing new becomes stable; a change of the
    topology starts again from nothing (a region that joins writes on what it has
    pulled so far until it has caught up)."""

    def __init__(self) -> None:
        self.stable_hlc: dict[str, int] = {}
        self._candidate: tuple[dict[str, int], dict[str, int]] | None = None
        self._regions: tuple[str, ...] = ()

    def observe(self, region: str, regions: Collection[str], own: Cursors,
                acked: Mapping[str, Cursors]) -> dict[str, int]:
        if tuple(sorted(regions)) != self._regions:
            self._regions = tuple(sorted(regions))
            self.stable_hlc, self._candidate = {}, None
        peers = [peer for peer in regions if peer != region]
        if region not in regions or any(peer not in acked for peer in peers):
            self._candidate = None
            return self.stable_hlc
        vectors = [own, *(acked[peer] for peer in peers)]
        origins = set(own).union(*(acked[peer] for peer in peers))
        now = meet(vectors, origins)
        if self._candidate is not None:
            cut, needed = self._candidate
            if all(now.get(r, ZERO).seq >= seq for r, seq in needed.items()):
                self.stable_hlc = {o: max(hlc, self.stable_hlc.get(o, 0))
                                   for o, hlc in cut.items()}
                self._candidate = None
        if self._candidate is None:
            needed = {peer: acked[peer].get(peer, ZERO).seq for peer in peers}
            needed[region] = own.get(region, ZERO).seq
            self._candidate = ({o: c.hlc for o, c in now.items()}, needed)
        return self.stable_hlc


@dataclass(slots=True)
class FoldStats:
    scanned_rows: int = 0
    folded_items: int = 0
    fold_changes: int = 0
    deferred_items: int = 0  # with writes not yet everywhere when met (a later pass retries)
    compacted_items: int = 0  # stable states written again without what cannot count
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
    compacted: int = 0  # items compacted by the job


@dataclass(frozen=True, slots=True)
class FoldItems:
    """One change of this region's next dot for `keys` (one table's): an item whose
    state still holds an unfolded contribution of `departed`, and whose every write of a
    live region is held by every live region (`settled_hlc`, per origin), is folded; an
    item whose state is causally stable (`stable_hlc`) and holds what cannot count any
    more is compacted (itemstate.compact)."""

    region: str
    clock: HybridClock
    table: str
    keys: tuple[tuple[bytes, bytes], ...]
    departed: tuple[str, ...]
    settled_hlc: Mapping[str, int]
    now_ms: Callable[[], int]
    stable_hlc: Mapping[str, int] = field(default_factory=dict)

    def __call__(self, txn: StoreTxn) -> FoldResult:
        table = txn.table_state(self.table)
        if table is None or not table.live:
            return FoldResult(0, None)
        definition = table.definition or {}
        ops: list[Op] = []
        hlc = deferred = compacted = 0
        for pk, sk in self.keys:
            stored = txn.stored((self.table, pk, sk))
            if stored is None or stored.item is None:
                continue
            key = key_item(definition, pk, sk)
            state = load_state(stored, key.keys())
            regions = [r for r in unfolded_regions(state, ()) if r in self.departed]
            if regions and not is_settled(state, self.settled_hlc):
                deferred += 1
                continue
            stable = not regions and is_stable(state, self.stable_hlc)
            if not regions and not (stable and compact(state) is not state):
                continue
            if not hlc:
                hlc = self.clock.tick()
            dot = Dot(hlc, self.region)
            item: dict[str, Any] | None = stored.item
            if regions:
                new, item = fold_regions(state, stored.item, regions, dot, key)
            else:
                written = compaction_write(state, dot)
                invariant(written is not None, "a compactable state compacts")
                assert written is not None  # for the type checker
                new, compacted = written, compacted + 1
            # always the state's bytes: the row form would say "one whole-item write at
            # this change's version", which a fold or a compaction is not
            ops.append(ItemWrite(self.table, pk, sk, item, None,
                                 itemstate.encode_state(new, item, key.keys())))
        if not ops:
            return FoldResult(0, None, deferred)
        change = Change.create(self.region, txn.cursor_seq(self.region) + 1, hlc, ops)
        write_effects(txn, merge_change(change, txn.stored, txn.table_state), self.now_ms())
        txn.log_changes([(change, encode_change(change))])
        txn.set_cursor(self.region, Cursor(change.seq, hlc))
        return FoldResult(len(ops) - compacted, change, deferred, compacted)


def load_state(stored: Stored, key_names: Collection[str]) -> itemstate.ItemState:
    """The causal state of a stored row (this node's own bytes)."""
    old = itemstate.Stored(stored.state, Dot(stored.version.hlc, stored.version.origin),
                           None if stored.prev is None
                           else Dot(stored.prev.hlc, stored.prev.origin))
    return itemstate.load(old, stored.item, key_names)


class FoldWork:
    """The walk over a region's items (soft state: a restart walks again from the start).

    A pass starts when departed origins became final and were not folded yet (a fold
    pass: only states naming them are decoded), or when the stable cut moved since the
    last sweep and `compact_interval_ms` passed (a sweep: every stored state is decoded
    and compacted if it is stable); a pass does both for what it meets."""

    def __init__(self, region: str, scan_rows: int, batch_items: int, pages_per_step: int,
                 compact_interval_ms: int) -> None:
        self.region = region
        self.scan_rows = scan_rows
        self.batch_items = batch_items
        self.pages_per_step = pages_per_step
        self.compact_interval_ms = compact_interval_ms
        self.stats = FoldStats()
        self.cut = StableCut()
        self._target: tuple[str, ...] = ()  # the departed origins this pass folds
        self._done_for: tuple[str, ...] | None = None
        self._sweeping = False
        self._swept_cut: dict[str, int] = {}
        self._next_sweep_ms = 0
        self._tables: list[str] = []
        self._after: RowKey | None = None
        self._found = 0  # fold candidates found in this pass
        self._settled_hlc: dict[str, int] = {}
        self._stable_hlc: dict[str, int] = {}
        self._pending: deque[tuple[str, tuple[bytes, bytes]]] = deque()

    @property
    def busy(self) -> bool:
        """Whether a pass is under way (the shell asks again without waiting)."""
        return self.stats.state == "scanning"

    def step(self, store: ReplicaStore, regions: Collection[str], acked: Mapping[str, Cursors],
             clock: HybridClock, wall_ms: Callable[[], int], now_ms: int,
             page_rows: int = 0, job_items: int = 0) -> FoldItems | None:
        """The next job, or None (nothing to do now: idle, waiting, done, or a step's
        bounded pages scanned without finding anything). `now_ms`: the shell's time for
        the sweep interval; `wall_ms`: the jobs' wall clock. `page_rows` and `job_items`
        (at most `scan_rows` and `batch_items`; 0: those) size this step's pages and
        its job (the node's shell sizes them by their cost: atoll.replication.pacing)."""
        page_rows = min(page_rows or self.scan_rows, self.scan_rows)
        job_items = min(job_items or self.batch_items, self.batch_items)
        if not self._pending and not self._scan(store, regions, acked, now_ms, page_rows):
            return None
        table = self._pending[0][0]
        keys: list[tuple[bytes, bytes]] = []
        while self._pending and self._pending[0][0] == table and len(keys) < job_items:
            keys.append(self._pending.popleft()[1])
        return FoldItems(self.region, clock, table, tuple(keys), self._target,
                         self._settled_hlc, wall_ms, self._stable_hlc)

    def done(self, result: FoldResult | None) -> None:
        """A job's outcome (None: it failed; the next pass finds its items again)."""
        if result is not None:
            self.stats.folded_items += result.folded
            self.stats.compacted_items += result.compacted
            self.stats.fold_changes += result.change is not None
            self.stats.deferred_items += result.deferred
        else:
            self._found += 1  # not done: the next pass looks again
            self._swept_cut = {}

    def _scan(self, store: ReplicaStore, regions: Collection[str],
              acked: Mapping[str, Cursors], now_ms: int, page_rows: int) -> bool:
        """Scan up to `pages_per_step` pages of `page_rows` rows; True if candidates are
        pending."""
        if not self.stats.state == "scanning" and not self._start(store, regions, acked,
                                                                   now_ms):
            return False
        for _page in range(self.pages_per_step):
            if not self._tables:
                self._end_pass()
                return bool(self._pending)
            table = self._tables[0]
            rows = store.snapshot_rows(table, self._after, page_rows, False)
            self.stats.scanned_rows += len(rows)
            state = store.table_state(table)
            definition = state.definition if state is not None and state.definition else {}
            for row in rows:
                if not row.state or row.item is None or not (
                        self._sweeping or self._names_target(row.state)):
                    continue
                key = key_item(definition, row.pk, row.sk)
                held = itemstate.decode_state(row.state, orjson.loads(row.item), key.keys(),
                                              trusted=True)
                if set(unfolded_regions(held, regions)) & set(self._target):
                    self._pending.append((table, (row.pk, row.sk)))
                    self._found += 1
                elif self._sweeping and is_stable(held, self._stable_hlc) \
                        and compact(held) is not held:
                    self._pending.append((table, (row.pk, row.sk)))
            if len(rows) < page_rows:
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
               acked: Mapping[str, Cursors], now_ms: int) -> bool:
        stats = self.stats
        if not regions or self.region not in regions or folder(regions) != self.region:
            stats.state, stats.departed, stats.waiting_for = "idle", (), ()
            return False
        own = store.cursors()
        departed = tuple(departed_origins(own, regions))
        stats.departed = departed
        final = tuple(final_origins(self.region, regions, departed, own, acked))
        stats.waiting_for = tuple(o for o in departed if o not in final)
        stable = self.cut.observe(self.region, regions, own, acked)
        fold = bool(final) and final != self._done_for
        sweep = len(regions) > 1 and bool(stable) and stable != self._swept_cut \
            and now_ms >= self._next_sweep_ms  # one region alone never holds hidden entries
        if not fold and not sweep:
            stats.state = "waiting" if stats.waiting_for else "done" if departed else "idle"
            return False
        self._target = stats.target = final if fold else ()
        self._sweeping = sweep
        if sweep:
            self._swept_cut = dict(stable)
            self._next_sweep_ms = now_ms + self.compact_interval_ms
        self._stable_hlc = dict(stable)
        self._settled_hlc = settled(self.region, regions, own, acked)
        self._tables = sorted(name for name, s in store.table_states().items() if s.live)
        self._after = None
        self._found = 0
        stats.state = "scanning"
        return True

    def _end_pass(self) -> None:
        self.stats.passes += 1
        if self._target and not self._found:
            self._done_for = self._target
        self.stats.state = "idle"
