"""UpdateExpression: parse SET/REMOVE/ADD/DELETE clauses and apply them to an item.

Theory of operation: applying an update has three phases, mirroring DynamoDB:

1. *check* — resolve every action's path with the request's `#names`, reject paths that
   overlap or conflict, and check the operand types of `:values`;
2. *read* — compute every new value against the **original** item (`SET a = b, b = a`
   swaps; `REMOVE a SET b = a` copies the old `a`), and turn each action into a plain
   "set this path" or "remove this path" step;
3. *write* — copy-on-write the item: only containers on a changed path are copied, the
   caller's item is never mutated. Sets run first in path order (so several `SET a[7]`,
   `a[9]` past the end append in index order), then removals from the highest path
   down, so list indexes always mean the *original* positions.

Grammar (clause keywords are case-insensitive; each clause at most once):

  update    := clause+
  clause    := SET set (',' set)* | REMOVE path (',' path)*
             | ADD path :value (',' ...)* | DELETE path :value (',' ...)*
  set       := path '=' ( '(' rhs ')' | rhs )
  rhs       := operand [('+' | '-') operand]
  operand   := '(' term ')' | term
  term      := function '(' operand (',' operand)* ')' | :value | path
"""

from __future__ import annotations

from typing import Any

from atoll.errors import ValidationError
from atoll.expressions import nodes as n
from atoll.expressions import paths
from atoll.expressions import values as v
from atoll.expressions.parser import P_FUNCTION, P_UNKNOWN_FUNCTION, Check, Parser
from atoll.expressions.paths import Path
from atoll.model import numbers

KIND = "UpdateExpression"
CLAUSES = frozenset({"SET", "REMOVE", "ADD", "DELETE"})
P_SECTION = 2
_UPDATE_FUNCTIONS = {"if_not_exists": 2, "list_append": 2}

_INVALID_PATH = "The document path provided in the update expression is invalid for update"
_BAD_TYPE = "An operand in the update expression has an incorrect data type"
_MISSING = "The provided expression refers to an attribute that does not exist in the item"


# ---- parsed form ----------------------------------------------------------------------

class Call:
    """A value-producing function in SET: if_not_exists, list_append, + and -."""

    __slots__ = ("name", "args")

    def __init__(self, name: str, args: tuple[Any, ...]) -> None:
        self.name = name
        self.args = args

    def __repr__(self) -> str:
        return f"Call({self.name!r}, {self.args!r})"


class Action:
    __slots__ = ("verb", "path", "value")

    def __init__(self, verb: str, path: tuple[str | int, ...], value: Any = None) -> None:
        self.verb = verb  # "SET", "REMOVE", "ADD", "DELETE"
        self.path = path
        self.value = value

    def __repr__(self) -> str:
        return f"Action({self.verb!r}, {self.path!r}, {self.value!r})"


_RESOLVED_KEPT = 8


class Update:
    __slots__ = ("actions", "names_used", "values_used", "checks", "resolved")
    # What a type clash found while applying says (legacy AttributeUpdates word it apart).
    mismatch_message = _BAD_TYPE

    def __init__(self, actions: tuple[Action, ...], names_used: frozenset[str],
                 values_used: frozenset[str], checks: tuple[Check, ...]) -> None:
        self.actions = actions
        self.names_used = names_used
        self.values_used = values_used
        self.checks = checks
        self.resolved: dict[tuple[tuple[str, str], ...], list[Path]] = {}  # resolved_paths


# ---- parsing --------------------------------------------------------------------------

class UpdateParser(Parser):
    reserved_priority = -1  # DynamoDB reports reserved words first in updates

    def __init__(self, text: str) -> None:
        super().__init__(text, KIND, CLAUSES)
        self.actions: list[Action] = []
        self.seen: set[str] = set()

    def parse(self) -> Update:
        self.parse_clause()
        while self.peek().kind != "EOF":
            self.parse_clause()
        self.finish()
        return Update(tuple(self.actions), frozenset(self.names_used),
                      frozenset(self.values_used), tuple(self.checks))

    def parse_clause(self) -> None:
        token = self.peek()
        verb = token.text.upper()
        if token.kind != "NAME" or verb not in CLAUSES:
            raise self.fail()
        self.pos += 1
        if verb in self.seen:
            self.defer(P_SECTION, f'The "{verb}" section can only be used once in an update '
                       "expression;")
        self.seen.add(verb)
        while True:
            self.parse_action(verb)
            if not self.at_punct(","):
                return
            self.pos += 1

    def parse_action(self, verb: str) -> None:
        if not self.at_path_start():
            raise self.fail()
        path = self.parse_path()
        if verb == "REMOVE":
            self.actions.append(Action(verb, path))
        elif verb == "SET":
            self.expect_punct("=")
            if self.at_punct("("):
                # '(' may wrap the whole right-hand side or just its first operand
                self.pos += 1
                self.enter()
                inner = self.parse_rhs()
                self.leave()
                self.expect_punct(")")
                rhs: Any
                if isinstance(inner, Call) and inner.name in ("+", "-"):
                    rhs = inner
                else:
                    rhs = self.finish_rhs(inner)
            else:
                rhs = self.parse_rhs()
            self.actions.append(Action(verb, path, rhs))
        else:
            value = self.parse_value()
            self.checks.append(_clause_operand_check(verb, value))
            self.actions.append(Action(verb, path, value))

    def parse_rhs(self) -> Any:
        return self.finish_rhs(self.parse_operand())

    def finish_rhs(self, left: Any) -> Any:
        if self.at_punct("+") or self.at_punct("-"):
            op = self.advance().text
            right = self.parse_operand()
            for arg in (left, right):
                self.checks.append(_operand_type_check(op, arg, "N"))
            return Call(op, (left, right))
        return left

    def parse_operand(self) -> Any:
        if self.at_punct("("):
            self.pos += 1
            self.enter()
            inner = self.parse_term()
            self.leave()
            self.expect_punct(")")
            return inner
        return self.parse_term()

    def parse_term(self) -> Any:
        token = self.peek()
        if token.kind == "VALUEREF":
            return self.parse_value()
        if token.kind == "NAME" and self.tokens[self.pos + 1].kind == "PUNCT" \
                and self.tokens[self.pos + 1].text == "(":
            self.pos += 1
            self.enter()
            args = self.parse_call_args(self.parse_operand)
            self.leave()
            return self.check_call(token.text, args)
        if self.at_path_start():
            return n.PathOperand(self.parse_path())
        raise self.fail()

    def check_call(self, name: str, args: list[Any]) -> Call:
        expected = _UPDATE_FUNCTIONS.get(name)
        if expected is None:
            self.defer(P_UNKNOWN_FUNCTION, f"Invalid function name; function: {name}")
        elif len(args) != expected:
            self.defer(P_FUNCTION, "Incorrect number of operands for operator or function; "
                       f"operator or function: {name}, number of operands: {len(args)}")
        elif name == "if_not_exists" and not isinstance(args[0], n.PathOperand):
            self.defer(P_FUNCTION, "Operator or function requires a document path; operator or "
                       "function: if_not_exists")
        elif name == "list_append":
            for arg in args:
                if isinstance(arg, Call) and arg.name == "list_append":
                    self.defer(P_FUNCTION, "The function is not allowed to be used this way in "
                               "an expression; function: list_append")
                self.checks.append(_operand_type_check(name, arg, "L"))
        return Call(name, tuple(args))


def parse(text: str) -> Update:
    return UpdateParser(text).parse()


# ---- value-dependent checks -------------------------------------------------------------

def _operand_type_check(op: str, operand: Any, wanted: str) -> Check:
    def check(names: dict[str, str], values: dict[str, Any]) -> None:
        if isinstance(operand, n.ValueOperand):
            kind = v.type_of(n.value_of(operand.name, values))
            if kind != wanted:
                raise ValidationError(
                    f"Invalid {KIND}: Incorrect operand type for operator or function; operator "
                    f"or function: {op}, operand type: {kind}")
    return check


def _clause_operand_check(verb: str, operand: n.ValueOperand) -> Check:
    allowed = ("N", "SS", "NS", "BS") if verb == "ADD" else ("SS", "NS", "BS")

    def check(names: dict[str, str], values: dict[str, Any]) -> None:
        kind = v.type_of(n.value_of(operand.name, values))
        if kind not in allowed:
            raise ValidationError(
                f"Invalid {KIND}: Incorrect operand type for operator or function; operator: "
                f"{verb}, operand type: {v.TYPE_WORDS.get(kind or '', kind)}")
    return check


# ---- applying -----------------------------------------------------------------------

def resolved_paths(update: Update, names: dict[str, str]) -> list[Path]:
    """The actions' paths with `#names` substituted, checked not to overlap. Remembered
    per parsed update for the last few name maps (hot requests repeat theirs); callers
    must not modify the list."""
    key = tuple(names.items())
    result = update.resolved.get(key)
    if result is None:
        result = [paths.resolve(action.path, names) for action in update.actions]
        paths.check_disjoint(KIND, result)
        if len(update.resolved) >= _RESOLVED_KEPT:
            update.resolved.clear()
        update.resolved[key] = result
    return result


def touches(update: Update, names: dict[str, str], attr_names: set[str]) -> str | None:
    """The first top-level attribute among `attr_names` that the update changes."""
    for action in update.actions:
        try:
            path = paths.resolve(action.path, names)
        except ValidationError:
            continue
        if path[0] in attr_names:
            return str(path[0])
    return None


def only_removes(update: Update) -> bool:
    """Whether every action takes something away (REMOVE, or DELETE from a set): such an
    update of an item that does not exist leaves it absent instead of creating it."""
    return bool(update.actions) and all(a.verb in ("REMOVE", "DELETE") for a in update.actions)


def apply(update: Update, item: dict[str, Any], names: dict[str, str], values: dict[str, Any],
          item_exists: bool = True, resolved: list[Path] | None = None
          ) -> tuple[dict[str, Any], list[Path]]:
    try:
        return _apply(update, item, names, values, item_exists, resolved)
    except ValidationError as exc:
        if exc.message == _BAD_TYPE and update.mismatch_message != _BAD_TYPE:
            raise ValidationError(update.mismatch_message) from None
        raise


def _apply(update: Update, item: dict[str, Any], names: dict[str, str], values: dict[str, Any],
           item_exists: bool, resolved: list[Path] | None) -> tuple[dict[str, Any], list[Path]]:
    if resolved is None:  # else the caller ran the checks and resolved the paths already
        for check in update.checks:
            check(names, values)
        resolved = resolved_paths(update, names)
    sets: list[tuple[Path, Any]] = []
    removes: list[Path] = []
    for action, path in zip(update.actions, resolved):
        verb = action.verb
        if verb == "SET":
            sets.append((path, _compute(action.value, item, names, values)))
        elif verb == "REMOVE":
            if _removable(item, path, item_exists):
                removes.append(path)
        elif verb == "ADD":
            sets.append((path, _add(paths.lookup(item, path), n.value_of(action.value.name,
                                                                          values))))
        else:
            current = paths.lookup(item, path)
            if current is not None:
                left = _delete(current, n.value_of(action.value.name, values))
                if left is None:
                    removes.append(path)
                else:
                    sets.append((path, left))
    new_item = dict(item)
    copied: set[int] = set()
    changed: list[Path] = []
    for path, value in sorted(sets, key=lambda pair: _order_key(pair[0])):
        changed.append(_set(new_item, path, value, copied))
    for path in sorted(removes, key=_order_key, reverse=True):
        _remove(new_item, path, copied)
        changed.append(path)
    return new_item, changed


def _order_key(path: Path) -> tuple[tuple[int, Any], ...]:
    return tuple((0, e) if type(e) is int else (1, e) for e in path)


def _compute(expr: Any, item: dict[str, Any], names: dict[str, str],
             values: dict[str, Any]) -> Any:
    if isinstance(expr, n.ValueOperand):
        return n.value_of(expr.name, values)
    if isinstance(expr, n.PathOperand):
        found = expr.get(item, names, values)
        if found is None:
            raise ValidationError(_MISSING)
        return found
    name = expr.name
    if name == "if_not_exists":
        found = expr.args[0].get(item, names, values)
        return found if found is not None else _compute(expr.args[1], item, names, values)
    left = _compute(expr.args[0], item, names, values)
    right = _compute(expr.args[1], item, names, values)
    if name == "list_append":
        if v.type_of(left) != "L" or v.type_of(right) != "L":
            raise ValidationError(_BAD_TYPE)
        return {"L": list(left["L"]) + list(right["L"])}
    if v.type_of(left) != "N" or v.type_of(right) != "N":
        raise ValidationError(_BAD_TYPE)
    try:
        if name == "+":
            return {"N": numbers.add(left["N"], right["N"])}
        return {"N": numbers.subtract(left["N"], right["N"])}
    except ArithmeticError:
        raise ValidationError(_BAD_TYPE) from None


def _add(current: Any, operand: Any) -> Any:
    kind = v.type_of(operand) or ""
    if current is None:
        return {kind: list(operand[kind])} if kind in v.SET_TYPES else operand
    if v.type_of(current) != kind:
        raise ValidationError(_BAD_TYPE)
    if kind == "N":
        try:
            return {"N": numbers.add(current["N"], operand["N"])}
        except ArithmeticError:
            raise ValidationError(_BAD_TYPE) from None
    members = list(current[kind])
    have = {_member_key(kind, m) for m in members}
    for member in operand[kind]:
        key = _member_key(kind, member)
        if key not in have:
            have.add(key)
            members.append(member)
    return {kind: members}


def _delete(current: Any, operand: Any) -> Any:
    kind = v.type_of(operand) or ""
    if v.type_of(current) != kind:
        raise ValidationError(_BAD_TYPE)
    drop = {_member_key(kind, m) for m in operand[kind]}
    left = [m for m in current[kind] if _member_key(kind, m) not in drop]
    return {kind: left} if left else None


def _member_key(kind: str, member: Any) -> Any:
    if kind == "NS":
        return v.as_decimal(member)
    if kind == "BS":
        return v.as_bytes(member)
    return member


def _removable(item: dict[str, Any], path: Path, item_exists: bool) -> bool:
    if len(path) == 1:
        return path[0] in item
    parent = paths.lookup(item, path[:-1])
    wanted = "L" if type(path[-1]) is int else "M"
    if v.type_of(parent) != wanted:
        if not item_exists:
            return False  # DynamoDB ignores REMOVE of a nested path of a missing item
        raise ValidationError(_INVALID_PATH)
    return paths.lookup(item, path) is not None


def _holder(root: dict[str, Any], path: Path, copied: set[int]) -> Any:
    """The (copied) dict or list that holds the last element of `path`."""
    holder: Any = root
    for key, following in zip(path, path[1:]):
        if type(holder) is list:
            child = holder[key] if type(key) is int and key < len(holder) else None
        else:
            child = holder.get(key)
        wanted = "L" if type(following) is int else "M"
        if v.type_of(child) != wanted or type(child[wanted]) is not (  # type: ignore[index]
                list if wanted == "L" else dict):
            raise ValidationError(_INVALID_PATH)
        if id(child) not in copied:
            inner = child[wanted]  # type: ignore[index]
            child = {wanted: list(inner) if wanted == "L" else dict(inner)}
            copied.add(id(child))
            holder[key] = child
        holder = child[wanted]  # type: ignore[index]
    return holder


def _set(root: dict[str, Any], path: Path, value: Any, copied: set[int]) -> Path:
    holder = _holder(root, path, copied)
    last = path[-1]
    if type(last) is int:
        if last < len(holder):
            holder[last] = value
            return path
        holder.append(value)  # SET past the end appends
        return path[:-1] + (len(holder) - 1,)
    holder[last] = value
    return path


def _remove(root: dict[str, Any], path: Path, copied: set[int]) -> None:
    holder = _holder(root, path, copied)
    last = path[-1]
    if type(last) is int:
        if last < len(holder):
            del holder[last]
    else:
        holder.pop(last, None)
