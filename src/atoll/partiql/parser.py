"""The PartiQL parser: the subset of PartiQL that DynamoDB runs, by recursive descent.

Statements (DynamoDB developer guide, "PartiQL statements for DynamoDB"):
    SELECT * | path [, path ...] FROM table[.index] [WHERE cond] [ORDER BY key [ASC|DESC], ...]
    INSERT INTO table VALUE {'name': value, ...}
    UPDATE table SET path = value | REMOVE path [...] WHERE cond [RETURNING ALL|MODIFIED OLD|NEW *]
    DELETE FROM table WHERE cond [RETURNING ALL OLD *]
    EXISTS(SELECT ...)                                  (ExecuteTransaction only)
Conditions, from loosest to tightest binding: OR, AND, NOT, a predicate (`=`, `<>`, `!=`,
`<`, `<=`, `>`, `>=`, `[NOT] BETWEEN .. AND ..`, `[NOT] IN [..]`, `IS [NOT] MISSING|NULL|
type`), `+`/`-`, unary minus, then a primary (literal, `?`, path, function call,
parenthesised condition, `[list]`, `{tuple}`, `<<set>>`).

Each `?` is bound to the next of the request's Parameters as it is parsed; too few
parameters is an error and, as DynamoDB answers it, unused extra ones are not.

Bare names that are PartiQL keywords (SQL-92's reserved words and PartiQL's own) are
refused where a name is expected, as DynamoDB refuses `WHERE pad = 'x'`; a double-quoted
name is never a keyword.
"""

from __future__ import annotations

from typing import Any

from atoll.errors import ValidationError
from atoll.partiql import nodes as n
from atoll.partiql.tokens import (
    END,
    IDENT,
    NUMBER,
    OP,
    PARAM,
    QUOTED,
    STRING,
    Token,
    malformed,
    position,
    tokenize,
)

PARAMETER_COUNT = "Number of parameters in request and statement don't match."
MAX_NESTING = 64  # parentheses and literals nest at most this deep (bounds the recursion)

# PartiQL's keywords (SQL-92 reserved words and PartiQL additions) that cannot be bare names.
KEYWORDS = frozenset("""
ABSOLUTE ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AS ASC ASSERTION AT AUTHORIZATION AVG
BEGIN BETWEEN BIT BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST CATALOG CHAR CHARACTER
CHARACTER_LENGTH CHAR_LENGTH CHECK CLOSE COALESCE COLLATE COLLATION COLUMN COMMIT CONNECT
CONNECTION CONSTRAINT CONSTRAINTS CONTINUE CONVERT CORRESPONDING COUNT CREATE CROSS CURRENT
CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR DATE DAY DEALLOCATE DEC
DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DELETE DESC DESCRIBE DESCRIPTOR DIAGNOSTICS
DISCONNECT DISTINCT DOMAIN DOUBLE DROP ELSE END ESCAPE EXCEPT EXCEPTION EXEC EXECUTE EXISTS
EXTERNAL EXTRACT FALSE FETCH FIRST FLOAT FOR FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT
GROUP HAVING HOUR IDENTITY IMMEDIATE IN INDICATOR INITIALLY INNER INPUT INSENSITIVE INSERT INT
INTEGER INTERSECT INTERVAL INTO IS ISOLATION JOIN KEY LANGUAGE LAST LEADING LEFT LEVEL LIKE
LIMIT LOCAL LOWER MATCH MAX MIN MINUTE MISSING MODULE MONTH NAMES NATIONAL NATURAL NCHAR NEXT
NO NOT NULL NULLIF NUMERIC OCTET_LENGTH OF ON ONLY OPEN OPTION OR ORDER OUTER OUTPUT OVERLAPS
PAD PARTIAL PIVOT POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVILEGES PROCEDURE
PUBLIC READ REAL REFERENCES RELATIVE REMOVE RESTRICT REVOKE RIGHT ROLLBACK ROWS SCHEMA SCROLL
SECOND SECTION SELECT SESSION SESSION_USER SET SMALLINT SOME SPACE SQL SQLCODE SQLERROR
SQLSTATE SUBSTRING SUM SYSTEM_USER TABLE TEMPORARY THEN TIME TIMESTAMP TIMEZONE_HOUR
TIMEZONE_MINUTE TO TRAILING TRANSACTION TRANSLATE TRIM TRUE UNION UNIQUE UNKNOWN UNPIVOT
UPDATE UPPER USAGE USER USING VALUE VALUES VIEW WHEN WHENEVER WHERE WITH WORK WRITE YEAR ZONE
""".split())

_COMPARISONS = ("=", "<>", "!=", "<", "<=", ">", ">=")
_IS_KINDS = ("MISSING", "NULL", "BOOLEAN", "BLOB", "STRING", "NUMERIC", "STRUCT", "TUPLE",
             "LIST")
_RETURNING = {("ALL", "OLD"): "ALL_OLD", ("MODIFIED", "OLD"): "UPDATED_OLD",
              ("ALL", "NEW"): "ALL_NEW", ("MODIFIED", "NEW"): "UPDATED_NEW"}


def parse(statement: str, parameters: list[Any] | None = None) -> n.Statement:
    """Parse one statement, binding its `?` to `parameters` in order."""
    return _Parser(statement, parameters or []).statement()


class _Parser:
    def __init__(self, text: str, parameters: list[Any]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.parameters = parameters
        self.used = 0
        self.depth = 0

    # --- token helpers ------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        if token.kind != END:
            self.pos += 1
        return token

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token.kind == OP and token.text in ops

    def at_word(self, *words: str) -> bool:
        return self.peek().is_word(*words)

    def accept_op(self, op: str) -> bool:
        if self.at_op(op):
            self.pos += 1
            return True
        return False

    def accept_word(self, word: str) -> bool:
        if self.at_word(word):
            self.pos += 1
            return True
        return False

    def expect_op(self, op: str, what: str) -> Token:
        if not self.at_op(op):
            raise malformed(f"Expected {what}")
        return self.next()

    def expect_word(self, word: str) -> Token:
        if not self.at_word(word):
            raise malformed(f"Expected {word}")
        return self.next()

    def unexpected(self) -> ValidationError:
        token = self.peek()
        if token.kind == END:
            return malformed("Unexpected end of statement")
        return malformed(f"Unexpected token: {token.text or token.kind}")

    # --- statements ---------------------------------------------------------------------
    def statement(self) -> n.Statement:
        first = self.peek()
        parsed: n.Statement
        if first.is_word("SELECT"):
            parsed = self.select()
        elif first.is_word("INSERT"):
            parsed = self.insert()
        elif first.is_word("UPDATE"):
            parsed = self.update()
        elif first.is_word("DELETE"):
            parsed = self.delete()
        elif first.is_word("EXISTS"):
            self.next()
            self.expect_op("(", "LEFT_PAREN")
            parsed = n.Exists(self.select())
            self.expect_op(")", "RIGHT_PAREN")
        elif first.kind == END:
            raise malformed("Statement is empty")
        else:
            raise malformed("Expected data manipulation")
        self.accept_op(";")
        if self.peek().kind != END:
            if self.peek().is_word("LIMIT", "OFFSET"):
                raise ValidationError(f"Unsupported clause: {self.peek().text.upper()}")
            if self.at_op(";"):
                raise ValidationError("Only one operation is allowed in a statement.")
            raise malformed("Unexpected token after statement")
        return parsed

    def select(self) -> n.Select:
        self.expect_word("SELECT")
        if self.at_word("VALUE", "PIVOT"):
            raise ValidationError("Select projection doesn't support value or pivot keywords")
        projection: tuple[n.Path, ...] | None
        if self.accept_op("*"):
            projection = None
            if self.at_op(","):
                raise ValidationError(
                    "Other attributes should not be present in the projection when '*' is used.")
        else:
            projection = self.projection()
        self.expect_word("FROM")
        source = self.source(allow_index=True)
        if self.at_op(","):
            raise ValidationError("Only select from a single table or index is supported.")
        if self.at_word("AS") or self.peek().kind in (IDENT, QUOTED) and not self.at_word(
                "WHERE", "ORDER", "LIMIT", "OFFSET", "GROUP"):
            raise ValidationError("Aliasing is not supported")
        where = self.condition() if self.accept_word("WHERE") else None
        order: tuple[n.OrderKey, ...] = ()
        if self.accept_word("ORDER"):
            self.expect_word("BY")
            order = self.order_keys()
        if self.at_word("GROUP", "HAVING"):
            raise ValidationError(f"Unsupported clause: {self.peek().text.upper()}")
        return n.Select(source, projection, where, order)

    def projection(self) -> tuple[n.Path, ...]:
        paths: list[n.Path] = []
        while True:
            token = self.peek()
            if token.kind in (IDENT, QUOTED) and not self.peek(1).text == "(":
                paths.append(self.path())
            elif token.kind == OP and token.text == "*":
                raise ValidationError(
                    "Other attributes should not be present in the projection when '*' is used.")
            else:
                node = self.additive()
                raise ValidationError(
                    f"Unexpected path component at {self.where(token.offset, _length(node, token))}")
            if self.at_word("AS"):
                raise ValidationError("Aliasing is not supported")
            if not self.accept_op(","):
                return tuple(paths)

    def source(self, allow_index: bool) -> n.Source:
        parts: list[str] = []
        while True:
            token = self.next()
            if token.kind == QUOTED:
                if token.text == "":
                    raise ValidationError("Path component cannot be an empty string")
                parts.append(token.text)
            elif token.kind == IDENT and token.text.upper() not in KEYWORDS:
                parts.append(token.text)
            elif token.kind == PARAM:
                raise malformed("A parameter cannot name a table")
            else:
                raise malformed("Expected table name")
            if not self.accept_op("."):
                break
        if len(parts) > 2:
            raise ValidationError("A path may contain at most 2 components in the FROM clause")
        if len(parts) == 2 and not allow_index:
            raise ValidationError(
                "FROM clause may only contain a single table name in data manipulation statements")
        return n.Source(parts[0], parts[1] if len(parts) == 2 else None)

    def order_keys(self) -> tuple[n.OrderKey, ...]:
        keys: list[n.OrderKey] = []
        while True:
            token = self.next()
            if token.kind not in (IDENT, QUOTED) or (
                    token.kind == IDENT and token.text.upper() in KEYWORDS):
                raise malformed("Expected an ordering key")
            descending = False
            if self.accept_word("DESC"):
                descending = True
            else:
                self.accept_word("ASC")
            keys.append(n.OrderKey(token.text, descending, token.offset))
            if not self.accept_op(","):
                return tuple(keys)

    def insert(self) -> n.Insert:
        self.expect_word("INSERT")
        self.expect_word("INTO")
        source = self.source(allow_index=False)
        if self.at_word("VALUES") or self.at_op("<<"):
            raise ValidationError(
                "Unsupported operation: Inserting multiple items in a single statement is not "
                "supported, use \"INSERT INTO tableName VALUE item\" instead")
        if self.at_word("AT"):
            raise ValidationError("AT is not supported in insert statements.")
        self.expect_word("VALUE")
        item = self.additive()
        if self.at_word("RETURNING"):
            raise ValidationError("RETURNING is not supported in INSERT")
        if self.at_word("FROM", "WHERE"):
            raise ValidationError("Unsupported FROM ... WHERE ... clause in INSERT statement.")
        if self.at_word("ON"):
            raise ValidationError('Invalid conflict action. Only "DO NOTHING" action is supported.')
        return n.Insert(source, item)

    def update(self) -> n.Update:
        self.expect_word("UPDATE")
        source = self.source(allow_index=True)
        actions: list[n.Assignment] = []
        while True:
            if self.accept_word("SET"):
                actions.extend(self.assignments())
            elif self.accept_word("REMOVE"):
                actions.append(n.Assignment(self.path(), None))
                while self.accept_op(","):
                    actions.append(n.Assignment(self.path(), None))
            elif self.at_word("ADD", "DELETE"):
                raise ValidationError(
                    "Only SET and REMOVE are supported in update expressions at this time")
            else:
                break
        if not actions:
            raise malformed("Expected SET or REMOVE")
        where = self.condition() if self.accept_word("WHERE") else None
        return n.Update(source, tuple(actions), where, self.returning())

    def assignments(self) -> list[n.Assignment]:
        out: list[n.Assignment] = []
        while True:
            target = self.path()
            self.expect_op("=", "EQUALS")
            out.append(n.Assignment(target, self.additive()))
            if not self.accept_op(","):
                return out

    def delete(self) -> n.Delete:
        self.expect_word("DELETE")
        self.expect_word("FROM")
        source = self.source(allow_index=True)
        where = self.condition() if self.accept_word("WHERE") else None
        return n.Delete(source, where, self.returning())

    def returning(self) -> str | None:
        if not self.accept_word("RETURNING"):
            return None
        first, second = self.next(), self.next()
        words = (first.text.upper() if first.kind == IDENT else "",
                 second.text.upper() if second.kind == IDENT else "")
        value = _RETURNING.get(words)
        if value is None or not self.accept_op("*"):
            raise ValidationError("Expected '*' after ( MODIFIED | ALL ) ( NEW | OLD ) in "
                                  "RETURNING clause")
        if self.at_op(","):
            raise ValidationError(
                "Invalid syntax with multiple returning elements in RETURNING clause")
        return value

    # --- conditions ---------------------------------------------------------------------
    def condition(self) -> n.Node:
        self.enter()
        try:
            return self.disjunction()
        finally:
            self.depth -= 1

    def disjunction(self) -> n.Node:
        start = self.peek().offset
        items = [self.conjunction()]
        while self.accept_word("OR"):
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else n.Or(start, self._span(start), tuple(items))

    def conjunction(self) -> n.Node:
        start = self.peek().offset
        items = [self.negation()]
        while self.accept_word("AND"):
            items.append(self.negation())
        return items[0] if len(items) == 1 else n.And(start, self._span(start), tuple(items))

    def negation(self) -> n.Node:
        start = self.peek().offset
        if self.accept_word("NOT"):
            self.enter()
            try:
                operand = self.negation()
            finally:
                self.depth -= 1
            return n.Not(start, self._span(start), operand)
        return self.predicate()

    def predicate(self) -> n.Node:
        start = self.peek().offset
        left = self.additive()
        token = self.peek()
        if token.kind == OP and token.text in _COMPARISONS:
            self.next()
            op = "<>" if token.text == "!=" else token.text
            right = self.additive()
            return n.Compare(start, self._span(start), op, left, right)
        negated = False
        if self.at_word("NOT") and self.peek(1).is_word("BETWEEN", "IN", "LIKE"):
            self.next()
            negated = True
        if self.accept_word("BETWEEN"):
            low = self.additive()
            self.expect_word("AND")
            high = self.additive()
            return n.Between(start, self._span(start), left, low, high, negated)
        if self.accept_word("IN"):
            return n.In(start, self._span(start), left, self.in_list(), negated)
        if self.at_word("LIKE"):
            raise ValidationError("Unsupported operator in Condition Expression. Operator: LIKE")
        if self.accept_word("IS"):
            negated = self.accept_word("NOT")
            kind = self.next()
            if kind.kind != IDENT:
                raise malformed("Expected a type after IS")
            name = kind.text.upper()
            if name not in _IS_KINDS:
                raise ValidationError(
                    f"Unsupported data type for IS operator: {name}. Supported data types are "
                    "[MISSING, NULL, BOOLEAN, BLOB, STRING, NUMERIC, STRUCT, TUPLE, LIST]")
            return n.Is(start, self._span(start), left, name, negated)
        return left

    def in_list(self) -> tuple[n.Node, ...]:
        if self.accept_op("["):
            close = "]"
        else:
            self.expect_op("(", "LEFT_PAREN or LEFT_BRACKET")
            close = ")"
        items: list[n.Node] = []
        if not self.at_op(close):
            items.append(self.additive())
            while self.accept_op(","):
                items.append(self.additive())
        self.expect_op(close, "RIGHT_BRACKET" if close == "]" else "RIGHT_PAREN")
        if not items:
            raise ValidationError(
                "IN operator must have a left hand argument of type Variable Reference and "
                "right hand argument of type Seq with at least one member")
        return tuple(items)

    def additive(self) -> n.Node:
        start = self.peek().offset
        left = self.unary()
        while self.at_op("+", "-"):
            op = self.next().text
            right = self.unary()
            left = n.Arith(start, self._span(start), op, left, right)
        return left

    def unary(self) -> n.Node:
        start = self.peek().offset
        if self.accept_op("-"):
            token = self.peek()
            if token.kind == NUMBER:
                self.next()
                text = token.text
                return n.Value(start, self._span(start), {"N": "-" + text})
            self.enter()
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            return n.Negate(start, self._span(start), operand)
        if self.accept_op("+"):
            return self.unary()
        return self.primary()

    def enter(self) -> None:
        """One level deeper into the statement (every recursion passes here: bounded)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise malformed("Statement nests too deeply")

    def primary(self) -> n.Node:
        token = self.peek()
        start = token.offset
        if token.kind == NUMBER:
            self.next()
            return n.Value(start, token.length, {"N": token.text})
        if token.kind == STRING:
            self.next()
            return n.Value(start, token.length, {"S": token.text})
        if token.kind == PARAM:
            self.next()
            return n.Value(start, 1, self.parameter(), parameter=True)
        if token.kind == OP:
            return self.bracketed(token)
        if token.kind == IDENT:
            word = token.text.upper()
            if self.peek(1).kind == OP and self.peek(1).text == "(":
                return self.call()
            if word in ("TRUE", "FALSE"):
                self.next()
                return n.Value(start, token.length, {"BOOL": word == "TRUE"})
            if word == "NULL":
                self.next()
                return n.Value(start, token.length, {"NULL": True})
            if word == "MISSING":
                self.next()
                return n.Missing(start, token.length)
            return self.path()
        if token.kind == QUOTED:
            return self.path()
        raise self.unexpected()

    def bracketed(self, token: Token) -> n.Node:
        start = token.offset
        self.enter()
        try:
            if self.accept_op("("):
                inner = self.condition()
                self.expect_op(")", "RIGHT_PAREN")
                return inner
            if self.accept_op("["):
                items = self.items("]")
                return n.ListLiteral(start, self._span(start), items)
            if self.accept_op("<<"):
                items = self.items(">>")
                return n.Bag(start, self._span(start), items)
            if self.accept_op("{"):
                return self.tuple_literal(start)
        finally:
            self.depth -= 1
        raise self.unexpected()

    def items(self, close: str) -> tuple[n.Node, ...]:
        items: list[n.Node] = []
        if not self.at_op(close):
            items.append(self.additive())
            while self.accept_op(","):
                items.append(self.additive())
        self.expect_op(close, {"]": "RIGHT_BRACKET", ">>": "RIGHT_ANGLE_DOUBLE_BRACKET"}[close])
        return tuple(items)

    def tuple_literal(self, start: int) -> n.TupleLiteral:
        entries: list[tuple[n.Node, n.Node]] = []
        if not self.at_op("}"):
            while True:
                key = self.additive()
                self.expect_op(":", "COLON")
                entries.append((key, self.additive()))
                if not self.accept_op(","):
                    break
        self.expect_op("}", "RIGHT_CURLY")
        return n.TupleLiteral(start, self._span(start), tuple(entries))

    def call(self) -> n.Call:
        name = self.next()
        self.expect_op("(", "LEFT_PAREN")
        args: list[n.Node] = []
        self.enter()
        try:
            if not self.at_op(")"):
                args.append(self.condition())
                while self.accept_op(","):
                    args.append(self.condition())
        finally:
            self.depth -= 1
        self.expect_op(")", "RIGHT_PAREN")
        return n.Call(name.offset, self._span(name.offset), name.text.lower(), tuple(args),
                      name.length)

    def path(self) -> n.Path:
        head = self.next()
        if head.kind == IDENT and head.text.upper() in KEYWORDS:
            raise malformed(f"Unexpected keyword: {head.text}")
        if head.kind not in (IDENT, QUOTED):
            raise malformed("Expected identifier for simple path")
        if head.kind == QUOTED and head.text == "":
            raise ValidationError("Path component cannot be an empty string")
        steps: list[n.Step] = [head.text]
        while True:
            if self.accept_op("."):
                step = self.next()
                if step.kind == OP and step.text == "*":
                    raise ValidationError("Unpivot path component like a.*.b are not supported")
                if step.kind == QUOTED:
                    if step.text == "":
                        raise ValidationError("Path component cannot be an empty string")
                    steps.append(step.text)
                elif step.kind == IDENT and step.text.upper() not in KEYWORDS:
                    steps.append(step.text)
                else:
                    raise malformed("Invalid path dot component")
            elif self.accept_op("["):
                steps.append(self.list_index())
            else:
                return n.Path(head.offset, self._span(head.offset), tuple(steps))

    def list_index(self) -> int:
        token = self.next()
        negative = False
        if token.kind == OP and token.text == "*":
            raise ValidationError("Wildcard path component like a[*].b are not supported")
        if token.kind == OP and token.text == "-":
            negative = True
            token = self.next()
        if token.kind != NUMBER or not token.text.isdigit():
            raise malformed("Expected a list index")
        self.expect_op("]", "RIGHT_BRACKET")
        text = ("-" if negative else "") + token.text
        if negative:
            raise ValidationError(f"List index is not within the allowable range; index: [{text}]")
        return int(token.text)

    # --- parameters and positions -------------------------------------------------------
    def parameter(self) -> Any:
        if self.used >= len(self.parameters):
            raise ValidationError(PARAMETER_COUNT)
        value = self.parameters[self.used]
        self.used += 1
        return value

    def _span(self, start: int) -> int:
        previous = self.tokens[self.pos - 1] if self.pos else self.tokens[0]
        return max(previous.offset + previous.length - start, 0)

    def where(self, offset: int, length: int) -> str:
        return position(self.text, offset, length)


def _length(node: n.Node, token: Token) -> int:
    if isinstance(node, n.Call):
        return node.name_length
    return token.length
