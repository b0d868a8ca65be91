"""A few regions writing one item and exchanging its state: the item state's test bed.

Each region has its own hybrid logical clock over a shared simulated time plus its own
skew (hours, if a test wants), its state of the item and its visible item. A step is a
local write — PutItem, DeleteItem, or an UpdateItem evaluated by the real expression
evaluator and classified by the real `attribute_writes` — or a sync (one region joins
another's state, as a receiver applies a change), or time passing. Every state a step
produces is kept, so laws can be checked over everything that was reachable.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from atoll import expressions as ex
from atoll.clock.hlc import HybridClock
from atoll.errors import ValidationError
from atoll.expressions.attrwrites import attribute_writes
from atoll.model.values import check_item
from atoll.replication.itemstate import (
    Conflict,
    Dot,
    ItemState,
    delete,
    join,
    join_conflicts,
    materialize,
    put,
    update,
)
from atoll.replication.itemstate.state import canonical_set, empty_state

REGIONS = ("a", "b", "c")
KEY = {"pk": {"S": "k"}}
KEY_NAMES = frozenset(KEY)
HOUR_MS = 3_600_000

# UpdateExpressions over attributes x, y (scalars), n (a number), s (a string set), m (a map)
UPDATES = (
    "SET x = :v", "SET y = :w", "REMOVE x", "REMOVE y", "SET x = :v, y = :w",
    "ADD n :d", "SET n = n + :d", "SET n = n - :d", "SET n = :d + n",
    "SET n = if_not_exists(n, :zero) + :d", "SET n = :num", "REMOVE n", "SET n = :num ADD s :ss",
    "ADD s :ss", "DELETE s :ss", "SET s = :ss", "REMOVE s", "SET x = :v ADD n :d",
    "SET m = :map", "SET m.a = :v", "REMOVE m.a", "SET x = n", "ADD x :d", "SET n = :v",
    "SET s = :v", "ADD n :d", "SET n = n + :d",
)
TEXTS = ({"S": "p"}, {"S": "q"}, {"N": "7"}, {"BOOL": True}, {"L": [{"S": "l"}]})
DELTAS = ("1", "-1", "2.5", "-0.5", "100", "0", "999999999999999999", "-1000000000000000000")
MEMBERS = ("e", "f", "g")


@st.composite
def update_values(draw: st.DrawFn) -> dict[str, Any]:
    return {
        ":v": draw(st.sampled_from(TEXTS)),
        ":w": draw(st.sampled_from(TEXTS)),
        ":d": {"N": draw(st.sampled_from(DELTAS))},
        ":num": {"N": draw(st.sampled_from(("0", "3", "-4.25")))},
        ":zero": {"N": "0"},
        ":ss": {"SS": draw(st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=3,
                                    unique=True))},
        ":map": {"M": {"a": draw(st.sampled_from(TEXTS))}},
    }


put_items = st.fixed_dictionaries({}, optional={
    "x": st.sampled_from(TEXTS), "y": st.sampled_from(TEXTS),
    "n": st.sampled_from(({"N": "1"}, {"N": "-2"})),
    "s": st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=3, unique=True).map(
        lambda members: {"SS": members}),
}).map(lambda attrs: {**KEY, **attrs})

regions = st.sampled_from(REGIONS)
_updates = st.tuples(st.just("update"), regions, st.sampled_from(UPDATES), update_values())
_syncs = st.tuples(st.just("sync"), regions, regions)
steps = st.one_of(  # weighted: updates and exchanges are where the merge rules differ
    st.tuples(st.just("put"), regions, put_items),
    st.tuples(st.just("delete"), regions),
    _updates, _updates, _updates, _updates,
    _syncs, _syncs, _syncs,
    st.tuples(st.just("wait"), st.sampled_from((1, 1500, 60_000))),
)
skews = st.fixed_dictionaries({region: st.sampled_from((0, 0, HOUR_MS, -HOUR_MS, 250))
                               for region in REGIONS})


def canonical_item(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """`item` with its top-level sets as a materialized item lists them."""
    if item is None:
        return None
    return {name: canonical_set(value) if next(iter(value)) in ("SS", "NS", "BS") else value
            for name, value in item.items()}


@dataclass
class Region:
    name: str
    clock: HybridClock
    state: ItemState | None = None
    item: dict[str, Any] | None = None


@dataclass
class Write:
    """A local write: its dot and the state its writer held when it wrote."""

    dot: Dot
    kind: str
    before: ItemState | None
    after: ItemState


@dataclass
class World:
    skew_ms: dict[str, int]
    opt_out: bool = False  # the table's whole-item rule: every UpdateItem is a put
    now_ms: int = 1_700_000_000_000
    regions: dict[str, Region] = field(default_factory=dict)
    produced: list[ItemState] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    conflicts: dict[str, list[Conflict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in REGIONS:
            self.regions[name] = Region(name, HybridClock(self._clock_of(name)))
            self.conflicts[name] = []

    def _clock_of(self, name: str) -> Any:
        return lambda: self.now_ms + self.skew_ms[name]

    def clone(self) -> World:
        """A world that goes on independently from this one's present: its own clocks
        (at the same readings) over its own time. States and conflicts are immutable and
        shared; `copy.deepcopy` cannot copy the compiled build's clocks, and would keep
        the copied clocks reading this world's time."""
        twin = World(dict(self.skew_ms), self.opt_out, self.now_ms)
        for name, region in self.regions.items():
            mine = twin.regions[name]
            mine.clock.restore(region.clock.last)
            mine.state = region.state
            mine.item = copy.deepcopy(region.item)
        twin.produced = list(self.produced)
        twin.writes = list(self.writes)
        twin.conflicts = {name: list(found) for name, found in self.conflicts.items()}
        return twin

    def run(self, plan: list[tuple[Any, ...]]) -> World:
        for step in plan:
            self.step(step)
        return self

    def step(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        self.now_ms += 1
        if kind == "wait":
            self.now_ms += step[1]
        elif kind == "sync":
            self.sync(step[1], step[2])
        elif kind == "put":
            self.put(step[1], dict(step[2]))
        elif kind == "delete":
            self.delete(step[1])
        else:
            self.update(step[1], step[2], step[3])

    def _dot(self, region: Region) -> Dot:
        return Dot(region.clock.tick(), region.name)

    def _record(self, region: Region, kind: str, dot: Dot, before: ItemState | None) -> None:
        assert region.state is not None
        self.produced.append(region.state)
        self.writes.append(Write(dot, kind, before, region.state))
        assert canonical_item(materialize(region.state, KEY)) == region.item

    def put(self, name: str, item: dict[str, Any]) -> None:
        region = self.regions[name]
        before, dot = region.state, self._dot(region)
        region.state, region.item = put(before, item, KEY_NAMES, dot)
        self._record(region, "put", dot, before)

    def delete(self, name: str) -> None:
        region = self.regions[name]
        before, dot = region.state, self._dot(region)
        region.state, region.item = delete(before, dot), None
        self._record(region, "delete", dot, before)

    def update(self, name: str, text: str, values: dict[str, Any]) -> bool:
        """UpdateItem `text`; False when DynamoDB would refuse it (nothing written)."""
        region = self.regions[name]
        parsed = ex.parse_update(text)
        old = region.item
        used = {k: v for k, v in values.items() if k in parsed.values_used}
        try:
            new, _paths = ex.apply_update(parsed, old if old is not None else dict(KEY), {},
                                          used, item_exists=old is not None)
            check_item(new)
        except ValidationError:
            return False
        before, dot = region.state, self._dot(region)
        if self.opt_out:
            region.state, region.item = put(before, new, KEY_NAMES, dot)
            self._record(region, "put", dot, before)
            return True
        writes = attribute_writes(parsed, {}, used, old, new)
        region.state, region.item = update(before, old, writes, dot, KEY)
        assert region.item == canonical_item(new), (text, used, old, new, region.item)
        self._record(region, "update", dot, before)
        return True

    def sync(self, dst_name: str, src_name: str) -> None:
        dst, src = self.regions[dst_name], self.regions[src_name]
        if src.state is None or dst is src:
            return
        local = dst.state if dst.state is not None else empty_state()
        joined = join(local, src.state)
        dst.clock.observe(max(src.state.ctx.values()))
        self.conflicts[dst_name] += join_conflicts(local, joined, KEY)
        dst.state, dst.item = joined, materialize(joined, KEY)
        self.produced.append(joined)

    def sync_all(self) -> None:
        """Every region ends holding every write."""
        for _ in range(2):
            for dst in REGIONS:
                for src in REGIONS:
                    self.sync(dst, src)


def join_in_any_order(states: list[ItemState], order: random.Random) -> ItemState:
    """The join of `states` taken in an order `order` shuffles (they must all agree)."""
    shuffled = list(states)
    order.shuffle(shuffled)
    result = shuffled[0]
    for state in shuffled[1:]:
        result = join(result, state)
    return result
