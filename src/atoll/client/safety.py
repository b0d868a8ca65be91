"""Which requests may be sent a second time, to another region, after an attempt that
may have reached the first one (pure).

Reads always. Writes only when applying them twice leaves the same item and gives the
same answer: PutItem and DeleteItem without a condition or ReturnValues, UpdateItem
whose expression only SETs constants and REMOVEs, BatchWriteItem (whole-item puts and
deletes), and TransactWriteItems made only of such actions. Anything with a condition
could fail the second time on what the first attempt wrote, reporting a write that
happened as refused; ADD, `x = x + :n`, list_append and friends would count twice.
A ClientRequestToken does not make a transaction safe here: tokens are remembered by
the region that saw them, and the second attempt goes to another region.
"""

from __future__ import annotations

import re
from typing import Any

READ_OPERATIONS = frozenset({
    "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "DescribeTable",
    "ListTables", "DescribeTimeToLive", "ListTagsOfResource", "DescribeLimits",
    "DescribeEndpoints", "DescribeContinuousBackups"})

# SET a = :v, REMOVE b: applying twice gives the same item. `+`, `-`, if_not_exists and
# list_append depend on what is there, ADD and DELETE accumulate.
_NOT_IDEMPOTENT_UPDATE = re.compile(r"[+\-]|\b(?:ADD|DELETE|if_not_exists|list_append)\b",
                                    re.IGNORECASE)


def retry_safe(operation: str, request: dict[str, Any]) -> bool:
    """May this request be sent again, to another region, after an attempt that may have
    reached the server? Reads always; writes only when applying them twice leaves the
    same item and the same answer."""
    if operation in READ_OPERATIONS:
        return True
    if operation in ("PutItem", "DeleteItem", "UpdateItem"):
        return _write_safe(operation, request)
    if operation == "BatchWriteItem":
        return True  # puts and deletes of whole items, unconditional
    if operation == "TransactWriteItems":
        # idempotent in effect when every action is; a ConditionCheck (or any condition)
        # would fail the second time and report a write that happened as cancelled
        actions = request.get("TransactItems")
        return isinstance(actions, list) and all(_action_safe(a) for a in actions)
    return False  # CreateTable, DeleteTable, UpdateTable, ...


def _write_safe(operation: str, request: dict[str, Any]) -> bool:
    if any(k in request for k in ("ConditionExpression", "Expected")):
        return False  # the second attempt may fail the condition the first one changed
    if request.get("ReturnValues", "NONE") not in ("NONE", None):
        return False  # the second attempt would return the first one's result as old
    if operation != "UpdateItem":
        return True
    expression = request.get("UpdateExpression")
    return (isinstance(expression, str) and "AttributeUpdates" not in request
            and _NOT_IDEMPOTENT_UPDATE.search(expression) is None)


def _action_safe(action: Any) -> bool:
    if not isinstance(action, dict) or len(action) != 1:
        return False
    (kind, body), = action.items()
    operation = {"Put": "PutItem", "Delete": "DeleteItem", "Update": "UpdateItem"}.get(kind)
    return operation is not None and isinstance(body, dict) and _write_safe(operation, body)

