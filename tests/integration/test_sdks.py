"""Other SDKs unchanged: the AWS CLI and the README's snippets work against Atoll."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import credentials_for, sign

AWS = str(Path(sys.executable).parent / "aws")


def _aws(url: str, *args: str) -> Any:
    key_id, secret = credentials_for(url)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}
    out = subprocess.run([AWS, "dynamodb", *args, "--endpoint-url", url, "--output", "json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


def test_aws_cli_round_trip(server: Any) -> None:
    url = server.url
    _aws(url, "create-table", "--table-name", "cli_music",
         "--attribute-definitions", "AttributeName=Artist,AttributeType=S",
         "AttributeName=Song,AttributeType=S",
         "--key-schema", "AttributeName=Artist,KeyType=HASH", "AttributeName=Song,KeyType=RANGE",
         "--billing-mode", "PAY_PER_REQUEST")
    _aws(url, "wait", "table-exists", "--table-name", "cli_music")
    _aws(url, "put-item", "--table-name", "cli_music", "--item",
         '{"Artist": {"S": "Arvo"}, "Song": {"S": "Spiegel"}, "Year": {"N": "1978"}}')
    got = _aws(url, "get-item", "--table-name", "cli_music", "--key",
               '{"Artist": {"S": "Arvo"}, "Song": {"S": "Spiegel"}}')
    assert got["Item"]["Year"] == {"N": "1978"}
    listed = _aws(url, "list-tables")
    assert "cli_music" in listed["TableNames"]
    scanned = _aws(url, "scan", "--table-name", "cli_music")
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
