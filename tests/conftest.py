"""Shared fixtures: one live server per test session, and fresh tables per test."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pg import fresh_schema_dsn, pg_server  # noqa: F401  (fixture)
from tests.support import ServerProcess, client, create_table, resource, scratch_dir_made

_names = itertools.count()

_SRC = Path(__file__).resolve().parent.parent / "src" / "atoll"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test stale compiled modules: Python imports a module's C extension in
    place of its .py, so an edit made after the build would not be what runs."""
    stale = [str(ext.relative_to(_SRC.parent)) for ext in _SRC.rglob("*.so")
             if (py := ext.with_name(ext.name.split(".")[0] + ".py")).exists()
             and py.stat().st_mtime > ext.stat().st_mtime]
    if stale:
        pytest.exit(f"compiled modules older than their source (run `make setup`): {stale}",
                    returncode=4)


LIVE_GROUP = "live"
BESIDE_OTHERS = "beside_others"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{BESIDE_OTHERS}: an integration test with a server of its own that may "
        "run beside other tests, as the API tests do (tests/conftest.py)")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs the suite on two pytest-xdist workers (`--dist loadgroup`). The
    integration tests that do not use the session's `server` start servers, clusters or
    PostgreSQL of their own and time what they do; they form group "live", which runs on
    one worker, one test after another, as it would without xdist: two clusters racing
    for two cores would make their timeouts a matter of luck. Every other test (unit,
    property, simulation, conformance, and the API tests against each worker's session
    servers) is shared out between both workers, and so are the integration tests marked
    `beside_others`: they run one server at a time and time nothing, as the API tests
    do, so a second worker's CPU cannot fail them, nor do they take more of the live
    worker's cores than an API test would. The live group is the longest share of a
    `-n 2` run: what leaves it shortens the run.

    pytest-xdist 3.8 tells its scheduler an item's group by suffixing `item._nodeid` with
    "@group", which pytest 9 no longer reads (an item's id is `item._id`): on an xdist
    worker the suffix is set here where pytest reads it, or the group would be ignored."""
    on_xdist_worker = bool(getattr(config.option, "loadgroup", False))
    for item in items:
        if (not item.nodeid.startswith("tests/integration/") or _uses_session_server(item)
                or item.get_closest_marker(BESIDE_OTHERS) is not None):
            continue
        item.add_marker(pytest.mark.xdist_group(LIVE_GROUP))
        if on_xdist_worker and not item.nodeid.endswith("@" + LIVE_GROUP):
            item._id = type(item._id).parse(f"{item.nodeid}@{LIVE_GROUP}")


def _uses_session_server(item: pytest.Item) -> bool:
    """Whether `item` talks to this file's session `server`, not a module's own fixture
    of that name (test_connection_limits' server times its answers: it is live)."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get("server", ()) if info is not None else ()
    return bool(definitions) and definitions[-1].func.__module__ == __name__


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[pytest.TestReport]:
    """A failed test's report says where its servers' logs are: they are kept (see
    `pytest_sessionfinish`), and under pytest-xdist each worker has a directory of its
    own, which the traceback does not name."""
    report: pytest.TestReport = yield
    if report.failed:
        kept = []
        scratch = scratch_dir_made()
        if scratch is not None:
            kept.append(f"server logs of this test process (atoll-test-<port>.log): {scratch}")
        tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
        if tmp_path is not None:
            kept.append(f"this test's tmp_path (cluster data and region logs): {tmp_path}")
        if kept:
            report.sections.append(("atoll: kept for this failure", "\n".join(kept)))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove this process's scratch directory (servers' logs and key files under
    TMPDIR) unless a test failed or the run was cut short: a run leaves nothing behind
    then but pytest's own tmp_path directories, of which pytest keeps the last three
    runs'. Each pytest-xdist worker removes its own."""
    scratch = scratch_dir_made()
    if scratch is None:
        return
    if session.testsfailed == 0 and exitstatus in (pytest.ExitCode.OK,
                                                   pytest.ExitCode.NO_TESTS_COLLECTED):
        shutil.rmtree(scratch, ignore_errors=True)


# The API tests run against a node on each storage: SQLite (a file per node) and
# PostgreSQL (a throwaway server, tests/pg.py). ATOLL_TEST_STORAGES narrows the list.
STORAGES = tuple(os.environ.get("ATOLL_TEST_STORAGES", "sqlite,postgresql").split(","))


@pytest.fixture(scope="session", params=STORAGES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ServerProcess]:
    extra = []
    if request.param == "postgresql":
        extra = ["--storage", fresh_schema_dsn(request.getfixturevalue("pg_server"), "api")]
    process = ServerProcess(data_dir=tmp_path_factory.mktemp("atoll-data"), extra=extra).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def ddb(server: ServerProcess) -> Any:
    return client(server.url)


@pytest.fixture(scope="session")
def dynamodb(server: ServerProcess) -> Any:
    return resource(server.url)


@pytest.fixture
def table_name() -> str:
    return f"test_table_{next(_names)}"


@pytest.fixture
def hash_table(ddb: Any, table_name: str) -> str:
    """A table with a string partition key `pk` only."""
    return create_table(ddb, table_name)


@pytest.fixture
def range_table(ddb: Any, table_name: str) -> str:
    """A table with `pk` (S) and a numeric sort key `sk` (N)."""
    return create_table(ddb, table_name, range_key=("sk", "N"))


@pytest.fixture(scope="session")
def raw_ddb(server: ServerProcess) -> Any:
    """A boto3 client that skips botocore's own parameter validation, so malformed
    requests reach the server and the server's answer is what gets tested."""
    return client(server.url, parameter_validation=False)
