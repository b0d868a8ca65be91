"""Helpers for the integration tests: expected errors, raw HTTP, table snapshots.

`raw_post` bypasses boto3 entirely, for what an SDK would never send (a bogus target,
a body that is not JSON, an oversized body).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import sign

JSON_10 = "application/x-amz-json-1.0"
TARGET_PREFIX = "DynamoDB_20120810."


def expect_error(call: Callable[..., Any], code: str, fragment: str = "",
                 **params: Any) -> dict[str, Any]:
    """Call `call(**params)`; assert it fails with error `code` whose message contains
    `fragment`; return the error response. A 500 is never acceptable."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    error = response["Error"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] < 500, response
    assert error["Code"] == code, error
    assert fragment in error["Message"], error
    return response


def raw_post(url: str, body: bytes, target: str | None = TARGET_PREFIX + "ListTables",
             content_type: str = JSON_10, timeout_s: float = 30.0,
             signed: bool = True) -> tuple[int, dict[str, Any]]:
    """POST `body` as-is (signed with the server's key unless `signed` is False);
    return (status, decoded JSON body or {"raw": text})."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    if signed:
        headers = sign(url + "/", "POST", body, headers)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, _decode(data)
    finally:
        connection.close()


def raw_send_oversized(url: str, size_bytes: int) -> tuple[int, dict[str, Any]]:
    """Stream a body of `size_bytes`; the server may answer and close before it has all
    been sent, so a broken pipe while sending is expected. Return the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: {JSON_10}\r\n"
                f"X-Amz-Target: {TARGET_PREFIX}PutItem\r\n"
                f"Content-Length: {size_bytes}\r\n\r\n").encode()
        sock.sendall(head)
        chunk = b" " * (1 << 20)
        sent = 0
        try:
            while sent < size_bytes:
                piece = chunk[: min(len(chunk), size_bytes - sent)]
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while True:
                more = sock.recv(65536)
                if not more:
                    break
                data += more
                if b"\r\n\r\n" in data and _complete(data):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    head_text, _, body = data.partition(b"\r\n\r\n")
    status = int(head_text.split(b" ", 2)[1]) if head_text else 0
    return status, _decode(body)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def _decode(data: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(data)
    except ValueError:
        return {"raw": data.decode(errors="replace")}
    return decoded if isinstance(decoded, dict) else {"raw": decoded}


def error_name(body: dict[str, Any]) -> str:
    """`com.amazon.coral.service#SerializationException` -> `SerializationException`."""
    return str(body.get("__type", "")).rsplit("#", 1)[-1]


def snapshot(ddb: Any, table: str) -> list[dict[str, Any]]:
    """Every item of `table` (all scan pages), in a stable order."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**params)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=repr))


def put_all(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    """Write items in BatchWriteItem chunks of 25."""
    for start in range(0, len(items), 25):
        chunk = items[start:start + 25]
        answer = ddb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": item}} for item in chunk]})
        assert not answer["UnprocessedItems"]
