"""Streams in a live 3-region cluster: writes in every region, and each region's stream
holds every change applied there — its own and the replicated ones — once, each item's
records in the order of its changes, with the images of that region's items.

As in DynamoDB global tables (version 2019.11.21), the stream specification is the
table's, in every replica; each region's stream has its own ARN (its region's name) and
shows the changes as that region applied them. Atoll's eventID begins with the region
where the change was written, which is how a consumer keeps only local changes.

Checks, per region: sequence numbers strictly increase and eventIDs are unique; for every
key written by a single region, the stream's records for it are exactly that writer's
changes in order (event, old image, new image); for keys written concurrently from all
regions (their conflicts resolved by last writer wins), each record's OldImage is the
previous record's NewImage and the last NewImage is the region's final item.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.streamcheck import event, plain, read_stream, streams_client
from tests.support import ClusterProcesses, client, scan_all, wait_until

REGIONS = ("us-east", "eu-west", "ap-south")
TABLE = "regional"
OWN_KEYS = 6
SHARED_KEYS = 3
WRITES_PER_REGION = 120
CONVERGE_TIMEOUT_S = 60.0

Expected = list[tuple[str, Any, Any]]  # (eventName, OldImage, NewImage), plain values


class Writer(threading.Thread):
    """Writes its region's own keys (puts, updates, deletes) and shared keys, in turn;
    remembers the changes its own keys went through."""

    def __init__(self, url: str, region: str) -> None:
        super().__init__(daemon=True)
        self.ddb = client(url, connect_timeout=2, read_timeout=10)
        self.region = region
        self.expected: dict[str, Expected] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._write()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _write(self) -> None:
        items: dict[str, dict[str, Any] | None] = {}
        for n in range(WRITES_PER_REGION):
            if n % 4 == 3:
                shared = f"shared-{n % SHARED_KEYS}"
                self.ddb.put_item(TableName=TABLE, Item={"pk": {"S": shared},
                                                         "by": {"S": f"{self.region}-{n}"}})
                continue
            key = f"{self.region}-{n % OWN_KEYS}"
            old = items.get(key)
            if n % 7 == 5 and old is not None:
                self.ddb.delete_item(TableName=TABLE, Key={"pk": {"S": key}})
                new = None
            elif n % 3 == 1 and old is not None:
                self.ddb.update_item(TableName=TABLE, Key={"pk": {"S": key}},
                                     UpdateExpression="SET n = :n",
                                     ExpressionAttributeValues={":n": {"N": str(n)}})
                new = {**old, "n": n}
            else:
                self.ddb.put_item(TableName=TABLE, Item={"pk": {"S": key}, "v": {"N": str(n)}})
                new = {"pk": key, "v": n}
            name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
            self.expected.setdefault(key, []).append((name, old, new))
            items[key] = new


def _per_key(records: list[dict[str, Any]]) -> dict[str, list[tuple[str, Any, Any]]]:
    keyed: dict[str, list[tuple[str, Any, Any]]] = {}
    for record in records:
        name, keys, old, new = event(record)
        keyed.setdefault(keys["pk"], []).append((name, old, new))
    return keyed


def _plain_number(values: Any) -> Any:
    """Images compare with ints (the writer's) rather than Decimals (boto3's)."""
    if values is None:
        return None
    return {k: int(v) if not isinstance(v, str) else v for k, v in values.items()}


@pytest.mark.slow
def test_every_regions_stream_holds_every_change_applied_there(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, REGIONS).start()
    try:
        clients = cluster.clients()
        clients["us-east"].create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        assert wait_until(lambda: all(TABLE in c.list_tables()["TableNames"]
                                      for c in clients.values()), 15)
        arns = {r: c.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
                for r, c in clients.items()}
        labels = {arn.rsplit("/", 1)[1] for arn in arns.values()}
        assert len(labels) == 1 and all(f":{r}:" in arns[r] for r in REGIONS)

        writers = [Writer(cluster.url(r), r) for r in REGIONS]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=120)
            assert writer.error is None, writer.error

        def converged() -> bool:
            contents = [scan_all(clients[r], TABLE) for r in REGIONS]
            return contents[0] == contents[1] == contents[2]

        assert wait_until(converged, CONVERGE_TIMEOUT_S, 0.5), "regions did not converge"
        final = {k: _plain_number(plain(item))
                 for k, item in scan_all(clients["us-east"], TABLE).items()}
        for region in REGIONS:
            _check_region(region, streams_client(cluster.url(region)), arns[region], writers,
                          final)
    finally:
        cluster.stop()


def _check_region(region: str, streams: Any, arn: str, writers: list[Writer],
                  final: dict[str, Any]) -> None:
    records = read_stream(streams, arn)
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert numbers == sorted(set(numbers)), f"{region}: sequence numbers not increasing"
    assert len({r["eventID"] for r in records}) == len(records), f"{region}: repeated"
    assert all(r["awsRegion"] == region for r in records)
    keyed = _per_key(records)
    for writer in writers:
        for key, expected in writer.expected.items():
            got = [(name, _plain_number(old), _plain_number(new))
                   for name, old, new in keyed.get(key, [])]
            assert got == expected, f"{region}'s stream for {key} (written in {writer.region})"
        origins = {r["eventID"].split(":")[0] for r in records
                   if r["dynamodb"]["Keys"]["pk"]["S"].startswith(writer.region + "-")}
        assert origins == {writer.region}, f"{region}: origins of {writer.region}'s keys"
    for key, changes in keyed.items():
        previous = None
        for name, old, new in changes:
            assert _plain_number(old) == previous, f"{region}: {key}'s images do not chain"
            assert (name == "INSERT") == (old is None) and (name == "REMOVE") == (new is None)
            previous = _plain_number(new)
        assert previous == final.get(key), f"{region}: {key}'s last image is not its item"
