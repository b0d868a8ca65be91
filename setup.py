"""Build: the request path is compiled to C extensions with mypyc, when it can be.

Atoll stays Python source; mypyc (part of mypy, pinned for the type check and listed
in the build requirements) turns the typed modules a request runs through into C
extensions, which Python imports in place of the .py files beside them. Measured in
interleaved rounds against the interpreted build (README "Performance"): wrk PutItem
x1.17, UpdateItem x1.49, the mixed workload x1.02 and GetItem no gain (their time was
in C already).

Left interpreted:
- the CLI, the failover client, the drill and the simulator (not on the request path);
- `replication/memory_store.py` (the simulator's store; mypyc cannot compile it);
- `storage/writepath.py` (a few calls per batch; its tests spy on it);
- `http/tlsaccept.py` (subclasses the event loop's SSL protocols; runs once per accepted
  peer connection, never per request);
- the operator endpoints of `node/` (metrics, console, figures, conflict log, cluster
  view: read at scrape or poll time, never per request).
- `storage/postgres/` and `node/shared_region.py` (their time is spent waiting on
  PostgreSQL's round trips, and they call into psycopg, a package mypyc does not know).

The same source runs interpreted, so the build falls back to pure Python — with a
warning, and all or nothing (the compiled modules share one library) — when
- `ATOLL_PURE_PYTHON=1` asks for it (an application that needs only `atoll.client`,
  or a wheel for every platform: `ATOLL_PURE_PYTHON=1 pip wheel .`);
- mypyc cannot be imported (a build environment without mypy);
- there is no C compiler or no Python headers (`Python.h`);
- mypyc or the compiler fails.
`/_atoll/status` says which build a node runs ("compiled").
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED_PACKAGES = ("api", "clock", "engine", "expressions", "http", "model", "node",
                     "replication", "storage", "streams", "topology")
INTERPRETED = {"replication/memory_store.py", "storage/writepath.py", "http/tlsaccept.py",
               "node/clusterview.py", "node/conflictlog.py", "node/console.py",
               "node/figures.py", "node/metrics.py", "node/operator.py",
               "node/shared_region.py"}
INTERPRETED_PACKAGES = ("storage/postgres/",)


def _warn(message: str) -> None:
    print(f"atoll build: {message}; installing the pure Python build", file=sys.stderr)


def compiled_modules() -> list[str]:
    root = Path("src/atoll")
    return sorted(str(path) for package in COMPILED_PACKAGES
                  for path in (root / package).rglob("*.py")
                  if path.relative_to(root).as_posix() not in INTERPRETED
                  and not path.relative_to(root).as_posix().startswith(INTERPRETED_PACKAGES))


def missing_toolchain() -> str | None:
    """Why C extensions cannot be built here, or None if a compiler and headers exist."""
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(compiler)
    if not words or shutil.which(words[0]) is None:
        return f"no C compiler ({compiler!r} not found)"
    headers = sysconfig.get_paths().get("include") or ""
    if not os.path.exists(os.path.join(headers, "Python.h")):
        return f"no Python headers (Python.h not in {headers!r})"
    return None


def extensions() -> list[Any]:
    if os.environ.get("ATOLL_PURE_PYTHON") == "1":
        return []
    why = missing_toolchain()
    if why is not None:
        _warn(why)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not installed")
        return []
    try:
        return list(mypycify(compiled_modules(), opt_level="3"))
    except (Exception, SystemExit) as exc:  # mypyc reports type errors by exiting
        _warn(f"mypyc failed ({exc})")
        return []


class OptionalBuildExt(build_ext):
    """Build every extension or none: if compiling fails, remove what was built (a
    module's shim without the shared library it calls would not import)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, a missing tool
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            _warn(f"compiling the extensions failed ({exc})")
            self.extensions = []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
