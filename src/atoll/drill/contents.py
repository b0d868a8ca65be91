"""The regions' contents after a drill: what each holds, when they agree, what was lost.

Every region is scanned with consistent reads, every item reduced to what the checker
compares: its `v` (or a counter's number). `converge` repeats that until every region
holds the same (bounded); `read_back` reads the final contents and every region's
conflict log, whose losers are the writes a concurrent one superseded by version.
"""

from __future__ import annotations

import time
from typing import Any

import botocore.exceptions

from atoll.drill.cluster import Cluster, Credentials, get_json, plain_client

CONFLICTS_PAGE = 1000  # what /_atoll/conflicts answers at most at a time
CONVERGE_POLL_S = 0.25


Contents = dict[tuple[str, str], Any]  # (table, key) -> `v`, or a counter's number
Loser = tuple[str, str, Any]  # (table, key, the losing write's `v` or number)


def scan(url: str, tables: tuple[str, ...], credentials: Credentials | None = None) -> Contents:
    ddb = plain_client(url, credentials)
    found: Contents = {}
    for table in tables:
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = ddb.scan(**kwargs)
            for item in page["Items"]:
                key = (table, item["pk"]["S"])
                found[key] = int(item["c"]["N"]) if "c" in item else item.get("v", {}).get("S")
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found


def converge(cluster: Cluster, timeout_s: float, tables: tuple[str, ...]) -> float | None:
    """Seconds until every region held the same contents; None if not within timeout_s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            scans = [scan(cluster.url(r), tables, cluster.credentials) for r in cluster.ids]
            if all(s == scans[0] for s in scans[1:]):
                return round(time.monotonic() - started, 3)
        except (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            pass
        time.sleep(CONVERGE_POLL_S)
    return None


def read_back(cluster: Cluster, tables: tuple[str, ...]
              ) -> tuple[dict[str, Contents], list[Loser], int]:
    """(region -> contents, every conflict loser of the drill's tables, their count)."""
    finals = {r: scan(cluster.url(r), tables, cluster.credentials) for r in cluster.ids}
    losers: list[Loser] = []
    conflicts = 0
    for r in cluster.ids:
        after = 0
        while True:
            page = get_json(f"{cluster.url(r)}/_atoll/conflicts/after/{after}",
                            credentials=cluster.credentials)
            rows = page.get("conflicts", [])
            for row in rows:
                after = max(after, row["id"])
                if row["table"] not in tables:
                    continue  # the cluster's other tables (a running cluster)
                conflicts += 1
                losers.append(_loser(row))
            if len(rows) < CONFLICTS_PAGE:
                break
    return finals, losers, conflicts


def _loser(row: dict[str, Any]) -> Loser:
    """(table, key, the losing `v` or counter number) of a conflict record: a whole
    item's ("item" records), or the attribute's own value ("attribute"/"replaced"
    records name the attribute and hold its value)."""
    loser = row.get("loser", {}).get("item") or {}
    key = row.get("key") or {}
    pk = str(key.get("pk", {}).get("S", "")) if isinstance(key, dict) else ""
    attribute = row.get("attribute") or ""
    if attribute:
        loser = {attribute: loser} if isinstance(loser, dict) else {}
    value: Any = (loser.get("v", {}).get("S") if "c" not in loser
                  else int(loser["c"].get("N", 0)))
    return row["table"], pk, value
