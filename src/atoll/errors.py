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


class InvalidValue(ValidationError):
    """An attribute value DynamoDB refuses: a malformed or out-of-range number, a set with
    a duplicate member, nesting too deep, an empty or ambiguous value.

    DynamoDB words these two ways, depending on which of its validation layers the
    operation runs (the api layer picks): `message` is the current layer's wording,
    `older` the older layer's. `key` names the ExpressionAttributeValues entry the value
    came from, if it came from one; `reason` is what a transaction's cancellation
    reason says when its write would store such a value."""

    def __init__(self, message: str, older: str | None = None, key: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.older = older if older is not None else message
        self.key = key
        self.reason = reason if reason is not None else message

    def for_key(self, key: str) -> InvalidValue:
        """The same refusal, of the value of ExpressionAttributeValues entry `key`."""
        return InvalidValue(self.message, self.older, key, self.reason)


class KeyTooLong(ValidationError):
    """A key value over DynamoDB's key size limits (2,048 bytes partition, 1,024 sort)."""


class KeySchemaMismatch(ValidationError):
    """A key attribute of the wrong type, or a key without the schema's attributes.
    Inside a transaction this cancels the action instead of refusing the request."""


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


class ExpiredIterator(AtollError):
    """A stream's shard iterator is older than 15 minutes (ExpiredIteratorException)."""


class TrimmedDataAccess(AtollError):
    """A stream read asked for records already trimmed (TrimmedDataAccessException)."""


class ServiceUnavailable(AtollError):
    """The node is shutting down or cannot serve right now (HTTP 503)."""


class ClockOffsetTooLarge(ServiceUnavailable):
    """This region's clock differs from most of its peers' by more than the configured
    maximum: its writes are refused (retryable, HTTP 503) until the clock is corrected;
    reads are served."""


class InternalError(AtollError):
    """A bug: reported as InternalServerError (HTTP 500); never used for bad input."""
