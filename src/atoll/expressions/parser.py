"""Recursive-descent parser: shared machinery and the condition grammar.

Theory of operation: `Parser` walks the token list of `tokens.tokenize`. Syntax errors
are raised at once, at the first token the grammar cannot accept. Other problems
DynamoDB reports (reserved words, unknown functions, redundant parentheses, wrong
operand counts) are *deferred*: collected with a priority while parsing continues, and
the highest-priority one is raised after the whole text parsed, which reproduces the
order in which DynamoDB reports them. Problems that depend on request data (the
`#names` and `:values`) become *checks*, run before each evaluation.

Condition grammar (lowest precedence first; keywords are case-insensitive, function
names are not):

  condition  := and (OR and)*
  and        := not (AND not)*
  not        := NOT not | primary
  primary    := '(' condition ')' | comparison
  comparison := operand (cmp operand | BETWEEN operand AND operand
                         | IN '(' operand (',' operand)* ')')
              | function '(' args ')'                       -- boolean functions
  operand    := path | :value | size '(' operand ')' | '(' operand ')'
  path       := (name | #name) ('.' (name | #name) | '[' digits ']')*

A parenthesis can open either a condition or an operand (`(a) = :v`), so `primary`
parses the inside allowing a bare operand and decides after the closing `)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atoll.errors import ValidationError
from atoll.expressions import nodes as n
from atoll.expressions import paths
from atoll.expressions import tokens as t
from atoll.expressions import values as v
from atoll.expressions.reserved import RESERVED_WORDS

MAX_EXPRESSION_BYTES = 4096
MAX_NESTING = 100  # parentheses, NOT and nested function calls; keeps recursion bounded
MAX_IN_OPERANDS = 100

# Deferred error priorities: lower is reported first (observed DynamoDB order).
P_PARENS, P_UNKNOWN_FUNCTION, P_MISUSED_FUNCTION, P_RESERVED = 0, 1, 2, 3
P_OPERAND_COUNT, P_FUNCTION = 5, 7

CONDITION_KEYWORDS = frozenset({"AND", "OR", "NOT", "BETWEEN", "IN"})
BOOLEAN_FUNCTIONS = {"attribute_exists": 1, "attribute_not_exists": 1, "attribute_type": 2,
                     "begins_with": 2, "contains": 2}
COMPARISON_OPS = frozenset({"=", "<>", "<", "<=", ">", ">="})
ORDERING_OPS = frozenset({"<", "<=", ">", ">="})

Check = Callable[[dict[str, str], dict[str, Any]], None]


def check_size(text: str, kind: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_EXPRESSION_BYTES:
        # DynamoDB adds the size only for condition-like expressions.
        suffix = f" expression size: {size}" if kind in ("ConditionExpression",
                                                          "FilterExpression") else ""
        raise ValidationError(
            f"Invalid {kind}: Expression size has exceeded the maximum allowed size;{suffix}")


class Parser:
    reserved_priority = P_RESERVED

    def __init__(self, text: str, kind: str, keywords: frozenset[str]) -> None:
        if type(text) is not str:
            raise ValidationError(f"Invalid {kind}: The expression can not be empty;")
        check_size(text, kind)
        if not text.strip():
            raise ValidationError(f"Invalid {kind}: The expression can not be empty;")
        self.text = text
        self.kind = kind
        self.keywords = keywords
        self.tokens = t.tokenize(text)
        self.pos = 0
        self.names_used: set[str] = set()
        self.values_used: set[str] = set()
        self.deferred: list[tuple[int, int, str]] = []
        self.checks: list[Check] = []
        self.depth = 0
        self.paren_wrapped: set[int] = set()  # ids of nodes that a '(' ... ')' returned

    # ---- token helpers ---------------------------------------------------------------

    def peek(self) -> t.Token:
        return self.tokens[self.pos]

    def advance(self) -> t.Token:
        token = self.tokens[self.pos]
        if token.kind != t.EOF:
            self.pos += 1
        return token

    def fail(self) -> ValidationError:
        return t.syntax_error(self.kind, self.text, self.tokens, self.pos)

    def at_punct(self, text: str) -> bool:
        token = self.tokens[self.pos]
        return token.kind == t.PUNCT and token.text == text

    def expect_punct(self, text: str) -> None:
        if not self.at_punct(text):
            raise self.fail()
        self.pos += 1

    def at_keyword(self, word: str) -> bool:
        token = self.tokens[self.pos]
        return token.kind == t.NAME and token.text.upper() == word

    def defer(self, priority: int, message: str) -> None:
        self.deferred.append((priority, len(self.deferred), message))

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ValidationError(f"Invalid {self.kind}: The expression has too many levels of "
                                  f"nesting; maximum: {MAX_NESTING}")

    def leave(self) -> None:
        self.depth -= 1

    def finish(self) -> None:
        if self.peek().kind != t.EOF:
            raise self.fail()
        if self.deferred:
            raise ValidationError(f"Invalid {self.kind}: {min(self.deferred)[2]}")

    def error(self, message: str) -> ValidationError:
        return ValidationError(f"Invalid {self.kind}: {message}")

    # ---- paths and values ------------------------------------------------------------

    def at_path_start(self) -> bool:
        token = self.peek()
        if token.kind == t.NAMEREF:
            return True
        return token.kind == t.NAME and token.text.upper() not in self.keywords

    def parse_path(self) -> tuple[str | int, ...]:
        elements: list[str | int] = [self.parse_path_name()]
        while True:
            if self.at_punct("."):
                self.pos += 1
                elements.append(self.parse_path_name())
            elif self.at_punct("["):
                self.pos += 1
                token = self.peek()
                if token.kind != t.NUMBER:
                    raise self.fail()
                self.pos += 1
                self.expect_punct("]")
                elements.append(int(token.text))
            else:
                break
        if len(elements) > paths.MAX_PATH_DEPTH:
            raise self.error("The document path has too many nesting levels; "
                             f"nesting levels: {len(elements)}")
        return tuple(elements)

    def parse_path_name(self) -> str:
        token = self.peek()
        if token.kind == t.NAMEREF:
            self.pos += 1
            self.names_used.add(token.text)
            return token.text
        if token.kind == t.NAME:
            self.pos += 1
            if token.text.upper() in RESERVED_WORDS:
                self.defer(self.reserved_priority, "Attribute name is a reserved keyword; "
                           "reserved keyword: "
                           + token.text)
            return token.text
        raise self.fail()

    def parse_value(self) -> n.ValueOperand:
        token = self.peek()
        if token.kind != t.VALUEREF:
            raise self.fail()
        self.pos += 1
        self.values_used.add(token.text)
        return n.ValueOperand(token.text)

    def parse_call_args(self, parse_arg: Callable[[], Any]) -> list[Any]:
        self.expect_punct("(")
        args = [parse_arg()]
        while self.at_punct(","):
            self.pos += 1
            args.append(parse_arg())
        self.expect_punct(")")
        return args


# ---- the condition grammar ---------------------------------------------------------------

class ConditionParser(Parser):
    def __init__(self, text: str, kind: str) -> None:
        super().__init__(text, kind, CONDITION_KEYWORDS)

    def parse(self) -> n.Condition:
        node = self.parse_or(allow_operand=False)
        self.finish()
        return node  # type: ignore[return-value]

    def parse_or(self, allow_operand: bool) -> Any:
        first = self.parse_and(allow_operand)
        if isinstance(first, n.Operand) or not self.at_keyword("OR"):
            return first
        parts = [first]
        while self.at_keyword("OR"):
            self.pos += 1
            parts.append(self.parse_and(False))
        return n.Or(tuple(parts))

    def parse_and(self, allow_operand: bool) -> Any:
        first = self.parse_not(allow_operand)
        if isinstance(first, n.Operand) or not self.at_keyword("AND"):
            return first
        parts = [first]
        while self.at_keyword("AND"):
            self.pos += 1
            parts.append(self.parse_not(False))
        return n.And(tuple(parts))

    def parse_not(self, allow_operand: bool) -> Any:
        if self.at_keyword("NOT"):
            self.pos += 1
            self.enter()
            inner = self.parse_not(False)
            self.leave()
            return n.Not(inner)
        return self.parse_primary(allow_operand)

    def parse_primary(self, allow_operand: bool) -> Any:
        if self.at_punct("("):
            self.pos += 1
            self.enter()
            inner = self.parse_or(allow_operand=True)
            self.leave()
            self.expect_punct(")")
            if id(inner) in self.paren_wrapped:
                self.defer(P_PARENS, "The expression has redundant parentheses;")
            self.paren_wrapped.add(id(inner))
            if isinstance(inner, n.Condition):
                return inner
            left = inner
        else:
            left = self.parse_operand()
        node = self.parse_comparison(left)
        if isinstance(node, n.Operand) and not allow_operand:
            if isinstance(node, n.SizeOperand):
                raise self.error("The function is not allowed to be used this way in an "
                                 "expression; function: size")
            raise self.fail()
        return node

    def parse_comparison(self, left: Any) -> Any:
        token = self.peek()
        if token.kind == t.PUNCT and token.text in COMPARISON_OPS:
            self.pos += 1
            right = self.parse_operand_in_parens()
            left, right = self.check_operands(left, right)
            node: n.Condition = n.Compare(token.text, left, right)
            self.check_distinct(token.text, left, right)
            if token.text in ORDERING_OPS and self.kind != "KeyConditionExpression":
                self.checks.append(_ordered_operands_check(self.kind, token.text, left, right))
            return node
        if self.at_keyword("BETWEEN"):
            self.pos += 1
            low = self.parse_operand_in_parens()
            if not self.at_keyword("AND"):
                raise self.fail()
            self.pos += 1
            high = self.parse_operand_in_parens()
            left, low, high = self.check_operands(left, low, high)
            self.checks.append(_between_check(self.kind, low, high))
            return n.Between(left, low, high)
        if self.at_keyword("IN"):
            self.pos += 1
            options = self.parse_call_args(self.parse_operand_in_parens)
            left, *options = self.check_operands(left, *options)
            if len(options) > MAX_IN_OPERANDS:
                raise self.error("The IN operator is provided with too many operands; "
                                 f"number of operands: {len(options)}")
            return n.In(left, tuple(options))
        return left  # a function, or a bare operand the caller may reject

    def check_operands(self, *operands: Any) -> list[n.Operand]:
        """Defer an error for each boolean function used as an operand, and stand a
        placeholder in for it: the nodes take operands only, and finish() raises the
        deferred error before the tree is used."""
        checked: list[n.Operand] = []
        for operand in operands:
            if isinstance(operand, n.Function):
                self.defer(P_MISUSED_FUNCTION, "The function is not allowed to be used this way "
                           f"in an expression; function: {operand.name}")
                operand = n.ValueOperand(f"<{operand.name}>")
            checked.append(operand)
        return checked

    def check_distinct(self, op: str, left: Any, right: Any) -> None:
        if isinstance(left, n.PathOperand) and isinstance(right, n.PathOperand):
            self.checks.append(_distinct_check(self.kind, op, left, right))

    def parse_operand_in_parens(self) -> Any:
        if self.at_punct("("):
            self.pos += 1
            self.enter()
            inner = self.parse_operand_in_parens()
            self.leave()
            self.expect_punct(")")
            if id(inner) in self.paren_wrapped:
                self.defer(P_PARENS, "The expression has redundant parentheses;")
            self.paren_wrapped.add(id(inner))
            return inner
        return self.parse_operand()

    def parse_operand(self) -> Any:
        token = self.peek()
        if token.kind == t.VALUEREF:
            return self.parse_value()
        if token.kind == t.NAME and self.tokens[self.pos + 1].text == "(" \
                and self.tokens[self.pos + 1].kind == t.PUNCT:
            return self.parse_function()
        if self.at_path_start():
            return n.PathOperand(self.parse_path())
        raise self.fail()

    def parse_function(self) -> Any:
        name = self.advance().text
        self.enter()
        args = self.parse_call_args(self.parse_operand_in_parens)
        self.leave()
        if name == "size":
            expected = 1
        elif name in BOOLEAN_FUNCTIONS:
            expected = BOOLEAN_FUNCTIONS[name]
        else:
            self.defer(P_UNKNOWN_FUNCTION, f"Invalid function name; function: {name}")
            return n.Function(name, tuple(args))
        args = self.check_operands(*args)
        if len(args) != expected:
            self.defer(P_OPERAND_COUNT, "Incorrect number of operands for operator or function; "
                       f"operator or function: {name}, number of operands: {len(args)}")
            return n.Function(name, tuple(args))
        if name == "size":
            self.checks.append(_size_check(self.kind, args[0]))
            return n.SizeOperand(args[0])
        if name in ("attribute_exists", "attribute_not_exists", "attribute_type") \
                and not isinstance(args[0], n.PathOperand):
            self.defer(P_FUNCTION, "Operator or function requires a document path; "
                       f"operator or function: {name}")
        if name == "attribute_type":
            self.checks.append(_attribute_type_check(self.kind, args[1]))
        elif name == "begins_with":
            self.checks.append(_begins_with_check(self.kind, args))
        if len(args) == 2:
            self.check_distinct(name, args[0], args[1])
        return n.Function(name, tuple(args))


# ---- checks that need the request's names and values -------------------------------------

def _literal(operand: Any, values: dict[str, Any]) -> Any:
    """The attribute value of a `:value` operand (None for anything else)."""
    if isinstance(operand, n.ValueOperand):
        return n.value_of(operand.name, values)
    return None


def _between_check(kind: str, low: Any, high: Any) -> Check:
    def check(names: dict[str, str], values: dict[str, Any]) -> None:
        x, y = _literal(low, values), _literal(high, values)
        if x is None or y is None:
            return
        if v.type_of(x) != v.type_of(y):
            raise ValidationError(
                f"Invalid {kind}: The BETWEEN operator requires same data type for lower and "
                f"upper bounds; lower bound operand: {v.show(x)}, upper bound operand: {v.show(y)}")
        c = v.order(x, y)
        if c is not None and c > 0:
            raise ValidationError(
                f"Invalid {kind}: The BETWEEN operator requires upper bound to be greater than or "
                f"equal to lower bound; lower bound operand: {v.show(x)}, upper bound operand: "
                f"{v.show(y)}")
    return check


def _ordered_operands_check(kind: str, op: str, left: Any, right: Any) -> Check:
    """`<`, `<=`, `>`, `>=` order strings, numbers and binaries only: a value of another
    type is refused outright, not compared as false. DynamoDB's message names the
    operator and the value's type ("Invalid FilterExpression: Incorrect operand type for
    operator or function; operator or function: <=, operand type: BOOL", quoted from
    DynamoDB in the Trino DynamoDB connector's source)."""
    def check(names: dict[str, str], values: dict[str, Any]) -> None:
        for operand in (left, right):
            value = _literal(operand, values)
            if value is not None and v.type_of(value) not in ("S", "N", "B"):
                raise ValidationError(
                    f"Invalid {kind}: Incorrect operand type for operator or function; operator "
                    f"or function: {op}, operand type: {v.type_of(value)}")
    return check


def _distinct_check(kind: str, op: str, left: n.PathOperand, right: n.PathOperand) -> Check:
    def check(names: dict[str, str], values: dict[str, Any]) -> None:
        one = paths.resolve(left.path, names)
        if one == paths.resolve(right.path, names):
            raise ValidationError(
                f"Invalid {kind}: The first operand must be distinct from the remaining operands "
                f"for this operator or function; operator: {op}, first operand: {paths.show(one)}")
    return check


def _size_check(kind: str, operand: Any) -> Check:
    def check(names: dict[str, str], values: dict[str, Any]) -> None:
        value = _literal(operand, values)
        if value is not None and v.type_of(value) in ("N", "BOOL", "NULL"):
            raise ValidationError(
                f"Invalid {kind}: Incorrect operand type for operator or function; operator or "
                f"function: size, operand type: {v.type_of(value)}")
    return check


_TYPE_NAMES = "{" + ",".join(("B", "NULL", "SS", "BOOL", "L", "BS", "N", "NS", "S", "M")) + "}"


def _attribute_type_check(kind: str, operand: Any) -> Check:
    def check(names: dict[str, str], values: dict[str, Any]) -> None:
        value = _literal(operand, values)
        kind_of = v.type_of(value) if value is not None else None
        if kind_of != "S":
            raise ValidationError(
                f"Invalid {kind}: Incorrect operand type for operator or function; operator or "
                f"function: attribute_type, operand type: {kind_of or 'PATH'}")
        if value["S"] not in v.VALID_TYPES:
            raise ValidationError(
                f"Invalid {kind}: Invalid attribute type name found; type: {value['S']}, "
                f"valid types: {_TYPE_NAMES}")
    return check


def _begins_with_check(kind: str, args: list[Any]) -> Check:
    def check(names: dict[str, str], values: dict[str, Any]) -> None:
        for arg in args:
            value = _literal(arg, values)
            if value is not None and v.type_of(value) not in ("S", "B"):
                raise ValidationError(
                    f"Invalid {kind}: Incorrect operand type for operator or function; operator "
                    f"or function: begins_with, operand type: {v.type_of(value)}")
    return check
