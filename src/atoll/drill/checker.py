"""The drill's invariants, checked from the operation record and the regions' final
contents (pure: no I/O).

The workload makes the check exact: every key is written by one client thread only, one
request at a time, with a value never used before (`v`). So for each key the writes are
ordered in real time, and per region the final value must be the last acknowledged
write's — unless
- a write sent after it (whose outcome the client could not know: an error) is what the
  region holds, or
- it was superseded by a concurrent write that won by version and the conflict log
  recorded it as the loser (last writer wins across regions: e.g. after a failover the
  old region's write, or a skewed clock's).
An acknowledged write that satisfies none of these is lost, and is named.

Counters (ADD 1, one thread per counter item): the final value must lie between the
acknowledged increments minus those recorded as conflict losers, and the acknowledged plus
the unknown ones. Reads must return a value that some request wrote (or nothing).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from atoll.drill.workload import WRITE_KINDS, Operation

Finals = dict[str, dict[tuple[str, str], Any]]  # region -> (table, key) -> `v` or number
EXAMPLES = 20  # findings of each kind the summary names


@dataclass
class LostWrite:
    """An acknowledged write a region does not hold (nor anything that may follow it)."""

    region: str
    table: str
    key: str
    acknowledged_value: Any
    held: Any
    kind: str
    acknowledged_at: float
    served_by: str | None


@dataclass
class Divergent:
    table: str
    key: str
    values: dict[str, Any]  # region -> what it holds


@dataclass
class CounterProblem:
    region: str
    table: str
    key: str
    value: int
    acknowledged_increments: int
    unknown: int
    recorded_conflicts: int


@dataclass
class CheckResult:
    lost: list[LostWrite] = field(default_factory=list)  # acknowledged writes missing
    divergent: list[Divergent] = field(default_factory=list)  # keys that differ
    phantom_reads: list[Operation] = field(default_factory=list)
    counter_problems: list[CounterProblem] = field(default_factory=list)
    superseded_by_conflict: int = 0
    acknowledged_writes: int = 0
    counters_checked: int = 0

    @property
    def passed(self) -> bool:
        return not (self.lost or self.divergent or self.phantom_reads or self.counter_problems)

    def summary(self) -> dict[str, Any]:
        return {"passed": self.passed, "acknowledged_writes": self.acknowledged_writes,
                "acknowledged_writes_lost": len(self.lost),
                "divergent_items": len(self.divergent),
                "phantom_reads": len(self.phantom_reads),
                "counter_problems": len(self.counter_problems),
                "counters_checked": self.counters_checked,
                "superseded_by_recorded_conflicts": self.superseded_by_conflict,
                "lost_examples": _examples(self.lost),
                "divergent_examples": _examples(self.divergent),
                "phantom_examples": _examples(self.phantom_reads),
                "counter_examples": _examples(self.counter_problems)}


def _examples(findings: list[Any]) -> list[dict[str, Any]]:
    return [asdict(finding) for finding in findings[:EXAMPLES]]


def check(ops: list[Operation], finals: Finals,
          conflict_losers: list[tuple[str, str, Any]]) -> CheckResult:
    """`finals`: region -> {(table, key): value of `v` (or the counter's number)};
    `conflict_losers`: (table, key, value) of every loser in every region's conflict log
    (one entry per record: two lost increments may carry the same value)."""
    result = CheckResult()
    losers_per_key = Counter(loser[:2] for loser in conflict_losers)
    losers = set(conflict_losers)
    by_key: dict[tuple[str, str], list[Operation]] = defaultdict(list)
    written: dict[tuple[str, str], set[Any]] = defaultdict(set)
    for op in ops:
        if op.kind in WRITE_KINDS or op.kind == "add":
            by_key[(op.table, op.key)].append(op)
            if op.kind in WRITE_KINDS:
                written[(op.table, op.key)].add(op.value)
    # divergence: every region must hold the same value for every key
    keys = set().union(*(set(f) for f in finals.values())) if finals else set()
    for key in sorted(keys):
        values = {region: final.get(key) for region, final in finals.items()}
        if len({repr(v) for v in values.values()}) > 1:
            result.divergent.append(Divergent(key[0], key[1], values))
    for key, key_ops in by_key.items():
        key_ops.sort(key=lambda o: o.t0)
        if key_ops[0].kind == "add":
            _check_counter(key, key_ops, finals, losers_per_key[key], result)
            continue
        acked = [o for o in key_ops if o.ok and _wrote(o)]
        result.acknowledged_writes += len(acked)
        if not acked:
            continue
        last = acked[-1]
        later_values = {o.value for o in key_ops
                        if o.t0 >= last.t1 and o.unknown and o.kind in WRITE_KINDS}
        for region, final in finals.items():
            held = final.get(key)
            if held == last.value or held in later_values:
                continue
            if (key[0], key[1], last.value) in losers:
                result.superseded_by_conflict += 1
                continue
            result.lost.append(LostWrite(region, key[0], key[1], last.value, held, last.kind,
                                         last.t1, last.region))
    for op in ops:
        if op.kind == "get" and op.ok and op.read is not None:
            if op.read not in written[(op.table, op.key)]:
                result.phantom_reads.append(op)
    return result


def _wrote(op: Operation) -> bool:
    return op.kind != "cput" or not op.condition_failed


def _check_counter(key: tuple[str, str], ops: list[Operation], finals: Finals,
                   recorded: int, result: CheckResult) -> None:
    """`recorded`: conflict-log records (all regions) of this counter's losing versions;
    each region that saw a concurrent increment lose records it, so this over-counts
    what was lost, never under-counts: the lower bound stays sound."""
    acked = sum(1 for o in ops if o.ok)
    unknown = sum(1 for o in ops if o.unknown)
    result.counters_checked += 1
    for region, final in finals.items():
        value = int(final.get(key) or 0)
        if not acked - recorded <= value <= acked + unknown:
            result.counter_problems.append(CounterProblem(
                region, key[0], key[1], value, acked, unknown, recorded))
