"""The attacker's view of a live 3-region cluster with auth required and mutual TLS
between regions: every port, every way in that does not hold a key or a certificate of
the cluster. Each attempt is refused with the documented error (DynamoDB's types and
messages on the client port; a failed handshake or a 403 on the peer port), logged and
counted, and nothing stored changes. Then what a key may do: roles, table lists,
revocation in every region; and the SDKs over HTTPS with a created key."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from atoll.auth.certs import ClusterFiles
from tests.support import (
    AWS,
    REPO,
    ClusterProcesses,
    ServerProcess,
    client,
    create_table,
    make_certs,
    node_json,
    node_post,
    sign,
    wait_until,
)

REGIONS = ("us-east", "eu-west", "ap-south")
TABLE = "accounts"
OTHER = "ledger"
TARGET = "DynamoDB_20120810."
REPLICATION_S = 10.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    processes = ClusterProcesses(tmp_path_factory.mktemp("auth")).start()
    try:
        admin = client(processes.url("us-east"))
        for name in (TABLE, OTHER):
            create_table(admin, name)
        admin.put_item(TableName=TABLE, Item={"pk": {"S": "alice"}, "balance": {"N": "100"}})
        assert wait_until(lambda: all(
            "Item" in client(processes.url(r)).get_item(TableName=TABLE,
                                                        Key={"pk": {"S": "alice"}})
            for r in REGIONS), REPLICATION_S)
        yield processes
    finally:
        processes.stop()


def new_key(url: str, role: str, tables: list[str] | None = None) -> tuple[str, str]:
    body: dict[str, Any] = {"role": role}
    if tables is not None:
        body["tables"] = tables
    status, answer = node_post(url, "/_atoll/keys", body)
    assert status == 200, answer
    return answer["key_id"], answer["secret_access_key"]


def works_everywhere(cluster: ClusterProcesses, key: tuple[str, str]) -> bool:
    try:
        for region in REGIONS:
            client(cluster.url(region), key).describe_limits()
    except botocore.exceptions.ClientError:
        return False
    return True


def signed(url: str, target: str, body: bytes, key: tuple[str, str],
           when: datetime.datetime | None = None) -> dict[str, str]:
    """SigV4 headers as botocore makes them, at `when` (now unless given)."""
    request = AWSRequest(method="POST", url=url + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET + target})
    auth = SigV4Auth(Credentials(*key), "dynamodb", "us-east-1")
    if when is None:
        auth.add_auth(request)
    else:  # botocore's add_auth with the clock set back
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        auth._modify_request_before_signing(request)
        signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                                   request)
        auth._inject_signature_to_request(request, signature)
    return {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}


def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def error_type(answer: dict[str, Any]) -> str:
    return str(answer.get("__type", "")).rsplit("#", 1)[-1]


def balances(cluster: ClusterProcesses) -> list[Any]:
    return [client(cluster.url(r)).scan(TableName=TABLE, ConsistentRead=True)["Items"]
            for r in REGIONS]


def test_forged_requests_on_the_client_port_are_refused_logged_and_change_nothing(
        cluster: ClusterProcesses) -> None:
    url = cluster.url("us-east")
    admin = cluster.nodes["us-east"].credentials
    revoked = new_key(url, "read-write")
    assert node_post(url, "/_atoll/keys/revoke", {"key_id": revoked[0]})[0] == 200
    before = balances(cluster)
    refused_before = node_json(url, "/_atoll/status")["auth"]["refused_total"]
    body = json.dumps({"TableName": TABLE, "Item": {"pk": {"S": "alice"},
                                                    "balance": {"N": "1000000"}}}).encode()
    unsigned = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET + "PutItem"}
    ten_minutes_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
    attempts = {
        "unsigned": (unsigned, "MissingAuthenticationTokenException",
                     "Request is missing Authentication Token"),
        "wrong secret": (signed(url, "PutItem", body, (admin[0], "not-the-secret")),
                         "InvalidSignatureException", "The request signature we calculated "
                         "does not match the signature you provided"),
        "expired": (signed(url, "PutItem", body, admin, ten_minutes_ago),
                    "InvalidSignatureException", "Signature expired: "),
        "unknown key": (signed(url, "PutItem", body, ("AKATUNKNOWNKEY000000", "x" * 40)),
                        "UnrecognizedClientException",
                        "The security token included in the request is invalid."),
        "revoked key": (signed(url, "PutItem", body, revoked), "UnrecognizedClientException",
                        "The security token included in the request is invalid."),
        "body changed after signing": (signed(url, "PutItem", body.replace(b"1000000", b"1"),
                                              admin), "InvalidSignatureException",
                                       "The request signature we calculated"),
    }
    for what, (headers, kind, message) in attempts.items():
        status, answer = post(url, headers, body)
        assert status == 400, (what, answer)
        assert error_type(answer) == kind, (what, answer)
        assert answer["message"].startswith(message), (what, answer)
    time.sleep(1.0)  # anything that slipped through would have replicated by now
    assert balances(cluster) == before
    auth = node_json(url, "/_atoll/status")["auth"]
    assert auth["refused_total"] - refused_before >= len(attempts)
    for reason in ("missing", "signature", "expired", "unknown-key", "revoked-key"):
        assert auth["by_reason"].get(reason, 0) >= 1, auth
    log = cluster.nodes["us-east"].log()
    # an unknown id is not echoed (it may be a secret pasted in the wrong field)
    assert "refused DynamoDB_20120810.PutItem: unknown-key, key -" in log
    assert f"revoked-key, key {revoked[0]}" in log
    assert admin[1] not in log and revoked[1] not in log  # never a secret


def test_roles_and_table_lists(cluster: ClusterProcesses) -> None:
    url = cluster.url("eu-west")
    reader = client(url, new_key(url, "read-only"))
    limited = client(url, new_key(url, "read-write", [TABLE]))
    writer = client(url, new_key(url, "read-write"))
    key = {"pk": {"S": "alice"}}
    assert "Item" in reader.get_item(TableName=TABLE, Key=key)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        reader.put_item(TableName=TABLE, Item={"pk": {"S": "mallory"}})
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert denied.value.response["Error"]["Message"].endswith(
        "is not authorized to perform: dynamodb:PutItem on resource: arn:aws:dynamodb:eu-west:"
        f"000000000000:table/{TABLE} because no identity-based policy allows the "
        "dynamodb:PutItem action")
    assert "Item" in limited.get_item(TableName=TABLE, Key=key)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        limited.get_item(TableName=OTHER, Key=key)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert limited.list_tables()["TableNames"] == [TABLE]
    with pytest.raises(botocore.exceptions.ClientError) as denied:  # DDL: admin keys only
        writer.delete_table(TableName=OTHER)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "mallory" not in json.dumps(client(url).scan(TableName=TABLE)["Items"])
    assert OTHER in client(url).list_tables()["TableNames"]


def test_a_revoked_key_is_refused_in_every_region_within_a_second(
        cluster: ClusterProcesses) -> None:
    key = new_key(cluster.url("us-east"), "read-only")
    assert wait_until(lambda: works_everywhere(cluster, key), REPLICATION_S)
    status, _ = node_post(cluster.url("ap-south"), "/_atoll/keys/revoke", {"key_id": key[0]})
    revoked_at = time.monotonic()
    assert status == 200
    refused_after: dict[str, float] = {}
    while len(refused_after) < len(REGIONS) and time.monotonic() - revoked_at < 5:
        for region in REGIONS:
            if region in refused_after:
                continue
            try:
                client(cluster.url(region), key).describe_limits()
            except botocore.exceptions.ClientError as exc:
                assert exc.response["Error"]["Code"] == "UnrecognizedClientException"
                refused_after[region] = time.monotonic() - revoked_at
        time.sleep(0.01)
    assert set(refused_after) == set(REGIONS), refused_after
    assert max(refused_after.values()) < 1.0, refused_after


def _peer_address(cluster: ClusterProcesses, region: str) -> tuple[str, int]:
    return cluster.config.region(region).peer_address


def _handshake_refused(address: tuple[str, int], context: ssl.SSLContext | None) -> None:
    """The connection ends without an HTTP answer: the TLS handshake fails, or (plain
    HTTP) only a TLS alert or nothing comes back."""
    request = (b"POST /_atoll/replication/pull HTTP/1.1\r\nHost: x\r\nX-Atoll-Region: eu-west"
               b"\r\nContent-Length: 2\r\n\r\n{}")
    with socket.create_connection(address, timeout=10) as raw:
        if context is None:
            raw.sendall(request)
            answer = b""
            try:
                while chunk := raw.recv(4096):
                    answer += chunk
            except ConnectionError:
                pass
            assert not answer.startswith(b"HTTP/"), answer[:200]
            return
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(request)
                if not tls.recv(4096):  # TLS 1.3: the refusal arrives after the handshake
                    raise ConnectionResetError("closed without an answer")


def test_strangers_on_the_peer_port_are_refused_and_logged(
        cluster: ClusterProcesses, tmp_path: Path) -> None:
    files = ClusterFiles(cluster.certs)
    address = _peer_address(cluster, "us-east")
    before = node_json(cluster.url("us-east"), "/_atoll/status")["peer_auth"]
    no_certificate = ssl.create_default_context(cafile=files.ca_cert)
    # a region certificate with the same names, of another CA (trusting ours, so that
    # only the server's check can refuse)
    other = ClusterFiles(make_certs(tmp_path / "other", "atoll-test", ("eu-west",)))
    other_ca = ssl.create_default_context(cafile=files.ca_cert)
    other_ca.load_cert_chain(other.region_cert("eu-west"), other.region_key("eu-west"))
    for context in (None, no_certificate, other_ca):
        _handshake_refused(address, context)
    assert wait_until(lambda: node_json(cluster.url("us-east"), "/_atoll/status")["peer_auth"]
                      ["by_reason"].get("peer-handshake", 0)
                      >= before["by_reason"].get("peer-handshake", 0) + 3, 5)
    assert "refused a peer connection from 127.0.0.1:" in cluster.nodes["us-east"].log()
    # the cluster still replicates over the same port
    client(cluster.url("eu-west")).put_item(TableName=OTHER, Item={"pk": {"S": "after"}})
    assert wait_until(lambda: "Item" in client(cluster.url("us-east")).get_item(
        TableName=OTHER, Key={"pk": {"S": "after"}}), REPLICATION_S)


def test_a_certificate_of_the_cluster_for_a_region_outside_the_topology_is_refused(
        cluster: ClusterProcesses, tmp_path: Path) -> None:
    shutil.copytree(cluster.certs, tmp_path / "certs")
    # the cluster's CA, a region it does not have
    copy = ClusterFiles(make_certs(tmp_path / "certs", "atoll-test", ("mars",)))
    context = ssl.create_default_context(cafile=copy.ca_cert)
    context.load_cert_chain(copy.region_cert("mars"), copy.region_key("mars"))
    host, port = _peer_address(cluster, "us-east")
    plan = _forged_plan(cluster)
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        connection.request("POST", "/_atoll/topology", body=json.dumps(plan).encode(),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 403
        assert b"not in topology" in response.read()
    finally:
        connection.close()
    _topology_unchanged(cluster, plan["generation"] - 1)


def _forged_plan(cluster: ClusterProcesses) -> dict[str, Any]:
    """us-east's peer endpoint pointed at a stranger, one generation up."""
    current = node_json(cluster.url("us-east"), "/_atoll/topology")
    plan = json.loads(json.dumps(current))
    plan["generation"] = current["generation"] + 1
    for region in plan["regions"]:
        if region["id"] == "us-east":
            region["peer_endpoints"] = ["https://127.0.0.1:9"]
    return plan


def _topology_unchanged(cluster: ClusterProcesses, generation: int) -> None:
    time.sleep(0.5)
    for region in REGIONS:
        topology = node_json(cluster.url(region), "/_atoll/topology")
        assert topology["generation"] == generation
        us_east = next(r for r in topology["regions"] if r["id"] == "us-east")
        assert us_east["peer_endpoints"] != ["https://127.0.0.1:9"]


def test_forged_topologies_are_refused_without_the_admin_role(
        cluster: ClusterProcesses) -> None:
    url = cluster.url("us-east")
    plan = _forged_plan(cluster)
    body = json.dumps(plan).encode()
    writer = new_key(url, "read-write")
    status, answer = node_post(url, "/_atoll/topology", body, credentials=writer)
    assert status == 400 and error_type(answer) == "AccessDeniedException", answer
    assert "atoll:UpdateTopology" in answer["message"]
    connection = http.client.HTTPConnection("127.0.0.1", cluster.nodes["us-east"].port)
    connection.request("POST", "/_atoll/topology", body=body,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 400
    assert error_type(json.loads(response.read())) == "MissingAuthenticationTokenException"
    connection.close()
    _topology_unchanged(cluster, plan["generation"] - 1)


def test_status_and_conflicts_need_a_key_and_health_reveals_nothing(
        cluster: ClusterProcesses) -> None:
    url = cluster.url("ap-south")
    host, port = url.removeprefix("http://").split(":")
    for path in ("/_atoll/status", "/_atoll/conflicts", "/_atoll/topology", "/_atoll/keys",
                 "/metrics"):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        answer = json.loads(response.read())
        connection.close()
        assert response.status == 400, (path, answer)
        assert error_type(answer) == "MissingAuthenticationTokenException", (path, answer)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/health")
    assert json.loads(connection.getresponse().read()) == {"status": "ok"}
    connection.close()
    reader = new_key(url, "read-only")
    status, answer = node_post(url, "/_atoll/keys", {"role": "admin"}, credentials=reader)
    assert status == 400 and error_type(answer) == "AccessDeniedException"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sdks_work_unchanged_with_a_created_key(scheme: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3, the AWS CLI and PynamoDB, each as an application configures it (a key, an
    endpoint, on HTTPS the CA file), with a read-write key created by the admin."""
    extra: list[str] = []
    certs = None
    if scheme == "https":
        certs = ClusterFiles(make_certs(tmp_path / "certs", "atoll-https", ("local",)))
        extra = ["--tls-cert", str(certs.region_cert("local")),
                 "--tls-key", str(certs.region_key("local"))]
    node = ServerProcess(in_memory=True, extra=extra)
    if certs is not None:
        node.ca_file = str(certs.ca_cert)
    node.start()
    try:
        assert node.url.startswith(scheme + "://")
        verify = node.ca_file if certs is not None else None
        admin = boto3.client("dynamodb", endpoint_url=node.url, region_name="us-east-1",
                             aws_access_key_id=node.credentials[0],
                             aws_secret_access_key=node.credentials[1],
                             verify=verify, config=Config(retries={"max_attempts": 1}))
        create_table(admin, "secure")
        status, answer = (_https_post(node, "/_atoll/keys", {"role": "read-write"})
                          if certs is not None
                          else node_post(node.url, "/_atoll/keys", {"role": "read-write"}))
        assert status == 200, answer
        key = answer["key_id"], answer["secret_access_key"]
        app = boto3.client("dynamodb", endpoint_url=node.url, region_name="us-east-1",
                           aws_access_key_id=key[0], aws_secret_access_key=key[1],
                           verify=verify, config=Config(retries={"max_attempts": 1}))
        app.put_item(TableName="secure", Item={"pk": {"S": "boto3"}})
        with pytest.raises(botocore.exceptions.ClientError) as denied:  # it is the key's role
            app.delete_table(TableName="secure")
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"

        env = {**os.environ, "AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1],
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": "",
               **({"AWS_CA_BUNDLE": node.ca_file} if certs is not None else {})}
        for args in (["put-item", "--table-name", "secure", "--item", '{"pk": {"S": "cli"}}'],
                     ["get-item", "--table-name", "secure", "--key", '{"pk": {"S": "boto3"}}']):
            done = subprocess.run([AWS, "dynamodb", *args, "--endpoint-url", node.url,
                                   "--output", "json"], env=env, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["Item"]["pk"] == {"S": "boto3"}

        from pynamodb.attributes import UnicodeAttribute
        from pynamodb.models import Model

        if certs is not None:
            with pytest.raises(botocore.exceptions.SSLError):  # the CA is not trusted by default
                boto3.client("dynamodb", endpoint_url=node.url, region_name="us-east-1",
                             aws_access_key_id=key[0], aws_secret_access_key=key[1],
                             config=Config(retries={"max_attempts": 1})).list_tables()
            # PynamoDB's botocore session reads the CA file from here
            monkeypatch.setenv("AWS_CA_BUNDLE", node.ca_file)

        class Secure(Model):
            class Meta:
                table_name = "secure"
                host = node.url
                region = "us-east-1"
                aws_access_key_id = key[0]
                aws_secret_access_key = key[1]
                max_retry_attempts = 0

            pk = UnicodeAttribute(hash_key=True)
            note = UnicodeAttribute(null=True)

        Secure("pynamodb", note="saved").save()
        assert Secure.get("cli").pk == "cli"
        assert sorted(item.pk for item in Secure.scan()) == ["boto3", "cli", "pynamodb"]
        assert admin.get_item(TableName="secure", Key={"pk": {"S": "pynamodb"}})["Item"][
            "note"] == {"S": "saved"}
    finally:
        node.stop()


def test_the_signature_window_follows_the_machines_clock_not_the_nodes(
        tmp_path: Path) -> None:
    """A node whose own clock is moved (--clock-offset-ms, then --settable-clock's advance:
    the skew drills) checks signatures against the machine's wall clock, as DynamoDB's
    endpoint does: clients signing with the real time reach it; a request stamped with
    the node's moved time, or replayed from ten minutes ago, is refused."""
    hour_ms = 3_600_000
    node = ServerProcess(in_memory=True, extra=["--clock-offset-ms", str(hour_ms),
                                                "--settable-clock"])
    node.start()
    try:
        status, answer = node_post(node.url, "/_atoll/clock", {"advance_ms": hour_ms})
        assert status == 200, answer
        real_ms = time.time() * 1000
        assert abs(answer["now_ms"] - (real_ms + 2 * hour_ms)) < 60_000, answer
        assert "TableNames" in client(node.url).list_tables()  # signed with the real time
        body = b"{}"
        now = datetime.datetime.now(datetime.UTC)
        for when, message in ((now + datetime.timedelta(hours=2), "Signature not yet current: "),
                              (now - datetime.timedelta(minutes=10), "Signature expired: ")):
            status, refused = post(node.url, signed(node.url, "ListTables", body,
                                                    node.credentials, when), body)
            assert status == 400, refused
            assert error_type(refused) == "InvalidSignatureException", refused
            assert refused["message"].startswith(message), refused
    finally:
        node.stop()


def test_a_keys_secret_is_in_clear_nowhere_a_node_keeps_or_shows(
        cluster: ClusterProcesses) -> None:
    """A created key's secret, after it was used and replicated: not in any region's data
    directory (tables, changelog, WAL), nor its status, keys, conflicts or metrics pages,
    nor its log."""
    key = new_key(cluster.url("eu-west"), "read-write")
    assert wait_until(lambda: works_everywhere(cluster, key), REPLICATION_S)
    client(cluster.url("ap-south"), key).put_item(TableName=OTHER, Item={"pk": {"S": "keyed"}})
    secret = key[1]
    for region in REGIONS:
        url = cluster.url(region)
        assert key[0] in json.dumps(node_json(url, "/_atoll/keys"))  # it is listed ...
        files = [path for path in (cluster.root / region).rglob("*") if path.is_file()]
        assert files, region
        for path in files:
            assert secret.encode() not in path.read_bytes(), path  # ... never its secret
        for page in ("/_atoll/status", "/_atoll/keys", "/_atoll/conflicts"):
            assert secret not in json.dumps(node_json(url, page)), (region, page)
        metrics = urllib.request.Request(url + "/metrics", headers=sign(url + "/metrics", "GET"))
        with urllib.request.urlopen(metrics, timeout=10) as answer:
            assert secret.encode() not in answer.read()
        assert secret not in cluster.nodes[region].log()


def _https_post(node: ServerProcess, path: str, body: Any) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = AWSRequest(method="POST", url=node.url + path, data=data,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(*node.credentials), "dynamodb", "us-east-1").add_auth(request)
    host, port = node.url.removeprefix("https://").split(":")
    connection = http.client.HTTPSConnection(host, int(port), timeout=10, context=(
        ssl.create_default_context(cafile=node.ca_file)))
    try:
        connection.request("POST", path, body=data, headers=dict(request.headers.items()))
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_generations_have_a_ceiling_and_the_admin_can_always_recover_the_plan(
        cluster: ClusterProcesses, tmp_path: Path) -> None:
    """A plan far ahead (2^63-1, or more than 10^6 above the current generation) is
    refused even when signed by an admin; a plan the operator regrets (here: written at
    current + 1000 by a leaked admin key) is replaced by `atoll topology set --next`."""
    url = cluster.url("us-east")
    current = node_json(url, "/_atoll/topology")
    for generation in (2**63 - 1, current["generation"] + 1_000_001):
        status, answer = node_post(url, "/_atoll/topology", {**current, "generation": generation})
        assert status == 400, answer
        assert node_json(url, "/_atoll/topology")["generation"] == current["generation"]
    regretted = current["generation"] + 1000
    status, answer = node_post(url, "/_atoll/topology", {**current, "generation": regretted})
    assert status == 200 and answer["accepted"], answer
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(current))
    done = subprocess.run(
        [sys.executable, "-m", "atoll", "topology", "set", "--endpoint", cluster.url("eu-west"),
         "--file", str(plan), "--next", "--credentials", str(cluster.credentials_path),
         "--profile", "atoll"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"accepted: generation {regretted + 1}" in done.stdout
    assert wait_until(lambda: all(node_json(cluster.url(r), "/_atoll/topology")["generation"]
                                  == regretted + 1 for r in REGIONS), REPLICATION_S)


def _raw(url: str, method: str, path: str, body: bytes | None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One request as given (unsigned unless `headers` sign it)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers={
            "Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def _signed_raw(url: str, method: str, path: str, body: bytes | None,
                key: tuple[str, str]) -> tuple[int, dict[str, Any]]:
    request = AWSRequest(method=method, url=url + path, data=body or b"",
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(*key), "dynamodb", "us-east-1").add_auth(request)
    headers = {k: v.decode() if isinstance(v, bytes) else str(v)
               for k, v in request.headers.items()}
    return _raw(url, method, path, body, headers)


def test_backup_verify_and_repairs_need_an_admin_key_and_health_detail_a_signature(
        cluster: ClusterProcesses, tmp_path: Path) -> None:
    url = cluster.url("eu-west")
    copy = tmp_path / "copy.db"
    reader, writer = new_key(url, "read-only"), new_key(url, "read-write")
    assert wait_until(lambda: works_everywhere(cluster, writer), REPLICATION_S)
    actions = (("POST", "/_atoll/backup", json.dumps({"path": str(copy)}).encode()),
               ("POST", "/_atoll/verify/runs", json.dumps({"tables": [TABLE],
                                                           "deep": False}).encode()),
               ("GET", "/_atoll/verify/runs/1", None),
               ("GET", "/_atoll/repairs", None),
               ("GET", "/_atoll/repairs/after/0", None))
    for method, path, body in actions:
        status, answer = _raw(url, method, path, body)
        assert status == 400, (path, answer)
        assert error_type(answer) == "MissingAuthenticationTokenException", (path, answer)
        for key in (reader, writer):
            status, answer = _signed_raw(url, method, path, body, key)
            assert status == 400 and error_type(answer) == "AccessDeniedException", (path, answer)
            assert "is not authorized to perform: atoll:" in answer["message"], answer
    assert not copy.exists()
    # the admin key may do each
    status, answer = node_post(url, "/_atoll/backup", {"path": str(copy)})
    assert status == 200 and copy.stat().st_size == answer["size_bytes"] > 0, answer
    status, run = node_post(url, "/_atoll/verify/runs", {"tables": [TABLE], "deep": False})
    assert status == 202, run
    # the run compares the regions over the peer link (mutual TLS) and finds them equal
    view: dict[str, Any] = {}

    def ended() -> bool:
        view.update(node_json(url, f"/_atoll/verify/runs/{run['id']}"))
        return view["state"] != "running"

    assert wait_until(ended, 60.0, 0.5), view
    assert view["state"] == "done" and view["exit_code"] == 0, view
    assert "repairs" in node_json(url, "/_atoll/repairs")
    # /health: liveness to anyone, the detail to a signed request of any key
    assert _raw(url, "GET", "/health", None) == (200, {"status": "ok"})
    status, health = _signed_raw(url, "GET", "/health", None, reader)
    assert status == 200 and health["region"] == "eu-west" and health["detail"] == [], health
    refused_before = node_json(url, "/_atoll/status")["auth"]["refused_total"]
    # a bad signature is no reason to refuse a liveness probe: it gets liveness only
    for key in (("AKIAWRONGKEY", "nope"), (reader[0], "not-its-secret")):
        assert _signed_raw(url, "GET", "/health", None, key) == (200, {"status": "ok"})
    assert node_json(url, "/_atoll/status")["auth"]["refused_total"] == refused_before


def test_clock_probes_and_verify_on_the_peer_port_answer_regions_of_the_topology_only(
        cluster: ClusterProcesses, tmp_path: Path) -> None:
    shutil.copytree(cluster.certs, tmp_path / "certs")
    copy = ClusterFiles(make_certs(tmp_path / "certs", "atoll-test", ("mars",)))
    mars = ssl.create_default_context(cafile=copy.ca_cert)
    mars.load_cert_chain(copy.region_cert("mars"), copy.region_key("mars"))
    host, port = _peer_address(cluster, "eu-west")

    def ask(context: ssl.SSLContext, path: str, body: bytes,
            claimed: str | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
        try:
            connection.request("POST", path, body=body, headers={
                "Content-Type": "application/json",
                **({"X-Atoll-Region": claimed} if claimed else {})})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    probe = json.dumps({"t0": int(time.time() * 1000)}).encode()
    for path in ("/_atoll/time", "/_atoll/verify"):
        status, answer = ask(mars, path, probe)
        assert status == 403 and b"not in topology" in answer, (path, answer)
        # a member's certificate claiming to be another region
        status, answer = ask(cluster.peer_context("us-east"), path, probe, claimed="ap-south")
        assert status == 403 and b"with a certificate of us-east" in answer, (path, answer)
    # us-east's own certificate: the probe is answered (as the clock watches do, every 0.5 s)
    status, answer = ask(cluster.peer_context("us-east"), "/_atoll/time", probe)
    assert status == 200 and set(json.loads(answer)) == {"t0", "t1", "t2"}, answer
    # and the regions' clock watches reach each other over mutual TLS
    def measured() -> bool:
        peers = node_json(cluster.url("eu-west"), "/_atoll/status")["clock"]["peers"]
        return set(peers) == {"us-east", "ap-south"} and None not in peers.values()

    assert wait_until(measured, 10.0), node_json(cluster.url("eu-west"), "/_atoll/status")[
        "clock"]
    assert not node_json(cluster.url("eu-west"), "/_atoll/status")["clock"]["refusing_writes"]
    refusals = node_json(cluster.url("eu-west"), "/_atoll/status")["peer_auth"]
    assert refusals["by_reason"].get("peer", 0) >= 4, refusals
