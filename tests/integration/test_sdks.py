"""Other SDKs unchanged: the AWS CLI and the README's snippets work against Atoll."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

from tests.support import aws_cli


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
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - our own README


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
            connection.request("POST", "/", body=body, headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.PutItem",
                "Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
                "HTTP2-Settings": "AAMAAABkAAQCAAAAAAIAAAAA"})
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"{}")
    finally:
        connection.close()
    item = ddb.get_item(TableName=hash_table, Key={"pk": {"S": "h2c"}})["Item"]
    assert item["n"] == {"N": "7"}
