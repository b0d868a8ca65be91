"""boto3 and the AWS CLI, over real sockets (HTTP and HTTPS), sign requests the verifier
accepts, and the permission check reads the tables of their real request bodies.

A small capture server on loopback records each request exactly as received (method,
request target, headers with their case and order, body) and answers `{}`; every
captured request is then verified and authorized as the api layer will do it.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from atoll.auth import errors as e
from atoll.auth.certs import ClusterFiles, init_cluster, issue_region_cert
from atoll.auth.keys import ROLE_READ_ONLY, ROLE_READ_WRITE, AccessKey, create_key
from atoll.auth.permissions import authorize_request, required_access
from atoll.auth.sigv4 import SignedRequest, SigV4Verifier
from atoll.auth.tls import client_port_context
from tests.support import free_port

KEY = create_key(ROLE_READ_WRITE, now_ms=1)
SESSION = create_key(ROLE_READ_WRITE, now_ms=1, session_expires_ms=10**15)
KEYS = {k.key_id: k for k in (KEY, SESSION)}
Captured = tuple[str, str, list[tuple[str, str]], bytes]


class _Capture(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    captured: list[Captured]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.captured.append((self.command, self.path, list(self.headers.items()), body))
        answer = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CaptureServer:
    def __init__(self, tls_files: ClusterFiles | None = None) -> None:
        self.captured: list[Captured] = []
        handler = type("Handler", (_Capture,), {"captured": self.captured})
        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        scheme = "http"
        if tls_files is not None:
            context = client_port_context(tls_files.region_cert("local"),
                                          tls_files.region_key("local"))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> CaptureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def dynamodb(url: str, key: AccessKey, verify: str | bool = True) -> Any:
    return boto3.client(
        "dynamodb", endpoint_url=url, region_name="eu-west-1", verify=verify,
        aws_access_key_id=key.key_id, aws_secret_access_key=key.secret.reveal(),
        aws_session_token=key.session_token.reveal() if key.session_token else None,
        config=Config(retries={"max_attempts": 1}))


def workload(client: Any) -> None:
    """One of each request shape an application sends."""
    item = {"pk": {"S": "naïve ☕ 𝄞"}, "n": {"N": "1"}}
    client.create_table(TableName="Orders", BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    client.put_item(TableName="Orders", Item=item)
    client.get_item(TableName="Orders", Key={"pk": item["pk"]}, ConsistentRead=True)
    client.update_item(TableName="Orders", Key={"pk": item["pk"]},
                       UpdateExpression="SET #n = #n + :one",
                       ExpressionAttributeNames={"#n": "n"},
                       ExpressionAttributeValues={":one": {"N": "1"}})
    client.query(TableName="Orders", KeyConditionExpression="pk = :p",
                 ExpressionAttributeValues={":p": item["pk"]})
    client.scan(TableName="Orders", Limit=5)
    client.batch_write_item(RequestItems={
        "Orders": [{"PutRequest": {"Item": item}}],
        "Users": [{"DeleteRequest": {"Key": {"pk": {"S": "u"}}}}]})
    client.batch_get_item(RequestItems={"Orders": {"Keys": [{"pk": item["pk"]}]}})
    client.transact_write_items(TransactItems=[
        {"Put": {"TableName": "Orders", "Item": item}},
        {"ConditionCheck": {"TableName": "Users", "Key": {"pk": {"S": "u"}},
                            "ConditionExpression": "attribute_exists(pk)"}}])
    client.transact_get_items(TransactItems=[{"Get": {"TableName": "Orders",
                                                      "Key": {"pk": item["pk"]}}}])
    client.execute_statement(Statement='SELECT * FROM "Orders" WHERE pk = ?',
                             Parameters=[item["pk"]])
    client.list_tables()
    client.delete_item(TableName="Orders", Key={"pk": item["pk"]})


EXPECTED_TABLES = {
    "CreateTable": ("Orders",), "PutItem": ("Orders",), "GetItem": ("Orders",),
    "UpdateItem": ("Orders",), "Query": ("Orders",), "Scan": ("Orders",),
    "BatchWriteItem": ("Orders", "Users"), "BatchGetItem": ("Orders",),
    "TransactWriteItems": ("Orders", "Users"), "TransactGetItems": ("Orders",),
    "ExecuteStatement": ("Orders",), "ListTables": (), "DeleteItem": ("Orders",),
}


def signed(captured: Captured) -> SignedRequest:
    method, target, headers, body = captured
    return SignedRequest.from_target(method, target, headers, body)


def operation(captured: Captured) -> str:
    return next(v for n, v in captured[2] if n.lower() == "x-amz-target").split(".", 1)[1]


def check_all_verify(captured: list[Captured], key: AccessKey) -> None:
    verifier = SigV4Verifier(KEYS.get)
    now_ms = int(time.time() * 1000)
    assert [operation(c) for c in captured] == list(EXPECTED_TABLES)
    for request in captured:
        assert verifier.verify(signed(request), now_ms) is key
        access = required_access(operation(request), json.loads(request[3]))
        assert access.tables == EXPECTED_TABLES[operation(request)]
    assert verifier.cached_signing_keys == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterFiles]:
    files = ClusterFiles(tmp_path_factory.mktemp("tls"))
    now = datetime.datetime.now(datetime.UTC)
    init_cluster(files, "wire", now)
    issue_region_cert(files, "local", ["127.0.0.1"], now)
    yield files


@pytest.mark.parametrize("key", [KEY, SESSION], ids=["long-term", "session"])
def test_boto3_requests_over_http_verify(key: AccessKey) -> None:
    with CaptureServer() as server:
        workload(dynamodb(server.url, key))
    check_all_verify(server.captured, key)


def test_boto3_requests_over_https_verify(tls_files: ClusterFiles) -> None:
    with CaptureServer(tls_files) as server:
        workload(dynamodb(server.url, KEY, verify=str(tls_files.ca_cert)))
    check_all_verify(server.captured, KEY)


def test_a_captured_request_replayed_or_altered_on_the_wire_is_refused() -> None:
    with CaptureServer() as server:
        dynamodb(server.url, KEY).get_item(TableName="Orders", Key={"pk": {"S": "a"}})
    request = signed(server.captured[0])
    verifier = SigV4Verifier(KEYS.get)
    now_ms = int(time.time() * 1000)
    assert verifier.verify(request, now_ms) is KEY
    with pytest.raises(e.InvalidSignature) as late:
        verifier.verify(request, now_ms + 6 * 60_000)
    assert late.value.reason == e.REASON_EXPIRED
    as_delete = SignedRequest(request.method, request.path, request.query,
                              [(n, "DynamoDB_20120810.DeleteItem" if n == "X-Amz-Target" else v)
                               for n, v in request.headers], request.body)
    with pytest.raises(e.InvalidSignature):
        verifier.verify(as_delete, now_ms)


def test_roles_on_real_request_bodies() -> None:
    reader = create_key(ROLE_READ_ONLY, now_ms=1, tables=["Orders"])
    with CaptureServer() as server:
        workload(dynamodb(server.url, KEY))
    allowed = set()
    for request in server.captured:
        try:
            authorize_request(reader, operation(request), json.loads(request[3]), "eu-west-1")
            allowed.add(operation(request))
        except e.AccessDenied:
            pass
    assert allowed == {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems",
                       "ExecuteStatement", "ListTables"}


def test_the_aws_cli_signs_verifiably(tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY.key_id,
           "AWS_SECRET_ACCESS_KEY": KEY.secret.reveal(), "AWS_DEFAULT_REGION": "us-west-2",
           "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_MAX_ATTEMPTS": "1"}
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    with CaptureServer() as server:
        subprocess.run(
            [sys.executable, "-m", "awscli", "dynamodb", "put-item", "--endpoint-url",
             server.url, "--table-name", "Orders", "--item", '{"pk": {"S": "cli ✓"}}'],
            env=env, check=True, capture_output=True, timeout=60)
    assert len(server.captured) == 1
    assert SigV4Verifier(KEYS.get).verify(signed(server.captured[0]),
                                          int(time.time() * 1000)) is KEY
