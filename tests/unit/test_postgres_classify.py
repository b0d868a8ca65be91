"""What each driver error means to the PostgreSQL storage (storage/postgres/connection.py)."""

from __future__ import annotations

import psycopg
from psycopg import errors as pgerrors

from atoll.storage.postgres.connection import JOB, RETRY, UNAVAILABLE, classify


def test_a_statement_skipped_after_an_earlier_failure_is_that_failure_not_a_lost_server(
        ) -> None:
    # PipelineAborted is an OperationalError without a SQLSTATE, like a broken
    # connection; it only says that an earlier statement of the pipeline failed
    assert classify(pgerrors.PipelineAborted("pipeline aborted")) == JOB


def test_a_broken_connection_is_unavailable() -> None:
    assert classify(psycopg.OperationalError("consuming input failed")) == UNAVAILABLE


def test_victims_of_the_engine_are_retried() -> None:
    assert classify(pgerrors.DeadlockDetected("deadlock")) == RETRY
    assert classify(pgerrors.SerializationFailure("could not serialize")) == RETRY
    assert classify(pgerrors.LockNotAvailable("lock timeout")) == RETRY


def test_a_refused_row_belongs_to_its_job() -> None:
    assert classify(pgerrors.UniqueViolation("duplicate key")) == JOB
