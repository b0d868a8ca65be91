"""The DynamoDB expression language: parse (cached) and evaluate, as pure code.

Theory of operation: each `parse_*` turns expression text into an immutable parsed
object, cached by text (bounded LRU), so a hot request shape is parsed once per process.
Parsed objects never hold request data; the request's ExpressionAttributeNames
(`names`) and ExpressionAttributeValues (`values`) are passed to each evaluation.
Every parsed object exposes `names_used` and `values_used` so the engine can check the
request's names and values across all its expressions at once.

Errors a client can cause raise `atoll.errors.ValidationError` with DynamoDB's message.

Modules: `tokens` (lexer), `parser` (shared machinery + condition grammar), `nodes`
(condition trees and evaluation), `values` (equality, order, size of attribute values),
`paths` (document paths), `update`, `projection`, `keycondition`, `reserved`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from atoll.expressions import keycondition as _kc
from atoll.expressions import nodes as _nodes
from atoll.expressions import projection as _projection
from atoll.expressions import update as _update
from atoll.expressions.keycondition import KeyCondition, KeyRange
from atoll.expressions.parser import Check, ConditionParser
from atoll.expressions.paths import Path
from atoll.expressions.projection import Projection
from atoll.expressions.update import Update

__all__ = [
    "Condition", "KeyCondition", "KeyRange", "Path", "Projection", "Update",
    "apply_update", "document_paths", "evaluate_condition", "parse_condition", "parse_key_condition",
    "parse_projection", "parse_update", "path_heads", "project", "project_paths",
    "resolve_key_condition", "update_only_removes", "update_touches", "validate",
]

_CACHE_SIZE = 2048


class Condition:
    """A parsed ConditionExpression or FilterExpression."""

    __slots__ = ("root", "names_used", "values_used", "checks", "kind")

    def __init__(self, root: _nodes.Condition, names_used: frozenset[str],
                 values_used: frozenset[str], checks: tuple[Check, ...], kind: str) -> None:
        self.root = root
        self.names_used = names_used
        self.values_used = values_used
        self.checks = checks
        self.kind = kind


@lru_cache(maxsize=_CACHE_SIZE)
def parse_condition(text: str, kind: str = "ConditionExpression") -> Condition:
    """Parse a ConditionExpression (or, with kind="FilterExpression", a filter)."""
    parser = ConditionParser(text, kind)
    root = parser.parse()
    return Condition(root, frozenset(parser.names_used), frozenset(parser.values_used),
                     tuple(parser.checks), kind)


@lru_cache(maxsize=_CACHE_SIZE)
def parse_update(text: str) -> Update:
    return _update.parse(text)


@lru_cache(maxsize=_CACHE_SIZE)
def parse_projection(text: str) -> Projection:
    return _projection.parse(text)


@lru_cache(maxsize=_CACHE_SIZE)
def parse_key_condition(text: str) -> KeyCondition:
    return _kc.parse(text)


def validate(parsed: Any, names: dict[str, str], values: dict[str, Any]) -> Any:
    """Run the checks that depend on the request's names and values (operand types,
    BETWEEN bounds, ...). `evaluate_condition`/`apply_update`/`resolve_key_condition`
    run them too unless told they ran; call this to report them even when nothing is
    evaluated (a filter over an empty result). For an update, returns its resolved paths
    (pass them to `apply_update` to skip the checks there)."""
    for check in getattr(parsed, "checks", ()):
        check(names, values)
    if isinstance(parsed, Update):
        return _update.resolved_paths(parsed, names)
    if isinstance(parsed, Projection):
        parsed.resolved(names)
    return None


def evaluate_condition(cond: Condition, item: dict[str, Any] | None, names: dict[str, str],
                       values: dict[str, Any], *, validated: bool = False) -> bool:
    """`validated`: `validate` already ran for these names and values."""
    if not validated:
        for check in cond.checks:
            check(names, values)
    return cond.root.test(item, names, values)


def path_heads(cond: Condition, names: dict[str, str]) -> set[str]:
    """The top-level attribute names a condition reads."""
    return _nodes.path_heads(cond.root, names)


def document_paths(parsed: Any, names: dict[str, str]) -> list[Path]:
    """The resolved document paths a condition or projection reads, or an update writes."""
    if isinstance(parsed, Condition):
        return _nodes.document_paths(parsed.root, names)
    if isinstance(parsed, Projection):
        return parsed.resolved(names)
    if isinstance(parsed, Update):
        return _update.resolved_paths(parsed, names)
    return []


def apply_update(update: Update, item: dict[str, Any], names: dict[str, str],
                 values: dict[str, Any], *, item_exists: bool = True,
                 resolved: list[Path] | None = None) -> tuple[dict[str, Any], list[Path]]:
    """A new item with the update applied, and the paths it set or removed.

    `item_exists=False` tells that `item` is only the key of an item that does not exist
    yet: DynamoDB then ignores REMOVE of nested paths instead of rejecting them.
    `resolved`: what `validate` returned for these names and values (skips its checks)."""
    return _update.apply(update, item, names, values, item_exists, resolved)


def update_touches(update: Update, names: dict[str, str], attr_names: set[str]) -> str | None:
    return _update.touches(update, names, attr_names)


def update_only_removes(update: Update) -> bool:
    """Every action of `update` is a REMOVE or a DELETE (see `update.only_removes`)."""
    return _update.only_removes(update)


def project(item: dict[str, Any], projection: Projection, names: dict[str, str]) -> dict[str, Any]:
    return _projection.project(item, projection, names)


def project_paths(item: dict[str, Any] | None, paths: list[Path]) -> dict[str, Any]:
    return _projection.project_paths(item, paths)


def resolve_key_condition(kc: KeyCondition, names: dict[str, str], values: dict[str, Any],
                          hash_key: str, range_key: str | None,
                          key_types: dict[str, str], *, validated: bool = False) -> KeyRange:
    """`validated`: `validate` already ran for these names and values (skips its checks)."""
    return _kc.resolve(kc, names, values, hash_key, range_key, key_types, validated)
