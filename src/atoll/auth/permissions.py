"""Roles as data: what each key may call, on which tables.

Theory of operation
- DynamoDB authorizes with IAM policies (actions like `dynamodb:GetItem` on resources
  like `arn:aws:dynamodb:us-east-1:123456789012:table/Orders`). Atoll has no policy
  language; it has three roles, and a key may be limited to a list of tables. Every
  operation falls in one class:

  | class   | operations                                                  | roles              |
  |---------|-------------------------------------------------------------|--------------------|
  | READ    | GetItem, BatchGetItem, Query, Scan, TransactGetItems,       | all                |
  |         | SearchVectors, Describe*, List*, GetResourcePolicy,         |                    |
  |         | streams (DescribeStream, GetShardIterator, GetRecords,      |                    |
  |         | ListStreams), PartiQL whose statements are all SELECT or    |                    |
  |         | EXISTS, atoll:ReadConflicts, atoll:DescribeStatus           |                    |
  | WRITE   | PutItem, UpdateItem, DeleteItem, BatchWriteItem,            | admin, read-write  |
  |         | TransactWriteItems, PartiQL with any INSERT/UPDATE/DELETE   |                    |
  | ADMIN   | everything else: CreateTable, UpdateTable, DeleteTable,     | admin              |
  |         | UpdateTimeToLive, Tag/UntagResource, backups, restores,     |                    |
  |         | exports, imports, global-table and Kinesis settings,        |                    |
  |         | resource policies, bulk operations, atoll:UpdateTopology,   |                    |
  |         | atoll:CreateKey, atoll:ListKeys, atoll:RevokeKey, and any   |                    |
  |         | operation this table does not know (fail closed)            |                    |

- read-write may not run DDL. In an active-active cluster a table definition is
  cluster-wide: DeleteTable drops the data in every region, and no merge rule undoes it;
  UpdateTable and UpdateTimeToLive change what every region keeps. Application keys are
  the ones most often leaked or misused by a bug, so the control plane stays with admin
  keys (as SQL databases keep CREATE/DROP apart from SELECT/INSERT). Applications or
  ORMs that create their tables at start-up run that step with an admin key.
- A table list limits every table-scoped operation: each table the request touches must
  be in the list. The tables are read from the request body for every operation,
  including batch and transaction ones, table ARNs, stream ARNs and PartiQL statements.
  When the tables of a table-scoped request cannot be determined (a PartiQL statement
  this module cannot read, a GetRecords whose shard iterator only the api layer can
  decode), a table-limited key is refused rather than guessed for; the api layer passes
  the tables it decoded (`Access.for_tables`). Account-level reads (ListTables,
  DescribeLimits, DescribeEndpoints, ListStreams without a table, atoll:DescribeStatus)
  are allowed to every key; the api layer filters listed names with
  `AccessKey.may_see`. An admin key is never limited to tables (it can make keys).
- A refusal is `AccessDenied` with DynamoDB's message shape: "User: arn:aws:iam::<account>:
  user/<key id> is not authorized to perform: dynamodb:<Op> on resource: arn:aws:dynamodb:
  <region>:<account>:table/<T> because no identity-based policy allows the dynamodb:<Op>
  action". Atoll's own actions use the `atoll:` prefix and resources named
  `arn:aws:dynamodb:<region>:<account>:atoll/<name>`.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from atoll.auth.errors import REASON_DENIED, AccessDenied
from atoll.auth.keys import ROLE_ADMIN, ROLE_READ_WRITE, AccessKey

READ = "read"
WRITE = "write"
ADMIN = "admin"

DEFAULT_ACCOUNT = "000000000000"

ATOLL_UPDATE_TOPOLOGY = "atoll:UpdateTopology"
ATOLL_CREATE_KEY = "atoll:CreateKey"
ATOLL_LIST_KEYS = "atoll:ListKeys"
ATOLL_REVOKE_KEY = "atoll:RevokeKey"
ATOLL_DESCRIBE_STATUS = "atoll:DescribeStatus"
ATOLL_READ_CONFLICTS = "atoll:ReadConflicts"

_ROLE_KINDS: dict[str, frozenset[str]] = {
    ROLE_ADMIN: frozenset((READ, WRITE, ADMIN)),
    ROLE_READ_WRITE: frozenset((READ, WRITE)),
    "read-only": frozenset((READ,)),
}

# Operations with no table: account-level reads any key may make.
ACCOUNT_READS = frozenset((
    "ListTables", "DescribeLimits", "DescribeEndpoints", "ListGlobalTables",
    "ListBulkOperations", ATOLL_DESCRIBE_STATUS))

TABLE_READS = frozenset((
    "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "SearchVectors",
    "DescribeTable", "DescribeTimeToLive", "DescribeContinuousBackups",
    "DescribeContributorInsights", "DescribeKinesisStreamingDestination",
    "DescribeTableReplicaAutoScaling", "DescribeGlobalTable", "DescribeGlobalTableSettings",
    "DescribeBackup", "DescribeExport", "DescribeImport", "DescribeBulkOperation",
    "ListTagsOfResource", "ListBackups", "ListContributorInsights", "ListExports",
    "ListImports", "GetResourcePolicy",
    "DescribeStream", "GetShardIterator", "GetRecords", "ListStreams",
    ATOLL_READ_CONFLICTS))

TABLE_WRITES = frozenset((
    "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"))

# Table-less reads in TABLE_READS when the optional table member is absent.
_OPTIONAL_TABLE = frozenset((
    "ListBackups", "ListContributorInsights", "ListExports", "ListImports", "ListStreams"))

PARTIQL = frozenset(("ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"))

# The members of a request body that name one table (by name or ARN), in the order
# `request_tables` reads them.
TABLE_MEMBERS: Final = ("TableName", "TableArn", "SourceTableArn", "SourceTableName",
                 "TargetTableName", "ResourceArn", "StreamArn", "GlobalTableName")
# Operations whose body names tables elsewhere too (request items, transaction actions,
# statements, creation parameters): `request_tables` reads more than TABLE_MEMBERS.
TABLES_BEYOND_MEMBERS: Final = PARTIQL | frozenset((
    "BatchGetItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems",
    "ImportTable"))

ATOLL_ADMIN_ACTIONS = frozenset((
    ATOLL_UPDATE_TOPOLOGY, ATOLL_CREATE_KEY, ATOLL_LIST_KEYS, ATOLL_REVOKE_KEY))


@dataclass(frozen=True, slots=True)
class Access:
    """What a request needs: an action, its class, and the tables it touches.

    `table_scoped` False: an account-level action (no table). True with `tables` empty:
    the tables could not be determined, so only a key with no table list may proceed.
    """

    operation: str
    kind: str
    tables: tuple[str, ...]
    table_scoped: bool

    @property
    def action(self) -> str:
        return self.operation if self.operation.startswith("atoll:") \
            else "dynamodb:" + self.operation

    def for_tables(self, tables: tuple[str, ...]) -> Access:
        return Access(self.operation, self.kind, tables, True)


def required_access(operation: str, body: Mapping[str, Any]) -> Access:
    """What `operation` with request `body` (decoded JSON) needs. Tolerant of malformed
    bodies: what it cannot read counts as unknown tables, never as no tables."""
    if operation in ACCOUNT_READS:
        return Access(operation, READ, (), False)
    if operation in PARTIQL:
        return _partiql_access(operation, body)
    if operation in TABLE_READS:
        tables = request_tables(operation, body)
        scoped = bool(tables) or operation not in _OPTIONAL_TABLE or _names_table(body)
        return Access(operation, READ, tables, scoped)
    if operation in TABLE_WRITES:
        return Access(operation, WRITE, request_tables(operation, body), True)
    return Access(operation, ADMIN, request_tables(operation, body), True)


def _names_table(body: Mapping[str, Any]) -> bool:
    return any(member in body for member in ("TableName", "TableArn", "StreamArn"))


def request_tables(operation: str, body: Mapping[str, Any]) -> tuple[str, ...]:
    """The tables `body` names, in order, without duplicates (ARNs reduced to names)."""
    found: list[str] = []
    if operation in ("BatchGetItem", "BatchWriteItem"):
        items = body.get("RequestItems")
        for name in items if isinstance(items, Mapping) else ():
            _add(found, name)
    elif operation in ("TransactGetItems", "TransactWriteItems"):
        actions = body.get("TransactItems")
        for action in actions if isinstance(actions, list) else ():
            if isinstance(action, Mapping):
                for part in action.values():
                    if isinstance(part, Mapping):
                        _add(found, part.get("TableName"))
    elif operation in PARTIQL:
        for statement in _statements(operation, body):
            parsed = partiql_statement(statement) if isinstance(statement, str) else None
            if parsed is not None:
                _add(found, parsed[1])
    for member in TABLE_MEMBERS:
        _add(found, body.get(member))
    if operation == "ImportTable":
        params = body.get("TableCreationParameters")
        if isinstance(params, Mapping):
            _add(found, params.get("TableName"))
    return tuple(dict.fromkeys(found))


def _add(found: list[str], value: object) -> None:
    if isinstance(value, str) and value:
        found.append(table_from_arn(value))


def table_from_arn(name: str) -> str:
    """`T` from a table, index, stream, export or import ARN; other names unchanged.

    Table names cannot contain ':' or '/', so a name that starts with `arn:` is an ARN.
    An ARN this cannot read becomes '' so that it matches no table list."""
    if not name.startswith("arn:"):
        return name
    parts = name.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("table/"):
        return ""
    return parts[5][len("table/"):].split("/", 1)[0]


def _statements(operation: str, body: Mapping[str, Any]) -> list[object]:
    if operation == "ExecuteStatement":
        return [body.get("Statement")]
    entries = body.get("Statements" if operation == "BatchExecuteStatement"
                       else "TransactStatements")
    if not isinstance(entries, list):
        return [None]
    return [e.get("Statement") if isinstance(e, Mapping) else None for e in entries] or [None]


def _partiql_access(operation: str, body: Mapping[str, Any]) -> Access:
    kind = READ
    tables: list[str] = []
    known = True
    for statement in _statements(operation, body):
        parsed = partiql_statement(statement) if isinstance(statement, str) else None
        if parsed is None:
            kind, known = WRITE, False
            continue
        if parsed[0] != READ:
            kind = WRITE
        tables.append(parsed[1])
    return Access(operation, kind, tuple(dict.fromkeys(tables)) if known else (), True)


_READ_VERBS = {"SELECT": "FROM", "EXISTS": "FROM"}
_WRITE_VERBS = {"INSERT": "INTO", "UPDATE": "", "DELETE": "FROM"}


def partiql_statement(statement: str) -> tuple[str, str] | None:
    """(READ or WRITE, table) of a DynamoDB PartiQL statement; None if unreadable.

    Only the leading verb decides the class (SELECT and EXISTS read; INSERT, UPDATE and
    DELETE write), and the table is the identifier right after the verb's keyword
    (FROM, INTO, or none for UPDATE); `"T"."Index"` names table T. Anything else —
    comments, another token where the identifier belongs — is unreadable, so a
    table-limited key is refused instead of being checked against a guess."""
    tokens = _partiql_tokens(statement, 64)
    if not tokens or tokens[0][0] != "word":
        return None
    verb = tokens[0][1].upper()
    if verb in _READ_VERBS:
        kind, keyword = READ, _READ_VERBS[verb]
    elif verb in _WRITE_VERBS:
        kind, keyword = WRITE, _WRITE_VERBS[verb]
    else:
        return None
    position = 1
    if keyword:
        position = next((i + 1 for i, (t, v) in enumerate(tokens)
                         if t == "word" and v.upper() == keyword), len(tokens))
    if position >= len(tokens) or tokens[position][0] not in ("word", "quoted") \
            or any(t == "bad" for t, _ in tokens[:position]):
        return None
    return kind, tokens[position][1]


def _partiql_tokens(statement: str, limit: int) -> list[tuple[str, str]]:
    """The first `limit` tokens: ("word", w), ("quoted", "identifier"), ("string", s),
    ("punct", c), or ("bad", "") for a comment opener or an unterminated quote."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(statement)
    while i < n and len(tokens) < limit:
        c = statement[i]
        if c.isspace():
            i += 1
        elif c == '"' or c == "'":
            text, i = _quoted(statement, i)
            if i < 0:
                tokens.append(("bad", ""))
                break
            tokens.append(("quoted" if c == '"' else "string", text))
        elif statement.startswith(("--", "/*"), i):
            tokens.append(("bad", ""))  # a comment could hide what the engine reads
            i += 2
        elif c.isalnum() or c == "_":
            start = i
            while i < n and (statement[i].isalnum() or statement[i] == "_"):
                i += 1
            tokens.append(("word", statement[start:i]))
        else:
            tokens.append(("punct", c))
            i += 1
    return tokens


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The quoted text opening at `start` ('' or "" escape the quote) and the index after
    it; index -1 if it never closes."""
    quote, i, parts = text[start], start + 1, []
    while i < len(text):
        end = text.find(quote, i)
        if end < 0:
            return "", -1
        parts.append(text[i:end])
        if end + 1 < len(text) and text[end + 1] == quote:
            parts.append(quote)
            i = end + 2
            continue
        return "".join(parts), end + 1
    return "", -1


def authorize(key: AccessKey, access: Access, region: str,
              account: str = DEFAULT_ACCOUNT) -> None:
    """Raise AccessDenied unless `key` may do `access`."""
    if access.kind not in _ROLE_KINDS.get(key.role, frozenset()):
        raise _denied(key, access, access.tables[0] if access.tables else None, region,
                      account)
    if key.tables is None or not access.table_scoped:
        return
    if not access.tables:
        raise _denied(key, access, "*", region, account)
    for table in access.tables:
        if table not in key.tables:
            raise _denied(key, access, table, region, account)


def may_whatever_the_tables(key: AccessKey, operation: str) -> bool:
    """True if `key`, having no table list, may make `operation` whatever tables its body
    names: the answer `authorize` would give, without reading the body (most requests
    come from such keys). False means: ask `required_access` and `authorize`."""
    if key.tables is not None or operation in PARTIQL:
        return False
    kind = READ if operation in TABLE_READS or operation in ACCOUNT_READS \
        else WRITE if operation in TABLE_WRITES else ADMIN
    return kind in _ROLE_KINDS.get(key.role, frozenset())


def authorize_request(key: AccessKey, operation: str, body: Mapping[str, Any], region: str,
                      account: str = DEFAULT_ACCOUNT) -> Access:
    """`required_access` then `authorize`; returns what was granted."""
    access = required_access(operation, body)
    authorize(key, access, region, account)
    return access


def resource_arn(access: Access, table: str | None, region: str, account: str) -> str:
    if access.operation.startswith("atoll:"):
        name = access.operation[len("atoll:"):]
        return f"arn:aws:dynamodb:{region}:{account}:atoll/{table or name}"
    return f"arn:aws:dynamodb:{region}:{account}:table/{table or '*'}"


def _denied(key: AccessKey, access: Access, table: str | None, region: str,
            account: str) -> AccessDenied:
    action = access.action
    return AccessDenied(
        f"User: arn:aws:iam::{account}:user/{key.key_id} is not authorized to perform: "
        f"{action} on resource: {resource_arn(access, table, region, account)} because no "
        f"identity-based policy allows the {action} action", REASON_DENIED, key.key_id)
