"""What a boto3 client reports when its node dies holding a request (the live tests'
tally of outcomes rests on it).

A one-shot HTTP server answers a first call on a kept-alive connection, then reads the
second call and dies without answering (a SIGKILLed node). botocore's `max_attempts`
counts retries: with `max_attempts: 1` the client re-sends the call, the re-send's
connection is refused, and the call fails with EndpointConnectionError — a made write
looks refused. With NO_RETRIES (`total_max_attempts: 1`) the lost answer is reported as
such (ConnectionClosedError: outcome unknown).
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from tests.support import NO_RETRIES, client

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
          b"Content-Length: 2\r\n\r\n{}")


def _read_request(conn: socket.socket) -> bytes:
    """One whole HTTP request (headers, then Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _dying_server(received: list[bytes]) -> tuple[str, threading.Thread]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(10)
        try:
            received.append(_read_request(conn))
            conn.sendall(ANSWER)  # the first call is answered; the connection is kept
            received.append(_read_request(conn))  # the second is read, then the node dies
        finally:
            listener.close()
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", thread


@pytest.mark.parametrize(("retries", "reported"), [
    ({"max_attempts": 1, "mode": "standard"}, EndpointConnectionError),
    (NO_RETRIES, ConnectionClosedError),
])
def test_a_call_whose_node_died_holding_it(retries: dict[str, Any], reported: type) -> None:
    received: list[bytes] = []
    url, thread = _dying_server(received)
    ddb = client(url, ("AKIDEXAMPLE", "secret"), connect_timeout=1, read_timeout=5,
                 retries=retries)
    ddb.list_tables()
    with pytest.raises(reported):
        ddb.list_tables()
    thread.join(10)
    assert len(received) == 2 and received[1].startswith(b"POST "), received  # it was sent
