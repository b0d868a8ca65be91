"""The drill's last check: a verify of every region pair over the drill's tables.

Once the regions have converged and their contents are read back, the drill asks one
node to run `atoll verify` (POST /_atoll/verify/runs, quick: the hash trees alone, which
is what differs when an apply was lost or a merge went wrong; nothing in a drill edits
rows behind Atoll's back) and follows the run to its end. Every pair of regions must
report MATCH: a TRANSIENT left after convergence, a DIVERGED or a run that could not
complete fails the drill. Bounded: the run is followed for `timeout_s` at most.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from botocore.credentials import Credentials as Keys

from atoll.client.signing import sign

POLL_S = 0.5
REQUEST_TIMEOUT_S = 10.0


def _call(url: str, body: dict[str, Any] | None,
          credentials: tuple[str, str] | None) -> tuple[int, Any]:
    """A signed call (verify runs need an admin key: node/admin.py) when the drill has
    the cluster's key; unsigned for a cluster with auth off."""
    data = None if body is None else json.dumps(body).encode()
    method = "GET" if body is None else "POST"
    headers = {"Content-Type": "application/json"}
    if credentials is not None:
        headers = sign(Keys(*credentials), method, url, data or b"", headers)
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {"message": exc.read().decode(errors="replace")[:300]}


def verify_regions(url: Callable[[str], str], regions: list[str], tables: tuple[str, ...],
                   timeout_s: float, credentials: tuple[str, str] | None = None
                   ) -> dict[str, Any]:
    """{"passed", "exit_code", "pairs": [{table, a, b, summary, keys_compared}],
    "diverged_keys", "error"}: one verify run over `tables`, asked of the first region
    whose node starts it."""
    reasons = []
    for region in regions:
        try:
            status, answer = _call(url(region) + "/_atoll/verify/runs",
                                   {"tables": list(tables), "deep": False, "repair": False},
                                   credentials)
        except (OSError, ValueError) as exc:
            reasons.append(f"{region}: {exc}")
            continue
        if status == 202:
            return _follow(url(region), int(answer["id"]), timeout_s, credentials)
        reasons.append(f"{region}: {answer.get('message', status)}")
    return _failed("no node started the verify: " + "; ".join(reasons))


def _follow(endpoint: str, run_id: int, timeout_s: float,
            credentials: tuple[str, str] | None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status, view = _call(f"{endpoint}/_atoll/verify/runs/{run_id}", None, credentials)
        except (OSError, ValueError) as exc:
            return _failed(f"lost the verify run: {exc}")
        if status != 200:
            return _failed(f"the verify run answered {status}: {view.get('message')}")
        if view["state"] != "running":
            return _outcome(view)
        time.sleep(POLL_S)
    return _failed(f"the verify run did not finish within {timeout_s:.0f} s")


def _outcome(view: dict[str, Any]) -> dict[str, Any]:
    pairs = [{"table": t["table"], "a": p["a"], "b": p["b"], "summary": p["summary"],
              "keys_compared": p["keys_compared"]} for t in view["tables"] for p in t["pairs"]]
    errors = [f"{t['table']}: {t['error']}" for t in view["tables"] if t["error"]]
    if view["error"]:
        errors.append(view["error"])
    code = int(view["exit_code"])
    return {"passed": code == 0 and all(p["summary"] == "MATCH" for p in pairs),
            "exit_code": code, "pairs": pairs,
            "diverged_keys": sum(len(t["diverged_keys"]) for t in view["tables"]),
            "error": "; ".join(errors)}


def _failed(why: str) -> dict[str, Any]:
    return {"passed": False, "exit_code": 2, "pairs": [], "diverged_keys": 0, "error": why}
