"""Core exceptions.

The core (model, expressions, engine, storage) raises these; `atoll.api.errors` maps each
one, once, onto the DynamoDB error shape an SDK expects. Nothing below `api` knows about
`__type` strings or HTTP status codes.
"""

from __future__ import annotations

from typing import Any


class AtollError(Exception):
    """Base of every error Atoll reports to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(AtollError):
    """The request is malformed or breaks a DynamoDB rule (ValidationException)."""


class SerializationError(AtollError):
    """The body could not be deserialised into the operation's shape."""


class UnknownOperation(AtollError):
    """X-Amz-Target names no DynamoDB operation."""


class ResourceNotFound(AtollError):
    """The table or index does not exist (ResourceNotFoundException)."""


class ResourceInUse(AtollError):
    """The table already exists or is being changed (ResourceInUseException)."""


class ConditionalCheckFailed(AtollError):
    """A ConditionExpression evaluated to false; `item` is the old item when asked for."""

    def __init__(self, message: str = "The conditional request failed",
                 item: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.item = item


class DuplicateItem(AtollError):
    """A PartiQL INSERT found an item with the same primary key (DuplicateItemException)."""


class TransactionCanceled(AtollError):
    """One or more actions of a transaction failed; `reasons` has one entry per action."""

    def __init__(self, message: str, reasons: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.reasons = reasons


class TransactionConflict(AtollError):
    """Another transaction is changing the same item."""


class IdempotentParameterMismatch(AtollError):
    """A ClientRequestToken was reused with different parameters."""


class LimitExceeded(AtollError):
    """Too many tables or indexes being changed at once (LimitExceededException)."""


class ItemCollectionSizeLimitExceeded(AtollError):
    """An item collection in a table with an LSI exceeds 10 GB."""


class TableNotFound(AtollError):
    """A backup or restore names a source table that does not exist (TableNotFoundException)."""


class TableAlreadyExists(AtollError):
    """A restore's target table exists already (TableAlreadyExistsException)."""


class TableInUse(AtollError):
    """A restore's target table is being created or deleted (TableInUseException)."""


class BackupNotFound(AtollError):
    """No backup has the given ARN (BackupNotFoundException)."""


class BackupInUse(AtollError):
    """The backup is being created, deleted or restored (BackupInUseException)."""


class BackupCorrupted(ValidationError):
    """A backup file failed verification (a record's checksum, the whole file's hash, its
    structure): it is refused, never restored from."""


class ContinuousBackupsUnavailable(AtollError):
    """Backups cannot be taken or configured for this table now
    (ContinuousBackupsUnavailableException)."""


class PointInTimeRecoveryUnavailable(AtollError):
    """Point-in-time recovery is not enabled for the source table
    (PointInTimeRecoveryUnavailableException)."""


class InvalidRestoreTime(AtollError):
    """The restore time lies outside the restorable window (InvalidRestoreTimeException)."""


class GlobalTableNotFound(AtollError):
    """No global table has the given name (GlobalTableNotFoundException)."""


class ServiceUnavailable(AtollError):
    """The node is shutting down or cannot serve right now (HTTP 503)."""


class InternalError(AtollError):
    """A bug: reported as InternalServerError (HTTP 500); never used for bad input."""
