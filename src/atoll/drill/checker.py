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
from dataclasses import dataclass, field
from typing import Any

# what an op record holds (dicts, so the record can be written as JSON)
#   {"t0": sent, "t1": done, "kind": "put|update|delete|cput|add|get|query",
#    "table": str, "key": str, "value": str|None, "ok": bool, "unknown": bool,
#    "read": str|None (get), "client": "failover|naive", "region": str|None, "error": str}

WRITE_KINDS = ("put", "update", "delete", "cput")


@dataclass
class CheckResult:
    lost: list[dict[str, Any]] = field(default_factory=list)  # acknowledged writes missing
    divergent: list[dict[str, Any]] = field(default_factory=list)  # keys that differ
    phantom_reads: list[dict[str, Any]] = field(default_factory=list)
    counter_problems: list[dict[str, Any]] = field(default_factory=list)
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
                "lost_examples": self.lost[:20], "divergent_examples": self.divergent[:20],
                "phantom_examples": self.phantom_reads[:20],
                "counter_examples": self.counter_problems[:20]}


def check(ops: list[dict[str, Any]], finals: dict[str, dict[tuple[str, str], Any]],
          conflict_losers: list[tuple[str, str, Any]]) -> CheckResult:
    """`finals`: region -> {(table, key): value of `v` (or the counter's number)};
    `conflict_losers`: (table, key, value) of every loser in every region's conflict log
    (one entry per record: two lost increments may carry the same value)."""
    result = CheckResult()
    losers_per_key = Counter(loser[:2] for loser in conflict_losers)
    losers = set(conflict_losers)
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    written: dict[tuple[str, str], set[Any]] = defaultdict(set)
    for op in ops:
        if op["kind"] in WRITE_KINDS or op["kind"] == "add":
            by_key[(op["table"], op["key"])].append(op)
            if op["kind"] in WRITE_KINDS:
                written[(op["table"], op["key"])].add(op["value"])
    # divergence: every region must hold the same value for every key
    keys = set().union(*(set(f) for f in finals.values())) if finals else set()
    for key in sorted(keys):
        values = {region: final.get(key) for region, final in finals.items()}
        if len({repr(v) for v in values.values()}) > 1:
            result.divergent.append({"table": key[0], "key": key[1], "values": values})
    for key, key_ops in by_key.items():
        key_ops.sort(key=lambda o: o["t0"])
        if key_ops[0]["kind"] == "add":
            _check_counter(key, key_ops, finals, losers_per_key[key], result)
            continue
        acked = [o for o in key_ops if o["ok"] and _wrote(o)]
        result.acknowledged_writes += len(acked)
        if not acked:
            continue
        last = acked[-1]
        later_values = {o["value"] for o in key_ops
                        if o["t0"] >= last["t1"] and o["unknown"] and o["kind"] in WRITE_KINDS}
        for region, final in finals.items():
            held = final.get(key)
            if held == last["value"] or held in later_values:
                continue
            if (key[0], key[1], last["value"]) in losers:
                result.superseded_by_conflict += 1
                continue
            result.lost.append({"region": region, "table": key[0], "key": key[1],
                                "acknowledged_value": last["value"], "held": held,
                                "kind": last["kind"], "acknowledged_at": last["t1"],
                                "served_by": last.get("region")})
    for op in ops:
        if op["kind"] == "get" and op["ok"] and op.get("read") is not None:
            if op["read"] not in written[(op["table"], op["key"])]:
                result.phantom_reads.append(op)
    return result


def _wrote(op: dict[str, Any]) -> bool:
    return op["kind"] != "cput" or not op.get("condition_failed")


def _check_counter(key: tuple[str, str], ops: list[dict[str, Any]],
                   finals: dict[str, dict[tuple[str, str], Any]], recorded: int,
                   result: CheckResult) -> None:
    """`recorded`: conflict-log records (all regions) of this counter's losing versions;
    each region that saw a concurrent increment lose records it, so this over-counts
    what was lost, never under-counts: the lower bound stays sound."""
    acked = sum(1 for o in ops if o["ok"])
    unknown = sum(1 for o in ops if o["unknown"])
    result.counters_checked += 1
    for region, final in finals.items():
        value = int(final.get(key) or 0)
        if not acked - recorded <= value <= acked + unknown:
            result.counter_problems.append({
                "region": region, "table": key[0], "key": key[1], "value": value,
                "acknowledged_increments": acked, "unknown": unknown,
                "recorded_conflicts": recorded})
