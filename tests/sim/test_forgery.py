"""Forged changes on the peer link (issue 26 item 3): seeded runs whose links put
well-formed, correctly checksummed but wrong records into Batches (atoll.sim.forgery:
an item filed under a key it does not encode to; a different change under a sequence
the receiver holds). Admission in the one apply driver refuses them: nothing of a
forgery is ever stored (`checkers.forgeries_refused`), every acknowledged write still
converges, and the runs show the refusals happened. A store whose key schema is hidden
from admission (a test-only wrapper, not a monkeypatch) stores forgeries, and the same
runs fail."""

from __future__ import annotations

from typing import Any

from atoll.replication.merge import TableState
from atoll.replication.store import StoreTxn
from atoll.sim import SimConfig, run
from atoll.sim.stores import MemoryStores

MEMORY_SEEDS = range(3000, 3040)
SQLITE_SEEDS = range(3100, 3106)
FORGE_P = 0.1
HEAL_STEPS_MAX = 1000


def _config(seed: int, store: str = "memory", **more: Any) -> SimConfig:
    return SimConfig(seed=seed, regions=3 + seed % 3, store=store, forge_p=FORGE_P, **more)


def _totals(results: list[Any]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for result in results:
        for key, value in result.summary.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return totals


def test_forged_changes_are_refused_and_every_acknowledged_write_converges() -> None:
    results = [run(_config(seed)) for seed in MEMORY_SEEDS]
    failures = [f"seed {r.seed} ({r.replay_command()}): {r.problems}" for r in results if not r.ok]
    assert not failures, "\n".join(failures)
    totals = _totals(results)
    assert totals["net_forged"] > 0
    assert totals["refused_key_mismatch"] > 0 and totals["refused_reused_sequence"] > 0
    assert 0 < totals["refusals_logged"] <= totals["refused_changes"]
    traces = "\n".join(line for r in results for line in r.trace)
    assert " forged misfiled " in traces and " forged reused " in traces
    assert results[0].replay_command().endswith(f"--forge-p {FORGE_P}")


def test_forged_changes_over_the_nodes_sqlite_store() -> None:
    results = [run(_config(seed, "sqlite")) for seed in SQLITE_SEEDS]
    failures = [f"seed {r.seed} ({r.replay_command()}): {r.problems}" for r in results if not r.ok]
    assert not failures, "\n".join(failures)
    assert _totals(results)["refused_key_mismatch"] > 0


class SchemaHidden:
    """A store transaction whose table states give their key schema only in DynamoDB's
    form (KeySchema/AttributeDefinitions): admission, which reads the engine's
    (`hash_key`, `attribute_types`), cannot check an item against it, while the merge,
    which decodes each item's key to join its state, still can."""

    def __init__(self, txn: StoreTxn) -> None:
        self._txn = txn

    def table_state(self, table: str) -> TableState | None:
        state = self._txn.table_state(table)
        if state is None or state.definition is None or "hash_key" not in state.definition:
            return state
        definition = state.definition
        names = [definition["hash_key"]] + ([definition["range_key"]]
                                            if definition.get("range_key") else [])
        types = definition.get("attribute_types") or {}
        hidden = {k: v for k, v in definition.items()
                  if k not in ("hash_key", "range_key", "attribute_types")}
        hidden["KeySchema"] = [{"AttributeName": name, "KeyType": kind}
                               for name, kind in zip(names, ("HASH", "RANGE"))]
        hidden["AttributeDefinitions"] = [{"AttributeName": name,
                                           "AttributeType": types.get(name, "S")}
                                          for name in names]
        return TableState(state.created, state.version, hidden)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)


def test_without_the_key_check_forgeries_are_stored_and_the_runs_fail() -> None:
    broken = [run(_config(seed, heal_steps_max=HEAL_STEPS_MAX),
                  MemoryStores(wrap=lambda _region: SchemaHidden)) for seed in MEMORY_SEEDS[:10]]
    assert not all(result.ok for result in broken)
    problems = [p for result in broken for p in result.problems]
    assert any("forged item is stored" in p for p in problems), problems[:5]
