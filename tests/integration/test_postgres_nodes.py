"""Several `atoll serve` processes over one PostgreSQL act as one region.

Real processes, a real server (tests/pg.py), boto3 through every node at once:
conditional writes and transactions stay correct under concurrency between nodes, the
region's own writes are ordered by commit (a write through one node is newer than the
one acknowledged before it through another), tables created or deleted through one node
are seen by the others, a table's stream holds every write through every node once, in
commit order, each background job runs on exactly one node, and its lease moves when
that node is SIGKILLed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.integration.streamcheck import event, read_stream, streams_client
from tests.pg import PostgresServer, fresh_schema_dsn, pg_server  # noqa: F401  (fixture)
from tests.support import ServerProcess, client, create_table, node_json, start_together

NODES = 3
DEADLINE_S = 60.0
LAGGING_CLOCK_MS = -3000  # the first node's clock runs 3 s behind the others'


@pytest.fixture(scope="module")
def region_dsn(pg_server: PostgresServer) -> str:  # noqa: F811
    return fresh_schema_dsn(pg_server)


@pytest.fixture(scope="module")
def region(region_dsn: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[list[ServerProcess]]:
    """One region of three nodes for the whole module (each test uses its own tables;
    the last one kills a node)."""
    root = tmp_path_factory.mktemp("region")
    nodes = [ServerProcess(data_dir=root / f"node{n}", extra=[
        "--storage", region_dsn, "--clock-offset-ms", str(LAGGING_CLOCK_MS if n == 0 else 0)])
        for n in range(NODES)]
    try:
        start_together(nodes)
        yield nodes
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()


def status(node: ServerProcess) -> dict[str, Any]:
    return node_json(node.url, "/_atoll/status")  # type: ignore[no-any-return]


def wait_for(check: Any, what: str, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (ClientError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def shared_table(nodes: list[ServerProcess], name: str, **kwargs: Any) -> list[Any]:
    """Create a table through the first node; return a client per node once each sees it."""
    clients = [client(node.url) for node in nodes]
    create_table(clients[0], name, **kwargs)
    for ddb in clients:
        wait_for(lambda ddb=ddb: ddb.describe_table(TableName=name), f"{name} on every node")
    return clients


def run_threads(work: list[Any]) -> None:
    errors: list[BaseException] = []

    def guarded(fn: Any) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)
    assert not errors, errors[:3]


def test_conditional_increments_through_every_node_lose_no_update(
        region: list[ServerProcess]) -> None:
    """Optimistic increments (read n, write n + 1 if n is still n) from 6 clients over 3
    nodes: the final count equals the number of increments acknowledged."""
    clients = shared_table(region, "counters")
    clients[0].put_item(TableName="counters", Item={"pk": {"S": "c"}, "n": {"N": "0"}})
    acknowledged = [0] * 6

    def worker(w: int) -> None:
        ddb = clients[w % NODES]
        deadline = time.monotonic() + DEADLINE_S
        while acknowledged[w] < 15 and time.monotonic() < deadline:
            n = ddb.get_item(TableName="counters", Key={"pk": {"S": "c"}},
                             ConsistentRead=True)["Item"]["n"]["N"]
            try:
                ddb.update_item(TableName="counters", Key={"pk": {"S": "c"}},
                                UpdateExpression="SET n = :next", ConditionExpression="n = :seen",
                                ExpressionAttributeValues={":next": {"N": str(int(n) + 1)},
                                                           ":seen": {"N": n}})
                acknowledged[w] += 1
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"

    run_threads([lambda w=w: worker(w) for w in range(6)])
    final = clients[1].get_item(TableName="counters", Key={"pk": {"S": "c"}})["Item"]["n"]["N"]
    assert int(final) == sum(acknowledged) == 90


def test_only_one_node_creates_an_item_that_must_not_exist(region: list[ServerProcess]) -> None:
    clients = shared_table(region, "claims")
    for key in range(10):
        wins: list[int] = []

        def claim(n: int, key: int = key, wins: list[int] = wins) -> None:
            try:
                clients[n % NODES].put_item(
                    TableName="claims", Item={"pk": {"S": f"k{key}"}, "by": {"N": str(n)}},
                    ConditionExpression="attribute_not_exists(pk)")
                wins.append(n)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"

        run_threads([lambda n=n: claim(n) for n in range(6)])
        assert len(wins) == 1
        stored = clients[2].get_item(TableName="claims", Key={"pk": {"S": f"k{key}"}})["Item"]
        assert stored["by"]["N"] == str(wins[0])


def test_transfers_between_accounts_through_every_node_keep_the_total(
        region: list[ServerProcess]) -> None:
    clients = shared_table(region, "accounts")
    accounts = 5
    for a in range(accounts):
        clients[0].put_item(TableName="accounts", Item={"pk": {"S": f"a{a}"}, "b": {"N": "100"}})
    done = [0]

    def transfers(w: int) -> None:
        ddb = clients[w % NODES]
        for t in range(12):
            src, dst = f"a{(w + t) % accounts}", f"a{(w + 2 * t + 1) % accounts}"
            if src == dst:
                continue
            try:
                ddb.transact_write_items(TransactItems=[
                    {"Update": {"TableName": "accounts", "Key": {"pk": {"S": src}},
                                "UpdateExpression": "SET b = b - :x",
                                "ConditionExpression": "b >= :x",
                                "ExpressionAttributeValues": {":x": {"N": "7"}}}},
                    {"Update": {"TableName": "accounts", "Key": {"pk": {"S": dst}},
                                "UpdateExpression": "SET b = b + :x",
                                "ExpressionAttributeValues": {":x": {"N": "7"}}}}])
                done[0] += 1
            except ClientError as exc:
                assert exc.response["Error"]["Code"] in (
                    "TransactionCanceledException", "TransactionConflictException")

    run_threads([lambda w=w: transfers(w) for w in range(6)])
    balances = [int(clients[1].get_item(TableName="accounts", Key={"pk": {"S": f"a{a}"}})
                    ["Item"]["b"]["N"]) for a in range(accounts)]
    assert sum(balances) == 100 * accounts and min(balances) >= 0
    assert done[0] > 0


def test_the_regions_writes_are_ordered_by_commit_whichever_node_stamps_them(
        region: list[ServerProcess], region_dsn: str) -> None:
    """Each write through the next node, one of them with a clock 3 s behind: the item is
    the last acknowledged write, and the region's changelog stamps increase with its
    sequence (a later write can never lose last-writer-wins to an earlier one in another
    region)."""
    clients = shared_table(region, "ordered")
    for n in range(30):
        clients[n % NODES].put_item(TableName="ordered",
                                    Item={"pk": {"S": "x"}, "n": {"N": str(n)}})
    for ddb in clients:
        assert ddb.get_item(TableName="ordered", Key={"pk": {"S": "x"}})["Item"]["n"]["N"] == "29"
    with psycopg.connect(region_dsn) as conn:
        rows = conn.execute("SELECT origin_seq, hlc FROM changelog WHERE origin = 'local'"
                            " ORDER BY origin_seq").fetchall()
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    stamps = [hlc for _, hlc in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_tables_changed_through_one_node_are_seen_by_the_others(
        region: list[ServerProcess]) -> None:
    clients = shared_table(region, "shortlived")
    clients[2].put_item(TableName="shortlived", Item={"pk": {"S": "k"}})
    clients[0].delete_table(TableName="shortlived")

    def refused_everywhere() -> bool:
        for ddb in clients:
            try:
                ddb.put_item(TableName="shortlived", Item={"pk": {"S": "late"}})
                return False
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
        return True

    wait_for(refused_everywhere, "the deleted table refused by every node")
    shared_table(region, "shortlived")  # created again: empty, on every node
    for ddb in clients:
        assert ddb.scan(TableName="shortlived")["Items"] == []


def test_a_stream_holds_every_write_through_every_node_once_in_commit_order(
        region: list[ServerProcess]) -> None:
    """Three clients write their own key through their own node at once (a put, then
    updates), then writes go through the next node in turn: every node's GetRecords
    shows the same records, one per write, sequence numbers increasing; each key's
    records are its writes in order, and the writes made in turn are in their order."""
    clients = shared_table(region, "streamed", StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    arn = clients[0].describe_table(TableName="streamed")["Table"]["LatestStreamArn"]

    def writer(n: int) -> None:
        for i in range(12):
            clients[n].put_item(TableName="streamed",
                                Item={"pk": {"S": f"own{n}"}, "i": {"N": str(i)}})

    run_threads([lambda n=n: writer(n) for n in range(NODES)])
    for i in range(15):
        clients[i % NODES].put_item(TableName="streamed",
                                    Item={"pk": {"S": "turns"}, "i": {"N": str(i)}})
    seen = [read_stream(streams_client(node.url), arn) for node in region]
    assert seen[0] == seen[1] == seen[2]
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in seen[0]]
    assert numbers == sorted(set(numbers))
    per_key: dict[str, list[tuple[str, int]]] = {}
    for record in seen[0]:
        name, keys, _old, new = event(record)
        per_key.setdefault(keys["pk"], []).append((name, int(new["i"])))
    expected = {f"own{n}": 12 for n in range(NODES)} | {"turns": 15}
    assert per_key == {key: [("INSERT" if i == 0 else "MODIFY", i) for i in range(count)]
                       for key, count in expected.items()}


def test_each_background_job_runs_on_one_node_and_moves_when_it_dies(
        region: list[ServerProcess]) -> None:
    def runners() -> list[int]:
        return [n for n, node in enumerate(region)
                if node.proc is not None and node.proc.poll() is None
                and "background" in status(node)["region_nodes"]["running"]]

    holders = wait_for(lambda: runners() if len(runners()) == 1 else None,
                       "one node running the background jobs")
    killed = holders[0]
    region[killed].kill()
    started = time.monotonic()
    moved = wait_for(lambda: runners() if len(runners()) == 1 else None,
                     "the background jobs on another node", timeout_s=20)
    assert moved[0] != killed
    assert time.monotonic() - started < 15  # the lease's TTL (5 s) plus a renewal or two
