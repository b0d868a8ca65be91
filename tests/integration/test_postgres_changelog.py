"""The changelog on PostgreSQL never lets a reader skip a change (loghead.py).

Against a real server: writers on separate connections number their changes through
the locked head row and commit out of step (random pauses, some roll back); a reader
following (origin, origin_seq) the way replication does must see every committed change
exactly once, in order, with no gap. The same reader against numbers from a sequence
(the rejected design) is shown to skip a change for ever.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import psycopg

from atoll.storage.postgres.loghead import advance_head, init_head, lock_head
from atoll.storage.postgres.schema import STATEMENTS
from tests.pg import pg_dsn, pg_server  # noqa: F401  (fixtures)

ORIGIN = "us-east"
WRITERS = 8
BATCHES_PER_WRITER = 40
MAX_RECORDS_PER_BATCH = 4
ROLLBACK_SHARE = 0.1
READ_PAGE = 7
DEADLINE_S = 120.0


def create_schema(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        for statement in STATEMENTS:
            conn.execute(statement)
        init_head(conn.cursor(), ORIGIN)


def append(conn: psycopg.Connection[Any], bodies: list[bytes]) -> list[int]:
    """One batch in the open transaction: lock the head, number and insert the records,
    advance the head. Returns their sequences (the caller commits or rolls back)."""
    cur = conn.cursor()
    head = lock_head(cur, ORIGIN).seq
    seqs = list(range(head + 1, head + 1 + len(bodies)))
    for seq, body in zip(seqs, bodies):
        cur.execute("INSERT INTO changelog (origin, origin_seq, hlc, body, crc)"
                    " VALUES (%s, %s, %s, %s, 0)", (ORIGIN, seq, seq, body))
    advance_head(cur, ORIGIN, seqs[-1])
    return seqs


def read_after(conn: psycopg.Connection[Any], after: int, limit: int) -> list[tuple[int, bytes]]:
    """What replication's pull does: the origin's records above a cursor, in order."""
    return [(int(s), bytes(b)) for s, b in conn.execute(
        "SELECT origin_seq, body FROM changelog WHERE origin = %s AND origin_seq > %s"
        " ORDER BY origin_seq LIMIT %s", (ORIGIN, after, limit))]


def test_reader_following_the_log_sees_every_change_once_under_many_writers(
        pg_dsn: str) -> None:  # noqa: F811
    create_schema(pg_dsn)
    committed: dict[int, bytes] = {}
    committed_lock = threading.Lock()
    errors: list[BaseException] = []
    writers_done = threading.Event()

    def writer(number: int) -> None:
        rng = random.Random(number)
        try:
            with psycopg.connect(pg_dsn) as conn:
                for batch in range(BATCHES_PER_WRITER):
                    bodies = [f"w{number}-b{batch}-r{i}".encode()
                              for i in range(rng.randint(1, MAX_RECORDS_PER_BATCH))]
                    seqs = append(conn, bodies)
                    time.sleep(rng.random() * 0.003)  # commit late: others queue behind
                    if rng.random() < ROLLBACK_SHARE:
                        conn.rollback()
                        continue
                    conn.commit()
                    with committed_lock:
                        committed.update(zip(seqs, bodies))
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    seen: list[tuple[int, bytes]] = []
    polls = 0

    def reader() -> None:
        nonlocal polls
        cursor = 0
        deadline = time.monotonic() + DEADLINE_S
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    finished = writers_done.is_set()  # before the read: then it is final
                    rows = read_after(conn, cursor, READ_PAGE)
                    polls += 1
                    for seq, body in rows:
                        assert seq == cursor + 1, f"gap: after {cursor} came {seq}"
                        cursor = seq
                        seen.append((seq, body))
                    if finished and not rows:
                        return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    follower = threading.Thread(target=reader)
    follower.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)
    writers_done.set()
    follower.join(DEADLINE_S)
    assert not errors, errors
    assert not follower.is_alive()

    # every committed change seen exactly once, in number order; numbers dense from 1
    assert [seq for seq, _ in seen] == list(range(1, len(seen) + 1))
    assert dict(seen) == committed
    assert len({body for _, body in seen}) == len(seen)
    assert len(committed) > WRITERS * BATCHES_PER_WRITER  # the test did real work
    assert polls > 10  # the reader followed the log while it grew, not only at the end
    with psycopg.connect(pg_dsn) as conn:
        head = conn.execute("SELECT seq FROM log_heads WHERE origin = %s",
                            (ORIGIN,)).fetchone()
    assert head is not None and head[0] == len(committed)


def test_a_later_batch_waits_for_the_head_until_the_earlier_one_commits(
        pg_dsn: str) -> None:  # noqa: F811
    create_schema(pg_dsn)
    first = psycopg.connect(pg_dsn)
    reader = psycopg.connect(pg_dsn, autocommit=True)
    taken: list[list[int]] = []

    def second_batch() -> None:
        with psycopg.connect(pg_dsn) as conn:
            taken.append(append(conn, [b"second"]))
            conn.commit()

    try:
        assert append(first, [b"first"]) == [1]
        later = threading.Thread(target=second_batch)
        later.start()
        later.join(0.5)
        assert later.is_alive() and not taken  # blocked on the head row
        assert read_after(reader, 0, 10) == []
        first.commit()
        later.join(10)
        assert taken == [[2]]
        assert read_after(reader, 0, 10) == [(1, b"first"), (2, b"second")]
    finally:
        first.close()
        reader.close()


def test_numbers_from_a_sequence_let_a_reader_skip_a_change(pg_dsn: str) -> None:  # noqa: F811
    """The rejected design, to show what the test above guards against: numbers taken
    from a sequence commit out of order, and the reader's cursor passes a change that
    commits later."""
    create_schema(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE skip_demo")
    early = psycopg.connect(pg_dsn)
    late = psycopg.connect(pg_dsn)
    reader = psycopg.connect(pg_dsn, autocommit=True)

    def insert(conn: psycopg.Connection[Any], body: bytes) -> None:
        conn.execute("INSERT INTO changelog (origin, origin_seq, hlc, body, crc)"
                      " VALUES (%s, nextval('skip_demo'), 0, %s, 0)", (ORIGIN, body))

    try:
        insert(early, b"early")  # takes 1
        insert(late, b"late")  # takes 2, commits first
        late.commit()
        cursor = max(seq for seq, _ in read_after(reader, 0, 10))
        early.commit()
        assert cursor == 2
        assert read_after(reader, cursor, 10) == []  # "early" (1) is never seen
        assert read_after(reader, 0, 10) == [(1, b"early"), (2, b"late")]
    finally:
        early.close()
        late.close()
        reader.close()
