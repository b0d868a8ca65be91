"""Build: the request path is compiled to C extensions with mypyc, when it can be.

Atoll stays Python source; mypyc (part of mypy, pinned for the type check and listed
in the build requirements) turns the typed modules a request runs through into C
extensions, which Python imports in place of the .py files beside them. Measured in
interleaved rounds against the interpreted build (README "Performance"): wrk PutItem
x1.17, UpdateItem x1.49, the mixed workload x1.02 and GetItem no gain (their time was
in C already).

Compiled: what a data-plane request runs through, as profiled under GetItem, PutItem,
UpdateItem, BatchWriteItem and Query load (`REQUEST_PATH`): the HTTP server, the API,
SigV4 verification and the role check (`auth/` but its exceptions, files and TLS set-up),
values and keys, the expression language, the clocks (the HLC, and the node's wall clock
every write reads), the engine's item, read, batch, transaction, index and stream-capture
modules and its causal writes, the SQLite and in-memory storages, replication's per-change
path (encoding, merge and the per-item causal state it joins, apply, the pull protocol)
that replication's throughput rests on, the tables a request names and the internal-table
names (`auth/permissions.py`, `engine/internal.py`: every request is checked against
them) and verify's leaf hashes (`antientropy/hashing.py`: the hash trees' upkeep on every
write, and the scrubber's re-hashing): interpreted, these three cost GetItem about 5 us
of its ~30 us of CPU (docs/performance-log.md). Those requests also call two modules that
run interpreted: `invariant` (its exception subclasses AssertionError, which mypyc cannot
compile as a native class) and the write path's stage timer (`storage/writepath.py`; a
few clock reads per batch).
Everything else runs interpreted: the rest of the engine (DDL, backups, PITR, PartiQL,
tags, TTL, repairs, the Streams API), the node's shell and operator endpoints,
replication's state machines, topology, the CLI, the failover client, the drill, the
simulator, verify, PostgreSQL's storage: code that runs per batch, per poll or per
command, not per request, whose C would add about half again to every `make setup`.

Compiled modules never await in a `finally` block (tests/unit/test_compiled_rules.py
checks it and says why): a compiled coroutine suspended there re-raises, when the block
ends, an exception another compiled coroutine raised meanwhile. With the node's shell
compiled, a node exited 1 with a pull task's CancelledError after its clean stop.

The build is one mypyc group (one shared library, so calls between compiled modules stay
native) written as one C file per module (`multi_file`), so that the C compiles on every
core (`ParallelBuildExt`): as one file it would be one compiler process on one core.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Paths under src/atoll: a package's every module ("api/"), or one module. A module added
# to a package listed by module runs interpreted until it is listed here.
REQUEST_PATH = (
    "api/", "clock/", "expressions/", "model/", "streams/",
    "auth/__init__.py", "auth/canonical.py", "auth/keycache.py", "auth/keys.py",
    "auth/permissions.py", "auth/sigv4.py", "auth/timestamps.py",
    "http/__init__.py", "http/client.py", "http/connection.py", "http/connections.py",
    "http/limits.py", "http/server.py", "http/timing.py", "http/wire.py",
    "storage/__init__.py", "storage/integrity.py", "storage/pages.py", "storage/protocol.py",
    "storage/treeprotocol.py", "storage/trees.py", "storage/memory/",
    "storage/sqlite/batches.py", "storage/sqlite/cache.py", "storage/sqlite/connection.py",
    "storage/sqlite/durability.py", "storage/sqlite/reads.py", "storage/sqlite/schema.py",
    "storage/sqlite/storage.py", "storage/sqlite/streams.py", "storage/sqlite/trees.py",
    "storage/sqlite/txn.py", "storage/sqlite/__init__.py",
    "engine/__init__.py", "engine/batch.py", "engine/capacity.py", "engine/catalog.py",
    "engine/causal.py", "engine/context.py", "engine/engine.py", "engine/expr.py",
    "engine/indexdef.py", "engine/indexes.py", "engine/items.py", "engine/outbox.py",
    "engine/queryplan.py", "engine/reads.py", "engine/replica_store.py",
    "engine/replica_txn.py",
    "engine/startkey.py", "engine/streams.py", "engine/tabledef.py", "engine/transactions.py",
    "replication/__init__.py", "replication/admission.py", "replication/apply.py",
    "replication/change.py", "replication/cursors.py", "replication/itemstate/",
    "replication/merge.py", "replication/protocol.py", "replication/serving.py",
    "replication/store.py",
    "node/clock.py", "engine/internal.py", "antientropy/hashing.py",
)


def _warn(message: str) -> None:
    print(f"atoll build: {message}; installing the pure Python build", file=sys.stderr)


def compiled_modules() -> list[str]:
    root = Path("src/atoll")
    modules = set()
    for entry in REQUEST_PATH:
        paths = sorted((root / entry).rglob("*.py")) if entry.endswith("/") else [root / entry]
        for path in paths:
            if not path.is_file():
                raise SystemExit(f"setup.py: REQUEST_PATH names {entry!r}: no {path}")
            modules.add(str(path))
    return sorted(modules)


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
        return list(mypycify(compiled_modules(), opt_level="3", multi_file=True))
    except (Exception, SystemExit) as exc:  # mypyc reports type errors by exiting
        _warn(f"mypyc failed ({exc})")
        return []


def build_jobs() -> int:
    """One compiler job per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ParallelBuildExt(build_ext):
    """Compile in parallel, and build every extension or none.

    Parallel: setuptools' own `--parallel` builds several extensions at once (the ~100
    one-file shims that point each module at the shared library); within one extension
    setuptools compiles its sources one after another, so `compile` is wrapped to hand
    the shared library's C files (one per module, and mypyc's runtime) to a pool. Each job
    is a compiler process; the threads only wait for them.

    All or nothing: if compiling fails, remove what was built (a module's shim without
    the shared library it calls would not import)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = build_jobs()

    def build_extensions(self) -> None:
        one_by_one = self.compiler.compile

        def compile_in_parallel(sources: list[str], *args: Any, **kwargs: Any) -> list[str]:
            if len(sources) < 2:
                return one_by_one(sources, *args, **kwargs)  # type: ignore[no-any-return]
            with ThreadPoolExecutor(max_workers=build_jobs()) as pool:
                batches = pool.map(lambda source: one_by_one([source], *args, **kwargs),
                                   sources)
                return [obj for batch in batches for obj in batch]

        self.compiler.compile = compile_in_parallel
        try:
            super().build_extensions()
        finally:
            self.compiler.compile = one_by_one

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, a missing tool
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            _warn(f"compiling the extensions failed ({exc})")
            self.extensions = []


setup(ext_modules=extensions(), cmdclass={"build_ext": ParallelBuildExt})
