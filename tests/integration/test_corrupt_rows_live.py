"""A stored row whose checksum fails (issue 26 item 6), on a live 2-region cluster: the
row is damaged directly in one region's SQLite file while the node runs. Requests that
touch it get DynamoDB's InternalServerError shape; the others are served; the failure
is logged with the table and key, counted in status and /metrics, and the region reports
itself degraded (/health detail, `atoll status`) within a second of the first request
that found it. Everything through boto3 with its retries off."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from atoll.model.keys import encode_key_value
from tests.support import (
    ATOLL,
    REPO,
    ClusterProcesses,
    NodeDatabase,
    client,
    node_json,
    sign,
    wait_until,
)

REGIONS = ("us-east", "eu-west")
TABLE = "rot"
DAMAGED = ("p1", "s3")  # (pk, sk) of the row whose checksum is made stale
DEGRADED_WITHIN_S = 1.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    processes = ClusterProcesses(tmp_path_factory.mktemp("rot"), REGIONS).start()
    try:
        ddb = client(processes.nodes["us-east"].url)
        ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}])
        for p in ("p0", "p1", "p2"):
            for s in range(6):
                ddb.put_item(TableName=TABLE, Item={"pk": {"S": p}, "sk": {"S": f"s{s}"},
                                                    "v": {"N": str(s)}})
        west = client(processes.nodes["eu-west"].url)
        assert wait_until(lambda: _count(west) == 18, 20.0)
        # a fresh process: nothing of the table in its item cache, every read hits the file
        east = processes.nodes["us-east"]
        east.stop()
        east.start()
        yield processes
    finally:
        processes.stop()


def _count(ddb: Any) -> int:
    try:
        return int(ddb.scan(TableName=TABLE, Select="COUNT")["Count"])
    except ClientError:
        return -1


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _atoll_status(cluster: ClusterProcesses) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([*ATOLL, "status", "--config", str(cluster.config_path), "--json",
                           "--credentials", str(cluster.credentials_path), "--profile", "atoll"],
                          capture_output=True, cwd=REPO, timeout=30)
    return done.returncode, json.loads(done.stdout)


def _raw_get_item(url: str, pk: str, sk: str) -> tuple[int, dict[str, Any]]:
    """GetItem without boto3: the status and the body exactly as sent."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    body = json.dumps({"TableName": TABLE, "Key": _key(pk, sk)})
    headers = sign(url + "/", "POST", body.encode(),
                   {"X-Amz-Target": "DynamoDB_20120810.GetItem",
                    "Content-Type": "application/x-amz-json-1.0"})
    connection.request("POST", "/", body, headers)
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def test_a_row_failing_its_checksum_degrades_its_region_and_only_its_requests_fail(
        cluster: ClusterProcesses) -> None:
    east = cluster.nodes["us-east"]
    ddb = client(east.url)
    assert node_json(east.url, "/health")["status"] == "ok"
    assert _atoll_status(cluster)[0] == 0
    with NodeDatabase(east, "us-east") as db:
        (tid,) = db.one("SELECT tid FROM tables WHERE name=?", (TABLE,))
        pk, sk = (encode_key_value({"S": v}, "S") for v in DAMAGED)
        db.run("UPDATE items SET crc=(crc+1)%4294967296 WHERE tid=? AND pk=? AND sk=?",
               (tid, pk, sk))
    # untouched until a request reads it: nothing to report yet
    assert ddb.get_item(TableName=TABLE, Key=_key("p0", "s3"))["Item"]["v"] == {"N": "3"}
    assert node_json(east.url, "/health")["status"] == "ok"

    status, body = _raw_get_item(east.url, *DAMAGED)
    found_at = time.monotonic()
    assert status == 500
    assert body["__type"] == "com.amazonaws.dynamodb.v20120810#InternalServerError"
    assert isinstance(body["message"], str) and body["message"]
    # degraded at once: /health detail, status, atoll status (which exits 1)
    assert wait_until(lambda: node_json(east.url, "/health")["status"] == "degraded",
                      DEGRADED_WITHIN_S, 0.02)
    assert time.monotonic() - found_at <= DEGRADED_WITHIN_S
    health = node_json(east.url, "/health")
    assert "1 stored row failed the checksum" in health["detail"][0]
    code, view = _atoll_status(cluster)
    assert code == 1
    states = {r["id"]: (r["health"], r["reason"]) for r in view["regions"]}
    assert states["us-east"][0] == "degraded" and "checksum" in states["us-east"][1]
    assert states["eu-west"] == ("up", "")

    # boto3 sees DynamoDB's InternalServerError for every request touching the row
    for call in (lambda: ddb.get_item(TableName=TABLE, Key=_key(*DAMAGED)),
                 lambda: ddb.query(TableName=TABLE, KeyConditionExpression="pk = :p",
                                   ExpressionAttributeValues={":p": {"S": "p1"}}),
                 lambda: ddb.scan(TableName=TABLE),
                 lambda: ddb.put_item(TableName=TABLE, Item=_key(*DAMAGED))):
        with pytest.raises(ClientError) as failed:
            call()
        assert failed.value.response["Error"]["Code"] == "InternalServerError"
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    # ... and the rest is served: other keys, other partitions, the row's neighbours
    assert ddb.get_item(TableName=TABLE, Key=_key("p1", "s2"))["Item"]["v"] == {"N": "2"}
    items = ddb.query(TableName=TABLE, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "p2"}})["Items"]
    assert len(items) == 6
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "p9"}, "sk": {"S": "new"}})
    assert client(cluster.nodes["eu-west"].url).get_item(
        TableName=TABLE, Key=_key(*DAMAGED))["Item"]["v"] == {"N": "3"}  # intact there

    # counted, once per row, and logged with the table and the key as written
    integrity = node_json(east.url, "/_atoll/status")["integrity"]
    assert integrity["damaged_rows"] == 1 and integrity["checksum_failures"] >= 5
    assert integrity["rows"][0]["table"] == TABLE
    assert integrity["rows"][0]["key"] == {"pk": {"S": "p1"}, "sk": {"S": "s3"}}
    log = east.log()
    assert log.count("checksum failure") == 1
    assert "of table rot, key {'pk': {'S': 'p1'}, 'sk': {'S': 's3'}}" in log
    request = urllib.request.Request(east.url + "/metrics",
                                     headers=sign(east.url + "/metrics", "GET"))
    with urllib.request.urlopen(request, timeout=5) as response:
        metrics = response.read().decode()
    assert "atoll_damaged_rows 1.0" in metrics and "atoll_degraded 1.0" in metrics
