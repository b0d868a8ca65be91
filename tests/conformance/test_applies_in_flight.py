"""Applies in flight (ReplicationConfig.applies_in_flight): a job submitted while the one
before it has not committed joins the item states that one stored, on every storage.

Why it holds: an apply joins each incoming state into the key's stored one, read inside
its own write transaction; a storage runs write jobs in submission order, each seeing
every job before it (one writer connection: the same transaction in a group commit, or a
later one after its COMMIT; on PostgreSQL the region's write lock orders the batches of
all its nodes). Were the second job's read to miss the first's write, its join would
start from the older state and store a result without the first change.

The pairs here make that visible: a change from c at hlc 11 and then, concurrent with it,
one from b at hlc 10, on one key, submitted back to back. The join keeps c's item (the
greater version among concurrent puts) and logs b's as lost; a join that missed c's
write would store b's item.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from atoll.clock import HybridClock
from atoll.engine.replica_store import EngineReplicaStore, context_for
from atoll.replication.apply import ApplyChanges, ApplyOutcome
from atoll.replication.change import Change, ItemWrite, TableOp, encode_change
from tests.conformance.test_replica_store import definition
from tests.conformance.test_storage import TIMEOUT_S, Backend, backend  # noqa: F401
from tests.pg import pg_server  # noqa: F401  (fixture)
from tests.support import in_a_loop, started

NOW_MS = 1_000_000
PAIRS = 40  # pairs of applies in flight, on as many keys


def _apply(store: EngineReplicaStore, *changes: Change) -> asyncio.Future[ApplyOutcome]:
    clock = HybridClock(lambda: NOW_MS)
    return store.submit(ApplyChanges(tuple((c, encode_change(c)) for c in changes),
                                     store.region, clock, lambda: NOW_MS))


def _put(origin: str, seq: int, hlc: int, key: str) -> Change:
    item: dict[str, Any] = {"pk": {"S": key}, "v": {"S": origin}}
    return Change.create(origin, seq, hlc, [ItemWrite("t", key.encode(), b"", item)])


@in_a_loop
async def test_an_apply_submitted_behind_another_joins_what_that_one_stored(
        backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    async with started(backend.open(tmp_path, "x")) as storage:
        store = EngineReplicaStore(context_for(storage, "x", lambda: NOW_MS))
        create = Change.create("a", 1, 1, [TableOp("t", "create", definition(index=False))])
        await asyncio.wait_for(_apply(store, create), TIMEOUT_S)
        futures = []
        for n in range(PAIRS):
            key = f"k{n}"
            futures.append(_apply(store, _put("c", n + 1, 11 + 2 * n, key)))
            futures.append(_apply(store, _put("b", n + 1, 10 + 2 * n, key)))
        outcomes = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
        assert [outcome.applied for outcome in outcomes] == [1] * (2 * PAIRS)
        contents = store.contents()
        shown = {key: stored.item["v"]["S"] for key, stored in contents.items()
                 if stored.item is not None}
        assert shown == {("t", f"k{n}".encode(), b""): "c" for n in range(PAIRS)}
        # every state joined both puts: its context holds b's and c's writes
        assert all(stored.state and b'"b"' in stored.state and b'"c"' in stored.state
                   for stored in contents.values()), contents
        assert len(store.conflicts()) == PAIRS  # b's put, lost to c's, each time
