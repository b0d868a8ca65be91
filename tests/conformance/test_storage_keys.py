"""Jobs that announce the keys they will look up (Storage.write's `keys`), every backend.

The announcement is a hint: a backend may fetch the announced keys for a whole batch at
once (PostgreSQL: storage/postgres/readahead.py) and send a batch's item rows and
changelog records together (writebehind.py). Whatever is announced — the right key,
nothing, another key, a key some earlier job of the batch wrote — every job must see
exactly the writes of the jobs submitted before it, as a naive model applied in
submission order says, and a job that fails after writing must leave nothing behind,
not even in what a later job of its batch reads. That holds for each key's causal state
too (`item_state`, which a write asks for right after its lookup: PostgreSQL reads it
ahead with the rows), before and after the job's own write.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atoll.storage import WriteTxn
from tests.conformance.test_storage import TIMEOUT_S, Backend, backend, create  # noqa: F401
from tests.pg import pg_server  # noqa: F401  (fixture)
from tests.support import in_a_loop, started, write

Key = tuple[int, bytes, bytes]
JOBS = 600  # more than one batch's worth (512), submitted at once
# A bound against a hang, not a speed test: 600 jobs with a few replays take 9-30 s on
# PostgreSQL at load ~20 on 2 cores
JOBS_TIMEOUT_S = 3 * TIMEOUT_S
KEYS = [(7, b"k%d" % n, b"") for n in range(5)]  # few keys: many jobs of a batch share one


class Failed(Exception):
    """What the jobs that fail after writing raise."""


def _state(n: int) -> bytes:
    """The causal state job n writes (every third one the row form: no bytes)."""
    return b"" if n % 3 == 0 else b'{"s":%d}' % n


def _job(tid: int, key: Key, op: str, n: int) -> Callable[[WriteTxn], Any]:
    """Look the key and its state up (what the job saw is its result), then write as the
    engine does, and read the state again."""
    def job(txn: WriteTxn) -> tuple[Any, ...]:
        live, dead = txn.versions(tid, *key)
        seen = (None if live is None else live[0], None if dead is None else dead[0],
                txn.item_state(tid, *key))
        hlc = 1000 + n
        if op in ("put", "fail"):
            item = b'{"n": %d}' % n
            txn.put(tid, *key, item, len(item), hlc, "a", None if live is None else live[1],
                    None, _state(n))
            txn.log_change(hlc, b"put %d" % n)
        elif op == "delete":
            if live is not None:
                txn.delete(tid, *key, hlc, "a", live[1], None, _state(n))
            else:
                txn.delete_absent(tid, *key, hlc, "a", None, _state(n))
            txn.log_change(hlc, b"delete %d" % n)
        if op == "fail":
            raise Failed(n)
        return (*seen, txn.item_state(tid, *key))
    return job


def _announced(rng: random.Random, tid: int, key: Key) -> list[tuple[int, int, bytes, bytes]]:
    other = rng.choice(KEYS)
    return rng.choice([[(tid, *key)], [], [(tid, *other)], [(tid, *other), (tid, *key)],
                       [(tid, *key), (tid, *key)], [(tid + 1, *key)]])


@in_a_loop
async def test_jobs_see_every_write_before_them_whatever_keys_they_announce(
        backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    rng = random.Random(17)
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        # a few failures only: each one replays its batch without it
        plan = [(rng.choice(KEYS), "fail" if rng.random() < 0.02 else
                 rng.choice(["read", "put", "put", "delete"])) for _ in range(JOBS)]
        futures = [storage.write(_job(tid, key, op, n), inline=rng.random() < 0.5,
                                 keys=_announced(rng, tid, key))
                   for n, (key, op) in enumerate(plan)]
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True),
                                         JOBS_TIMEOUT_S)
        live: dict[Key, bytes] = {}
        dead: dict[Key, int] = {}
        states: dict[Key, Any] = {}  # the newest write's: a live item's, else a tombstone's
        for n, ((key, op), result) in enumerate(zip(plan, results)):
            if op == "fail":
                assert isinstance(result, Failed), (n, result)
                continue
            assert result[:3] == (live.get(key), dead.get(key), states.get(key)), (n, op)
            if op == "put":
                live[key] = b'{"n": %d}' % n
            elif op == "delete":
                live.pop(key, None)
                dead[key] = 1000 + n
            if op != "read":
                states[key] = (_state(n), (1000 + n, "a"), None)
            assert result[3] == states.get(key), (n, op, result)
        for key in KEYS:
            row = storage.get_item(tid, *key)
            assert (None if row is None else row[0]) == live.get(key), key
        assert await write(storage, lambda txn: [txn.item_state(tid, *key) for key in KEYS]
                           ) == [states.get(key) for key in KEYS]

        def changes(txn: WriteTxn) -> list[bytes | None]:
            return [txn.logged_frame("a", seq) for seq in range(1, JOBS + 2)]

        logged = [frame for frame in await write(storage, changes) if frame is not None]
        wanted = [op for _key, op in plan if op in ("put", "delete")]
        assert len(logged) == len(wanted)  # numbered densely, none of a failed job


@in_a_loop
async def test_a_scan_after_announced_puts_in_the_same_batch_sees_them(
        backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    async with started(backend.open(tmp_path, "a")) as storage:
        tid = await write(storage, create("t"))
        keys = [(1, b"s%03d" % n, b"") for n in range(50)]
        futures = [storage.write(_job(tid, key, "put", n), keys=[(tid, *key)])
                   for n, key in enumerate(keys)]

        def scan(txn: WriteTxn) -> list[Key]:
            return [row[:3] for row in txn.scan_chunk(tid, None, 100)]

        futures.append(storage.write(scan))
        results = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
        assert results[-1] == keys
