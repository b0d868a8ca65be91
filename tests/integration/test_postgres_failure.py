"""PostgreSQL crashes and comes back under load: nodes answer 503 meanwhile, recover by
themselves, and lose nothing they acknowledged.

A server of its own (tests/pg.py), two nodes on it, writers putting unique keys through
both. The postmaster is SIGKILLed mid-load (a crash: the restart replays its WAL), left
down for a while, and started again on the same port. Every acknowledged key must be
there afterwards; every refusal while it was down must be a retryable 503.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tests.pg import running_server
from tests.support import (
    ServerProcess,
    client,
    create_table,
    scan_all,
    start_together,
    wait_until,
)

WRITERS = 4
LOAD_S = 14.0
DOWN_AFTER_S = 3.0  # at least, and until MIN_ACKED_BEFORE writes were acknowledged
MIN_ACKED_BEFORE = 20
LOAD_LATE_S = 3.0  # at most this later (the writers stop LOAD_S after they started)
CATALOG_SEEN_S = 10.0  # the other node's catalog refresh (50 ms polls), a loaded machine
DOWN_FOR_S = 3.0
RETRYABLE = {"ServiceUnavailableException", "ServiceUnavailable"}


def test_a_database_crash_under_load_is_503_then_recovery_and_nothing_acknowledged_lost(
        tmp_path: Path) -> None:
    with running_server() as pg:
        nodes = [ServerProcess(data_dir=tmp_path / f"n{n}", extra=["--storage", pg.dsn])
                 for n in range(2)]
        try:
            start_together(nodes)
            clients = [client(node.url) for node in nodes]
            create_table(clients[0], "crashy")
            # the second node's catalog refresh: until then it answers ResourceNotFound
            assert wait_until(lambda: _serves(clients[1], "crashy"), CATALOG_SEEN_S)
            acknowledged: list[str] = []
            refusals: dict[str, int] = {}
            ok_after_restart = threading.Event()
            restarted_at = [0.0]
            recovered_s = [0.0]
            lock = threading.Lock()

            def writer(w: int) -> None:
                ddb = clients[w % 2]
                deadline = time.monotonic() + LOAD_S
                n = 0
                while time.monotonic() < deadline:
                    key = f"w{w}-{n}"
                    n += 1
                    try:
                        ddb.put_item(TableName="crashy", Item={"pk": {"S": key}})
                    except ClientError as exc:
                        code = exc.response["Error"]["Code"]
                        with lock:
                            refusals[code] = refusals.get(code, 0) + 1
                        time.sleep(0.05)
                        continue
                    with lock:
                        acknowledged.append(key)
                    if restarted_at[0] and not ok_after_restart.is_set():
                        recovered_s[0] = time.monotonic() - restarted_at[0]
                        ok_after_restart.set()

            threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
            for thread in threads:
                thread.start()
            time.sleep(DOWN_AFTER_S)
            wait_until(lambda: len(acknowledged) > MIN_ACKED_BEFORE, LOAD_LATE_S)
            before_crash = len(acknowledged)
            pg.kill()
            time.sleep(DOWN_FOR_S)
            down_reads = _read_refusals(clients)
            pg.restart()
            restarted_at[0] = time.monotonic()
            for thread in threads:
                thread.join(LOAD_S + 30)
            print(f"acknowledged {len(acknowledged)} ({before_crash} before the crash), "
                  f"refused {refusals}, reads while down {down_reads}, first write "
                  f"{recovered_s[0]:.2f} s after the server accepted connections again")
            assert before_crash > MIN_ACKED_BEFORE  # the load was running when the server died
            assert ok_after_restart.is_set(), "no write succeeded after the restart"
            assert refusals and set(refusals) <= RETRYABLE, refusals
            assert down_reads and set(down_reads) <= RETRYABLE, down_reads
            for node in nodes:
                assert node.proc is not None and node.proc.poll() is None  # still serving
            stored = scan_all(clients[1], "crashy")
            missing = [key for key in acknowledged if key not in stored]
            assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
        finally:
            for node in nodes:
                if node.proc is not None and node.proc.poll() is None:
                    node.stop()


def _serves(ddb: Any, table: str) -> bool:
    try:
        ddb.describe_table(TableName=table)
    except ClientError:
        return False
    return True


def _read_refusals(clients: list[Any]) -> dict[str, int]:
    """What reads get while the database is down."""
    codes: dict[str, int] = {}
    for ddb in clients:
        for _ in range(3):
            try:
                ddb.get_item(TableName="crashy", Key={"pk": {"S": "w0-0"}})
                codes["answered"] = codes.get("answered", 0) + 1
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                codes[code] = codes.get(code, 0) + 1
    return codes
