"""Request validation against botocore's copy of DynamoDB's service model.

Theory of operation: botocore ships the DynamoDB service model (every operation's input
shape with its required members, lengths, ranges, enums and patterns), and DynamoDB
Streams' (`dynamodbstreams`). Rather than
retype those constraints, `validator_for(operation)` compiles the input shape once into a
tree of small checking closures. Running one collects DynamoDB-style constraint
messages ("Value null at 'tableName' failed to satisfy constraint: Member must not be
null"), which the caller joins into "N validation error(s) detected: ...". A member of the
wrong JSON type is a SerializationError, as DynamoDB answers it. AttributeValue shapes
are not walked here: `atoll.model.values` validates and normalises them in one pass.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import botocore.session

from atoll.errors import SerializationError, UnknownOperation, ValidationError

Check = Callable[[Any, str, list[str]], None]

MAX_REPORTED_ERRORS = 10  # DynamoDB lists a bounded number of violations


DYNAMODB = "dynamodb"
STREAMS = "dynamodbstreams"  # DynamoDB Streams: its own model, served on the same endpoint


@functools.cache
def service_model(service: str = DYNAMODB) -> Any:
    return botocore.session.get_session().get_service_model(service)


@functools.cache
def operation_names(service: str = DYNAMODB) -> frozenset[str]:
    return frozenset(service_model(service).operation_names)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _compile(shape: Any, memo: dict[str, Check]) -> Check:
    name = shape.name
    if name in ("AttributeValue",):
        return _ignore
    if name in memo:
        return lambda v, p, e: memo[name](v, p, e)
    kind = shape.type_name
    if kind == "structure":
        memo[name] = _ignore  # recursion guard; replaced below
        check = _structure(shape, memo)
    elif kind == "list":
        check = _list(shape, memo)
    elif kind == "map":
        check = _map(shape, memo)
    elif kind == "string":
        check = _string(shape)
    elif kind in ("integer", "long"):
        check = _integer(shape)
    elif kind == "boolean":
        check = _typed(bool, "Boolean")
    elif kind in ("double", "float"):
        check = _number(shape)
    elif kind == "timestamp":
        check = _timestamp
    elif kind == "blob":
        check = _typed(str, "Blob")
    else:
        check = _ignore
    memo[name] = check
    return check


def _ignore(value: Any, path: str, errors: list[str]) -> None:
    return None


def _typed(kind: type, label: str) -> Check:
    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not kind:
            raise SerializationError(f"Unexpected value type for '{path}': expected {label}")
    return check


def _timestamp(value: Any, path: str, errors: list[str]) -> None:
    if type(value) not in (int, float, str):
        raise SerializationError(f"Unexpected value type for '{path}': expected Timestamp")


def _structure(shape: Any, memo: dict[str, Check]) -> Check:
    members = {m: (_camel(m), _compile(s, memo)) for m, s in shape.members.items()}
    required = tuple(shape.required_members)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not dict:
            raise SerializationError(
                f"Unexpected value type for '{path or 'request'}': expected a structure")
        prefix = path + "." if path else ""
        for member in required:
            if value.get(member) is None:
                errors.append(f"Value null at '{prefix}{_camel(member)}' failed to satisfy "
                              "constraint: Member must not be null")
        for member, inner in value.items():
            entry = members.get(member)
            if entry is None or inner is None:
                continue  # DynamoDB ignores members it does not know
            entry[1](inner, prefix + entry[0], errors)
    return check


def _length_checks(shape: Any, what: str = "length") -> tuple[int | None, int | None]:
    metadata = shape.metadata
    return metadata.get("min"), metadata.get("max")


def _check_length(value: Any, size: int, low: int | None, high: int | None, path: str,
                  errors: list[str]) -> None:
    if low is not None and size < low:
        errors.append(f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: "
                      f"Member must have length greater than or equal to {low}")
    elif high is not None and size > high:
        errors.append(f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: "
                      f"Member must have length less than or equal to {high}")


def _list(shape: Any, memo: dict[str, Check]) -> Check:
    low, high = _length_checks(shape)
    element = _compile(shape.member, memo)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not list:
            raise SerializationError(f"Unexpected value type for '{path}': expected a list")
        _check_length(value, len(value), low, high, path, errors)
        if element is not _ignore:
            for index, inner in enumerate(value, 1):
                if inner is None:
                    errors.append(f"Value null at '{path}.{index}.member' failed to satisfy "
                                  "constraint: Member must not be null")
                    continue
                element(inner, f"{path}.{index}.member", errors)
    return check


def _map(shape: Any, memo: dict[str, Check]) -> Check:
    low, high = _length_checks(shape)
    key_check = _compile(shape.key, memo)
    value_check = _compile(shape.value, memo)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not dict:
            raise SerializationError(f"Unexpected value type for '{path}': expected a map")
        _check_length(value, len(value), low, high, path, errors)
        key_path = path + ".key"  # the same for every key
        for key, inner in value.items():
            key_check(key, key_path, errors)
            if value_check is _ignore:
                continue
            if inner is None:
                errors.append(f"Value null at '{path}.{key}.member' failed to satisfy "
                              "constraint: Member must not be null")
            else:
                value_check(inner, f"{path}.{key}.member", errors)
    return check


def _string(shape: Any) -> Check:
    low, high = _length_checks(shape)
    enum = shape.enum
    enum_set = frozenset(enum) if enum else None
    pattern = shape.metadata.get("pattern")
    regex = re.compile(pattern) if pattern else None

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not str:
            raise SerializationError(f"Unexpected value type for '{path}': expected String")
        if enum_set is not None and value not in enum_set:
            errors.append(f"Value '{value}' at '{path}' failed to satisfy constraint: "
                          f"Member must satisfy enum value set: [{', '.join(enum)}]")
            return
        _check_length(value, len(value), low, high, path, errors)
        if regex is not None and not regex.fullmatch(value):
            errors.append(f"Value '{value}' at '{path}' failed to satisfy constraint: "
                          f"Member must satisfy regular expression pattern: {pattern}")
    return check


def _range_check(shape: Any) -> Callable[[Any, str, list[str]], None]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")

    def check(value: Any, path: str, errors: list[str]) -> None:
        if low is not None and value < low:
            errors.append(f"Value '{value}' at '{path}' failed to satisfy constraint: "
                          f"Member must have value greater than or equal to {low}")
        elif high is not None and value > high:
            errors.append(f"Value '{value}' at '{path}' failed to satisfy constraint: "
                          f"Member must have value less than or equal to {high}")
    return check


def _integer(shape: Any) -> Check:
    in_range = _range_check(shape)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not int:
            if type(value) is float and value.is_integer():
                value = int(value)
            else:
                raise SerializationError(f"Unexpected value type for '{path}': expected Integer")
        in_range(value, path, errors)
    return check


def _number(shape: Any) -> Check:
    in_range = _range_check(shape)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) not in (int, float):
            raise SerializationError(f"Unexpected value type for '{path}': expected Number")
        in_range(value, path, errors)
    return check


@functools.cache
def validator_for(operation: str, service: str = DYNAMODB) -> Check:
    if operation not in operation_names(service):
        raise UnknownOperation(f"Unknown operation: {operation}")
    input_shape = service_model(service).operation_model(operation).input_shape
    if input_shape is None:
        return _ignore
    return _compile(input_shape, {})


# Operations that refuse a request without a ResourceArn before checking it against the
# model, with their own message (dynalite's validations/tagResource.js and
# untagResource.js, whose tests were recorded against DynamoDB: an empty body is
# "Invalid TableArn").
_ARN_FIRST = frozenset({"TagResource", "UntagResource"})


# validator_for's answers by service and operation: a plain dict lookup per request
# (functools.cache's wrapper, called with two arguments, costs about 0.4 µs compiled).
_CHECKS: dict[str, dict[str, Check]] = {DYNAMODB: {}, STREAMS: {}}


def validate_request(operation: str, request: Any, service: str = DYNAMODB) -> None:
    """Raise ValidationError (or SerializationError) if `request` breaks the model of
    `service` (DynamoDB's, or DynamoDB Streams')."""
    if operation in _ARN_FIRST and type(request) is dict and request.get("ResourceArn") is None:
        raise ValidationError("Invalid TableArn")
    errors: list[str] = []
    checks = _CHECKS[service]
    check = checks.get(operation)
    if check is None:  # at most once per operation of the model: validator_for refuses others
        check = checks[operation] = validator_for(operation, service)
    check(request, "", errors)
    if errors:
        shown = errors[:MAX_REPORTED_ERRORS]
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise ValidationError(f"{count} validation {noun} detected: " + "; ".join(shown))
