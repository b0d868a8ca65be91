"""Forged changes on a live peer link (issue 26 item 3): two real region processes;
us-east pulls from eu-west through a proxy in this test that rewrites eu-west's pull
answers — the next change of eu-west is replaced by the same (origin, seq) with its item
filed under a key its attributes do not encode to, and a different change under a
sequence us-east already holds is added. Both are well-formed and correctly
checksummed: only admission in the apply driver can refuse them. us-east refuses and
logs each once (origin, sequence, table, key), applies nothing of eu-west past the
refused change, does not spin (a bounded number of pulls while it is forged), shows the
refusal in /_atoll/status and /metrics, and once the proxy passes the true change on,
both regions end identical with no forged item anywhere."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from atoll.replication.change import Change, ItemWrite, Op, decode_change, encode_change
from atoll.replication.cursors import cursor_of
from atoll.replication.errors import BadChange
from atoll.replication.protocol import Batch, Pull, decode_message, encode_message
from tests.support import (
    ClusterProcesses,
    client,
    create_table,
    free_port,
    node_json,
    scan_all,
    wait_until,
)

HOLD_S = 4.0  # how long the forged change is served before the true one goes through
MAX_PULLS_WHILE_HELD = 40  # a backoff doubling to 2 s makes ~10; a hot loop, thousands


class Forger:
    """Rewrites Batches passing from eu-west to us-east while `on` (thread-safe)."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.on = False
        self.target: tuple[str, int] | None = None  # the (origin, seq) misfiled
        self.forged = 0
        self.pulls_while_on = 0
        self._lock = threading.Lock()

    def rewrite(self, request: bytes, answer: bytes) -> bytes:
        with self._lock:
            if not self.on:
                return answer
            self.pulls_while_on += 1
            pull, batch = decode_message(request), decode_message(answer)
            if not isinstance(pull, Pull) or not isinstance(batch, Batch):
                return answer
            records = list(batch.records)
            for index, record in enumerate(records):
                try:
                    change = decode_change(record)
                except BadChange:
                    continue
                if self.target is None and _writes_into(change, self.table):
                    self.target = (change.origin, change.seq)
                if (change.origin, change.seq) == self.target:
                    records[index] = encode_change(_forged(change, change.seq, misfile=True))
                    held = cursor_of(pull.cursors, change.origin).seq
                    if held >= 1:  # a sequence us-east holds: another change under it
                        records.append(encode_change(_forged(change, held, misfile=False)))
                    self.forged += 1
            return encode_message(Batch(batch.request_id, tuple(records), batch.has_more,
                                        batch.log_start))


def _writes_into(change: Change, table: str) -> bool:
    return any(isinstance(op, ItemWrite) and op.item is not None and op.table == table
               for op in change.ops)


def _forged(change: Change, seq: int, misfile: bool) -> Change:
    ops: list[Op] = []
    for op in change.ops:
        if isinstance(op, ItemWrite) and op.item is not None:
            item = {**op.item, "forged": {"S": "yes"}}
            if misfile:
                item["pk"] = {"S": "forged-key"}
            op = ItemWrite(op.table, op.pk, op.sk, item, op.prev)
        ops.append(op)
    return Change.create(change.origin, seq, change.hlc, ops)


class _Handler(BaseHTTPRequestHandler):
    """Forwards one request to the real peer listener; pull answers go via the Forger."""

    protocol_version = "HTTP/1.1"
    server: Any

    def do_POST(self) -> None:
        self._forward("POST")

    def do_GET(self) -> None:
        self._forward("GET")

    def _forward(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length", "connection")}
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=15)
        try:
            upstream.request(method, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            status, answer = response.status, response.read()
            content_type = response.getheader("Content-Type") or "application/octet-stream"
        finally:
            upstream.close()
        if method == "POST" and self.path.startswith("/_atoll/pull") and status == 200:
            answer = self.server.forger.rewrite(body, answer)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: Any) -> None:
        pass


def _status(url: str) -> dict[str, Any]:
    return dict(node_json(url, "/_atoll/status")["replication"]["peers"]["eu-west"])


def _metric(url: str, line_start: str) -> float | None:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_a_forged_change_on_the_peer_link_is_refused_logged_and_never_stored(
        tmp_path: Path) -> None:
    # no mutual TLS: the forging proxy sits in the middle of the peer link in clear
    cluster = ClusterProcesses(tmp_path, ("us-east", "eu-west"), secure=False)
    advertised = urlsplit(cluster.config.region("eu-west").peer_endpoints[0])
    real_port = free_port()
    cluster.nodes["eu-west"].args += ["--peer-listen", f"127.0.0.1:{real_port}"]
    forger = Forger("live")
    proxy = ThreadingHTTPServer((advertised.hostname or "127.0.0.1", advertised.port or 0),
                                _Handler)
    proxy.daemon_threads = True
    proxy.upstream = ("127.0.0.1", real_port)  # type: ignore[attr-defined]
    proxy.forger = forger  # type: ignore[attr-defined]
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    east_url, west_url = cluster.url("us-east"), cluster.url("eu-west")
    try:
        cluster.start()
        east, west = client(east_url), client(west_url)
        create_table(west, "live")
        assert wait_until(lambda: "live" in east.list_tables()["TableNames"], 15)
        forger.on = True
        for key in ("k1", "k2", "k3"):
            west.put_item(TableName="live", Item={"pk": {"S": key}, "v": {"S": key}})
        assert wait_until(lambda: forger.forged >= 2, 10), forger.forged
        held_since = time.monotonic()
        while time.monotonic() - held_since < HOLD_S:  # eu-west's changes wait behind it
            assert scan_all(east, "live") == {}, "a change of eu-west got past the refused one"
            time.sleep(0.2)
        status = _status(east_url)
        assert status["refusing"] is True and status["refused_changes"] >= 2, status
        assert forger.target is not None
        origin, seq = forger.target
        assert f"{origin}/{seq} (key mismatch)" in status["last_refusal"] or \
            "reused sequence" in status["last_refusal"], status
        print(f"held {HOLD_S:.0f} s behind {origin}/{seq}: {forger.pulls_while_on} pulls, "
              f"{forger.forged} forged answers, {status['refused_changes']} refusals")
        assert forger.pulls_while_on <= MAX_PULLS_WHILE_HELD, forger.pulls_while_on
        counted = _metric(east_url, 'atoll_replication_refused_changes_total{peer="eu-west"}')
        assert counted is not None and counted >= 2, counted
        forger.on = False  # the true change goes through now
        assert wait_until(lambda: len(scan_all(east, "live")) == 3, 20)
        assert wait_until(lambda: scan_all(east, "live") == scan_all(west, "live"), 10)
        for items in (scan_all(east, "live"), scan_all(west, "live")):
            assert sorted(items) == ["k1", "k2", "k3"]
            assert not any("forged" in item for item in items.values())
        assert wait_until(lambda: _status(east_url)["refusing"] is False, 10)
        log = cluster.nodes["us-east"].log()
        misfiled = [line for line in log.splitlines()
                    if f"refused change {origin}/{seq} (key mismatch)" in line]
        assert len(misfiled) == 1, misfiled  # once, however many times it came
        assert "table live" in misfiled[0] and "{'pk': {'S': 'k1'}}" in misfiled[0]
        assert "forged-key" in misfiled[0]
        reused = [line for line in log.splitlines() if "(reused sequence)" in line]
        assert len(reused) == 1 and f"{origin}/{seq - 1}" in reused[0], reused
    finally:
        cluster.stop()
        proxy.shutdown()
        proxy.server_close()
