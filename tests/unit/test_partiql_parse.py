"""The PartiQL lexer and parser: what DynamoDB's PartiQL accepts, and its syntax errors.

Data types: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ql-reference.data-types.html
(TRUE/FALSE and NULL are not case sensitive; strings take single quotes, names double
quotes; numbers 1, 1.0, 1e0; sets <<...>>; lists [...]; maps {'name': value}).
"""

from __future__ import annotations

import pytest

from atoll import partiql as p
from atoll.errors import SerializationError, ValidationError
from atoll.partiql import nodes as n
from atoll.partiql.tokens import position, tokenize

NOT_WELL_FORMED = "Statement wasn't well formed, can't be processed: "


def where(statement: str) -> n.Node:
    node = p.parse(statement)
    assert isinstance(node, n.Select) and node.where is not None
    return node.where


def test_literals_of_each_type() -> None:
    node = p.parse("INSERT INTO t VALUE {'s': 'it''s', 'n': -1.5e3, 'b': tRuE, 'f': FALSE, "
                   "'z': null, 'l': [1, 'a'], 'm': {'k': {}}, 'ss': <<'a'>>, 'ns': <<1, 2>>}")
    assert isinstance(node, n.Insert) and isinstance(node.item, n.TupleLiteral)
    keys = [k.value["S"] for k, _v in node.item.entries if isinstance(k, n.Value)]
    assert keys == ["s", "n", "b", "f", "z", "l", "m", "ss", "ns"]
    values = dict(zip(keys, (v for _k, v in node.item.entries)))
    assert values["s"] == n.Value(values["s"].offset, 7, {"S": "it's"})
    assert isinstance(values["n"], n.Value) and values["n"].value == {"N": "-1.5e3"}
    assert isinstance(values["b"], n.Value) and values["b"].value == {"BOOL": True}
    assert isinstance(values["f"], n.Value) and values["f"].value == {"BOOL": False}
    assert isinstance(values["z"], n.Value) and values["z"].value == {"NULL": True}
    assert isinstance(values["l"], n.ListLiteral) and isinstance(values["ss"], n.Bag)


def test_keywords_are_case_insensitive_and_names_may_be_quoted() -> None:
    node = p.parse('select "a.b", c from "my-table" where "select" = 1;')
    assert isinstance(node, n.Select)
    assert node.source == n.Source("my-table")
    assert node.projection is not None
    assert [path.steps for path in node.projection] == [("a.b",), ("c",)]
    assert isinstance(node.where, n.Compare) and isinstance(node.where.left, n.Path)
    assert node.where.left.steps == ("select",)


def test_comments_are_whitespace() -> None:
    node = p.parse("SELECT /* all */ * FROM t -- the table\n WHERE a = 1")
    assert isinstance(node, n.Select) and node.projection is None and node.where is not None


def test_paths_hold_map_keys_and_list_indexes() -> None:
    node = where('SELECT * FROM t WHERE a."b c"[2].d[0] = 1')
    assert isinstance(node, n.Compare) and isinstance(node.left, n.Path)
    assert node.left.steps == ("a", "b c", 2, "d", 0)


def test_precedence_of_not_and_or() -> None:
    node = where("SELECT * FROM t WHERE NOT a = 1 AND b = 2 OR c BETWEEN 1 AND 2")
    assert isinstance(node, n.Or)
    first, second = node.items
    assert isinstance(first, n.And) and isinstance(first.items[0], n.Not)
    assert isinstance(second, n.Between)


def test_not_in_not_between_and_is_not() -> None:
    node = where("SELECT * FROM t WHERE a NOT IN (1, 2) AND b NOT BETWEEN 1 AND 2 "
                 "AND c IS NOT MISSING")
    assert isinstance(node, n.And)
    a, b, c = node.items
    assert isinstance(a, n.In) and a.negated and len(a.items) == 2
    assert isinstance(b, n.Between) and b.negated
    assert isinstance(c, n.Is) and c.negated and c.kind == "MISSING"


def test_parameters_bind_in_order_and_each_is_checked() -> None:
    node = p.parse("SELECT * FROM t WHERE a = ? AND b = ?", [{"N": "1.50"}, {"S": "x"}])
    assert isinstance(node, n.Select) and isinstance(node.where, n.And)
    first, second = node.where.items
    assert isinstance(first, n.Compare) and first.right == n.Value(26, 1, {"N": "1.5"}, True)
    assert isinstance(second, n.Compare) and second.right == n.Value(36, 1, {"S": "x"}, True)
    with pytest.raises(SerializationError):
        p.parse("SELECT * FROM t WHERE a = ?", ["untyped"])
    with pytest.raises(ValidationError):
        p.parse("SELECT * FROM t WHERE a = ?", [{"N": "abc"}])


def test_returning_clauses() -> None:
    for words, value in (("ALL OLD", "ALL_OLD"), ("MODIFIED OLD", "UPDATED_OLD"),
                         ("ALL NEW", "ALL_NEW"), ("modified new", "UPDATED_NEW")):
        node = p.parse(f"UPDATE t SET a = 1 WHERE k = 1 RETURNING {words} *")
        assert isinstance(node, n.Update) and node.returning == value
    with pytest.raises(ValidationError) as caught:
        p.parse("UPDATE t SET a = 1 WHERE k = 1 RETURNING ALL OLD")
    assert caught.value.message == ("Expected '*' after ( MODIFIED | ALL ) ( NEW | OLD ) in "
                                    "RETURNING clause")


def test_set_and_remove_can_repeat_or_take_lists() -> None:
    node = p.parse("UPDATE t SET a = 1, b = 2 REMOVE c, d SET e = 3 WHERE k = 1")
    assert isinstance(node, n.Update)
    assert [(a.path.head, a.value is None) for a in node.actions] == [
        ("a", False), ("b", False), ("c", True), ("d", True), ("e", False)]


@pytest.mark.parametrize("statement,detail", [
    ("", "Statement is empty"),
    ("   -- nothing", "Statement is empty"),
    ("UPSERT INTO t VALUE {'a': 1}", "Expected data manipulation"),
    ("CREATE TABLE t", "Expected data manipulation"),
    ("SELECT * FROM t WHERE a = 'x", "Unterminated quoted text"),
    ("SELECT * FROM t /* open", "Unterminated comment"),
    ("SELECT * FROM t WHERE a ~ 1", "Unexpected character: ~"),
    ("SELECT * FROM t WHERE (a = 1", "Expected RIGHT_PAREN"),
    ("SELECT * FROM t WHERE a = 1 b", "Unexpected token after statement"),
    ("SELECT * FROM t; SELECT * FROM t", "Unexpected token after statement"),
    ("SELECT * FROM ? WHERE a = 1", "A parameter cannot name a table"),
    ("SELECT * FROM t WHERE value = 1", "Unexpected keyword: value"),
    ("SELECT * FROM t WHERE a = 12abc", "Invalid number: 12a"),
    ("UPDATE t WHERE k = 1", "Expected SET or REMOVE"),
])
def test_syntax_errors(statement: str, detail: str) -> None:
    with pytest.raises(ValidationError) as caught:
        p.parse(statement)
    assert caught.value.message == NOT_WELL_FORMED + detail


def test_nesting_is_bounded() -> None:
    """A statement of 8192 characters could nest thousands deep: refused, not a crash."""
    for statement in ("SELECT * FROM t WHERE " + "NOT " * 2000 + "a = 1",
                      "SELECT * FROM t WHERE " + "(" * 2000 + "a = 1" + ")" * 2000,
                      "SELECT * FROM t WHERE a = " + "- " * 2000 + "1",
                      "INSERT INTO t VALUE " + "[" * 2000 + "]" * 2000):
        with pytest.raises(ValidationError) as caught:
            p.parse(statement)
        assert caught.value.message == NOT_WELL_FORMED + "Statement nests too deeply"


def test_positions_count_lines_and_columns_from_one() -> None:
    text = "SELECT *\nFROM t\nWHERE EXISTS(a)"
    token = next(t for t in tokenize(text) if t.text == "EXISTS")
    assert position(text, token.offset, token.length) == "3:7:6"


def test_the_partiql_package_is_pure() -> None:
    """STYLE.md: a pure package imports no asyncio, sqlite3, socket, time or random."""
    import ast
    from pathlib import Path

    forbidden = {"asyncio", "sqlite3", "socket", "time", "random"}
    package = Path(p.__file__).parent
    imported: set[str] = set()
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert "orjson" in imported  # the walk sees imports
    assert imported & forbidden == set()
