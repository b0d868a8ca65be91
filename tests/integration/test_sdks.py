"""Other SDKs unchanged: the AWS CLI and the README's snippets work against Atoll."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import AWS, REPO, aws_cli, free_port, sign, wait_until


def test_aws_cli_round_trip(server: Any) -> None:
    url = server.url
    aws_cli(url, "create-table", "--table-name", "cli_music",
            "--attribute-definitions", "AttributeName=Artist,AttributeType=S",
            "AttributeName=Song,AttributeType=S",
            "--key-schema", "AttributeName=Artist,KeyType=HASH", "AttributeName=Song,KeyType=RANGE",
            "--billing-mode", "PAY_PER_REQUEST")
    aws_cli(url, "wait", "table-exists", "--table-name", "cli_music")
    aws_cli(url, "put-item", "--table-name", "cli_music", "--item",
            '{"Artist": {"S": "Arvo"}, "Song": {"S": "Spiegel"}, "Year": {"N": "1978"}}')
    got = aws_cli(url, "get-item", "--table-name", "cli_music", "--key",
                  '{"Artist": {"S": "Arvo"}, "Song": {"S": "Spiegel"}}')
    assert got["Item"]["Year"] == {"N": "1978"}
    listed = aws_cli(url, "list-tables")
    assert "cli_music" in listed["TableNames"]
    scanned = aws_cli(url, "scan", "--table-name", "cli_music")
    assert scanned["Count"] == 1


def test_readme_boto3_snippet(server: Any) -> None:
    """The README's boto3 snippet, run as written (endpoint swapped for the test server)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    snippet = snippet.replace("http://127.0.0.1:8000", server.url)
    snippet = snippet.replace('"data/credentials"', repr(str(server.credentials_path)))
    assert str(server.credentials_path) in snippet
    namespace: dict[str, Any] = {}
    before = os.environ.get("AWS_SHARED_CREDENTIALS_FILE")
    try:
        exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    finally:  # the snippet points the SDK at the file: not for the tests that follow
        if before is None:
            os.environ.pop("AWS_SHARED_CREDENTIALS_FILE", None)
        else:
            os.environ["AWS_SHARED_CREDENTIALS_FILE"] = before


def test_a_client_asking_for_h2c_is_served_in_http_1_1(server: Any, ddb: Any,
                                                       hash_table: str) -> None:
    """curl --http2 and Java's HttpClient ask to upgrade a plain-http connection to h2c;
    DynamoDB's HTTP/1.1 answer (the upgrade ignored) is what they then use."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"TableName": hash_table,
                       "Item": {"pk": {"S": "h2c"}, "n": {"N": "7"}}}).encode()
    try:
        for _attempt in range(2):  # the same connection, twice: it stays HTTP/1.1
            connection.request("POST", "/", body=body, headers=sign(server.url + "/", "POST", body, {
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.PutItem",
                "Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
                "HTTP2-Settings": "AAMAAABkAAQCAAAAAAIAAAAA"}))
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"{}")
    finally:
        connection.close()
    item = ddb.get_item(TableName=hash_table, Key={"pk": {"S": "h2c"}})["Item"]
    assert item["n"] == {"N": "7"}


def _free_run(count: int) -> int:
    """A first port with `count` free loopback ports from it (make run's regions)."""
    for _ in range(50):
        first = free_port()
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no run of free loopback ports")


def test_make_run_then_the_readmes_snippets_as_written(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run` (its recipe as the Makefile has it, without rebuilding what `make test`
    built) in a fresh directory, then the README's Python snippet and AWS CLI line as
    written, run from that directory: only the port 8000 is swapped for a free one. The
    cluster runs with auth required; the snippets sign with the profile it wrote."""
    readme = (REPO / "README.md").read_text()
    port, peer_port = _free_run(3), _free_run(3)
    stamps = [f"-o.venv/{name}" for name in
              (".stamp-deps", ".stamp-installed", ".stamp-installed-pure")]
    make = subprocess.Popen(["make", "-C", str(REPO), *stamps, "run", f"PORT={port}",
                             f"PEER_PORT={peer_port}", f"DATA={tmp_path / 'data'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        credentials = tmp_path / "data" / "credentials"
        assert wait_until(lambda: credentials.exists() and all(
            _answers(f"http://127.0.0.1:{port + n}/health") for n in range(3)), 60), \
            "make run did not start three regions"
        assert wait_until(lambda: _key_works(endpoint, credentials), 30)
        monkeypatch.chdir(tmp_path)  # where `make run` wrote data/
        monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE", raising=False)
        snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
        assert '"data/credentials"' in snippet and "http://127.0.0.1:8000" in snippet
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(snippet.replace("http://127.0.0.1:8000", endpoint), "README.md",
                         "exec"), {})  # noqa: S102 - our own README
        assert printed.getvalue().strip() == "{'N': '1978'}"
        cli = readme.split("The AWS CLI is installed as `.venv/bin/aws`", 1)[1]
        cli = cli.split("```\n", 1)[1].split("```", 1)[0]
        assert ".venv/bin/aws dynamodb list-tables" in cli
        done = subprocess.run(
            ["bash", "-c", cli.replace(".venv/bin/aws", AWS)
             .replace("http://127.0.0.1:8000", endpoint)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
        assert done.returncode == 0, done.stderr
        assert "Music" in json.loads(done.stdout)["TableNames"]
    finally:
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C, as the README says
        try:
            out, _ = make.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            out, _ = make.communicate(timeout=10)
    assert "atoll" in out and "credentials" in out, out[-2000:]  # it said how to use the key


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _key_works(endpoint: str, credentials: Path) -> bool:
    """The profile make run wrote signs requests every region accepts (the key reached
    them by replication)."""
    import boto3
    import botocore.exceptions

    values = dict(line.split(" = ", 1) for line in credentials.read_text().splitlines()
                  if " = " in line)
    try:
        host, port = endpoint.rsplit(":", 1)
        for n in range(3):
            boto3.client("dynamodb", endpoint_url=f"{host}:{int(port) + n}",
                         region_name="us-east-1", aws_access_key_id=values["aws_access_key_id"],
                         aws_secret_access_key=values["aws_secret_access_key"]).list_tables()
    except (botocore.exceptions.ClientError, botocore.exceptions.EndpointConnectionError):
        return False
    return True
