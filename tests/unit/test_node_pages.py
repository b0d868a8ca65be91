"""Who may read and do what on a node's client port (atoll.node.admin): the pages main's
verify, repair log and database copy added need the admin role, like keys and topology
changes; status, conflicts and topology reads any key; other paths are no page."""

from __future__ import annotations

from atoll.auth.keys import ROLE_READ_ONLY, ROLE_READ_WRITE, create_key
from atoll.auth.permissions import ADMIN, READ
from atoll.http.wire import Request
from atoll.node.admin import (
    COPY_DATABASE,
    START_VERIFY,
    conflicts_for,
    page_access,
    signed,
)


def test_each_page_names_what_it_needs() -> None:
    kinds = {path: (None if (access := page_access(path)) is None else access.kind)
             for path in ("/_atoll/status", "/_atoll/topology", "/_atoll/keys",
                          "/_atoll/conflicts", "/_atoll/conflicts/after/7",
                          "/_atoll/verify/runs/3", "/_atoll/repairs",
                          "/_atoll/repairs/after/12", "/_atoll/verify/runs",
                          "/_atoll/backup", "/_atoll/elsewhere", "/")}
    assert kinds == {
        "/_atoll/status": READ, "/_atoll/topology": READ, "/_atoll/keys": ADMIN,
        "/_atoll/conflicts": READ, "/_atoll/conflicts/after/7": READ,
        "/_atoll/verify/runs/3": ADMIN, "/_atoll/repairs": ADMIN,
        "/_atoll/repairs/after/12": ADMIN,
        # POST-only actions are no GET page
        "/_atoll/verify/runs": None, "/_atoll/backup": None,
        "/_atoll/elsewhere": None, "/": None}
    assert COPY_DATABASE.kind == START_VERIFY.kind == ADMIN
    assert {COPY_DATABASE.action, START_VERIFY.action} == {"atoll:CopyDatabase",
                                                          "atoll:StartVerify"}


def _request(url: bytes, headers: list[tuple[bytes, bytes]]) -> Request:
    request = Request()
    request.method, request.url, request.headers = b"GET", url, headers
    return request


def test_a_request_is_signed_by_a_header_or_a_presigned_query() -> None:
    assert not signed(_request(b"/health", [(b"Host", b"x")]))
    assert signed(_request(b"/health", [(b"AUTHORIZATION", b"AWS4-HMAC-SHA256 ...")]))
    assert signed(_request(b"/health?X-Amz-Signature=ab", []))


def test_the_conflict_log_shows_a_key_only_the_tables_it_may_read() -> None:
    rows = [{"id": 1, "table": "A", "winner": {"item": "a"}},
            {"id": 2, "table": "B", "winner": {"item": "b"}},
            {"id": 3, "table": "atoll:keys", "winner": {"item": "sealed"}}]
    limited = create_key(ROLE_READ_ONLY, now_ms=1, tables=["A"])
    assert [r["id"] for r in conflicts_for(limited, rows)] == [1]
    unlimited = create_key(ROLE_READ_WRITE, now_ms=1)
    assert [r["id"] for r in conflicts_for(unlimited, rows)] == [1, 2]  # never an internal one
    assert [r["id"] for r in conflicts_for(None, rows)] == [1, 2]  # auth off
