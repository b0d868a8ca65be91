"""Shared fixtures: one live server per test session, and fresh tables per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pg import fresh_schema_dsn, pg_server  # noqa: F401  (fixture)
from tests.support import ServerProcess, client, create_table, resource

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
