"""DynamoDB error shapes: the one place core exceptions become `__type` + status.

SDKs map `__type` (the part after '#') to exception classes, so the prefixes and names
must be exactly DynamoDB's.
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll import errors as e
from atoll.auth import errors as auth

_DYNAMO = "com.amazonaws.dynamodb.v20120810#"
_CORAL_VALIDATE = "com.amazon.coral.validate#"
_CORAL_SERVICE = "com.amazon.coral.service#"

# core exception -> (status, __type)
ERROR_SHAPES: dict[type[e.AtollError], tuple[int, str]] = {
    e.ValidationError: (400, _CORAL_VALIDATE + "ValidationException"),
    e.SerializationError: (400, _CORAL_SERVICE + "SerializationException"),
    e.UnknownOperation: (400, _CORAL_SERVICE + "UnknownOperationException"),
    e.ResourceNotFound: (400, _DYNAMO + "ResourceNotFoundException"),
    e.ResourceInUse: (400, _DYNAMO + "ResourceInUseException"),
    e.ConditionalCheckFailed: (400, _DYNAMO + "ConditionalCheckFailedException"),
    e.DuplicateItem: (400, _DYNAMO + "DuplicateItemException"),
    e.TransactionCanceled: (400, _DYNAMO + "TransactionCanceledException"),
    e.TransactionConflict: (400, _DYNAMO + "TransactionConflictException"),
    e.IdempotentParameterMismatch: (400, _DYNAMO + "IdempotentParameterMismatchException"),
    e.LimitExceeded: (400, _DYNAMO + "LimitExceededException"),
    e.ItemCollectionSizeLimitExceeded: (400, _DYNAMO + "ItemCollectionSizeLimitExceededException"),
    e.TableNotFound: (400, _DYNAMO + "TableNotFoundException"),
    e.TableAlreadyExists: (400, _DYNAMO + "TableAlreadyExistsException"),
    e.TableInUse: (400, _DYNAMO + "TableInUseException"),
    e.BackupNotFound: (400, _DYNAMO + "BackupNotFoundException"),
    e.BackupInUse: (400, _DYNAMO + "BackupInUseException"),
    e.ContinuousBackupsUnavailable: (400, _DYNAMO + "ContinuousBackupsUnavailableException"),
    e.PointInTimeRecoveryUnavailable: (400, _DYNAMO + "PointInTimeRecoveryUnavailableException"),
    e.InvalidRestoreTime: (400, _DYNAMO + "InvalidRestoreTimeException"),
    e.GlobalTableNotFound: (400, _DYNAMO + "GlobalTableNotFoundException"),
    e.ExpiredIterator: (400, _DYNAMO + "ExpiredIteratorException"),
    e.TrimmedDataAccess: (400, _DYNAMO + "TrimmedDataAccessException"),
    e.ServiceUnavailable: (503, _CORAL_SERVICE + "ServiceUnavailableException"),
    e.InternalError: (500, _DYNAMO + "InternalServerError"),
    # authentication and authorization (atoll.auth.errors says when each is raised)
    auth.MissingAuthenticationToken: (400, _CORAL_SERVICE + "MissingAuthenticationTokenException"),
    auth.IncompleteSignature: (400, _CORAL_SERVICE + "IncompleteSignatureException"),
    auth.InvalidSignature: (400, _CORAL_SERVICE + "InvalidSignatureException"),
    auth.UnrecognizedClient: (400, _CORAL_SERVICE + "UnrecognizedClientException"),
    auth.ExpiredToken: (400, _CORAL_SERVICE + "ExpiredTokenException"),
    auth.AccessDenied: (400, _CORAL_SERVICE + "AccessDeniedException"),
}


# Which of DynamoDB's two validation layers words an operation's refusal of an attribute
# value (captured in four regions in the paritysuite conformance suite,
# tests/tier3/error-messages/valueLayers.test.ts): the current one, inside the
# "1 validation error detected: " envelope for the single-item writes and bare for the
# single-item and query reads, with no wrapper around an ExpressionAttributeValues entry;
# every other operation the older one, bare, with such an entry inside
# "ExpressionAttributeValues contains invalid value: ... for key :v".
_VALUES_ENVELOPED = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
_VALUES_CURRENT = frozenset({"GetItem", "BatchGetItem", "Query"})


def value_message(error: e.InvalidValue, operation: str) -> str:
    """How `operation` words its refusal of an attribute value."""
    if operation in _VALUES_ENVELOPED:
        return "1 validation error detected: " + error.message
    if operation in _VALUES_CURRENT:
        return error.message
    if error.key is not None:
        return f"ExpressionAttributeValues contains invalid value: {error.older} for key {error.key}"
    return error.older


def error_response(error: e.AtollError, operation: str = "") -> tuple[int, bytes]:
    """`operation`: the DynamoDB operation that failed (some refusals are worded per
    operation)."""
    status, type_name = (500, _DYNAMO + "InternalServerError")
    for cls in type(error).__mro__:
        shape = ERROR_SHAPES.get(cls)  # type: ignore[arg-type]
        if shape is not None:
            status, type_name = shape
            break
    message = error.message
    if isinstance(error, e.InvalidValue):
        message = value_message(error, operation)
    body: dict[str, Any] = {"__type": type_name, "message": message}
    if isinstance(error, e.ConditionalCheckFailed) and error.item is not None:
        body["Item"] = error.item
    if isinstance(error, e.TransactionCanceled):
        body["CancellationReasons"] = error.reasons
    return status, orjson.dumps(body)


def internal_error_response() -> tuple[int, bytes]:
    return 500, orjson.dumps({"__type": _DYNAMO + "InternalServerError",
                              "message": "Internal server error"})
