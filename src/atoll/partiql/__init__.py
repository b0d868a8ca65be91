"""PartiQL for DynamoDB, translated into the DynamoDB requests the engine already runs.

Theory of operation: `parse` turns a statement (with its `?` bound to the request's
Parameters) into a tree (`nodes`); `translate_select` / `translate_write` turn the tree,
given the table's key schema (`TableSchema`, from the catalog), into plans: the GetItem,
Query, Scan, PutItem, UpdateItem, DeleteItem or ConditionCheck requests that do what the
statement says (`plans` documents the rules). The engine shell
(`atoll.engine.partiql_ops`) runs those requests through the ordinary handlers, so a
statement is validated, executed, logged and replicated exactly like the request it
stands for. `results` shapes what a SELECT answers; `paging` is its NextToken.

Pure code: no I/O, no clock, no randomness.

Modules: `tokens` (lexer), `parser`, `nodes`, `render` (DynamoDB expression text),
`plans`, `results`, `paging`, `schema`.
"""

from __future__ import annotations

from typing import Any

from atoll.model.values import check_value
from atoll.partiql import paging
from atoll.partiql.nodes import Delete, Exists, Insert, Select, Statement, Update, is_read
from atoll.partiql.parser import PARAMETER_COUNT
from atoll.partiql.parser import parse as _parse
from atoll.partiql.plans import (
    BATCH,
    STATEMENT,
    TRANSACTION,
    Residual,
    SelectPlan,
    WritePlan,
    translate_select,
    translate_write,
)
from atoll.partiql.results import keeps, reshape
from atoll.partiql.schema import IndexSchema, TableSchema

__all__ = [
    "BATCH", "PARAMETER_COUNT", "STATEMENT", "TRANSACTION", "Delete", "Exists", "IndexSchema",
    "Insert", "Residual", "Select", "SelectPlan", "Statement", "TableSchema", "Update",
    "WritePlan", "is_read", "keeps", "paging", "parse", "reshape", "table_of",
    "translate_select", "translate_write",
]


def parse(statement: str, parameters: list[Any] | None = None) -> Statement:
    """Parse one statement; each parameter is checked (and its numbers normalised) as an
    attribute value first."""
    for parameter in parameters or ():
        check_value(parameter)
    return _parse(statement, parameters)


def table_of(statement: Statement) -> str:
    """The table a statement reads or writes."""
    if isinstance(statement, Exists):
        return statement.select.source.table
    return statement.source.table
