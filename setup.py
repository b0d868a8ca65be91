"""Build: the request path is compiled to C extensions with mypyc.

Atoll stays Python source; mypyc (part of mypy, already pinned for the type check) turns
the typed modules a request runs through into C extensions, which Python imports in
place of the .py files beside them. Measured in interleaved rounds against the
interpreted build (README "Performance"): wrk PutItem x1.17, UpdateItem x1.49, the mixed
workload x1.02 and GetItem no gain (their time was in C already).

Left interpreted:
- the CLI, the failover client, the drill and the simulator (not on the request path);
- `replication/memory_store.py` (the simulator's store; mypyc cannot compile it);
- `storage/writepath.py` (a few calls per batch; its tests spy on it);
- `storage/postgres/` and `node/shared_region.py` (their time is spent waiting on
  PostgreSQL's round trips, and they call into psycopg, a package mypyc does not know).

`ATOLL_PURE_PYTHON=1` builds nothing, and the same source runs interpreted.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup

COMPILED_PACKAGES = ("api", "clock", "engine", "expressions", "http", "model", "node",
                     "replication", "storage", "topology")
INTERPRETED = {"replication/memory_store.py", "storage/writepath.py", "node/shared_region.py"}
INTERPRETED_PACKAGES = ("storage/postgres/",)


def compiled_modules() -> list[str]:
    root = Path("src/atoll")
    return sorted(str(path) for package in COMPILED_PACKAGES
                  for path in (root / package).rglob("*.py")
                  if path.relative_to(root).as_posix() not in INTERPRETED
                  and not path.relative_to(root).as_posix().startswith(INTERPRETED_PACKAGES))


def extensions() -> list:
    if os.environ.get("ATOLL_PURE_PYTHON") == "1":
        return []
    from mypyc.build import mypycify
    return mypycify(compiled_modules(), opt_level="3")


setup(ext_modules=extensions())
