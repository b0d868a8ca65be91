"""Table of DynamoDB expression cases, shared by the pure unit tests and (later) a live
boto3 run against a server.

Each case is self-contained: `kind` is "condition" | "update" | "projection" | "key";
`expr` the expression text; `names`/`values` the ExpressionAttributeNames/Values;
`item` the item before. Outcomes: `expect` (condition: bool; update: the new item;
projection: the projected item; key: {"hash_value", "op", "operands"}) or
`error: "ValidationException"` with an optional `message_contains`.
Key cases carry `schema: {"hash": name, "range": name|None, "types": {name: "S"|"N"|"B"}}`.

Behaviour cited from the DynamoDB developer guide ("Comparison operator and function
reference", "Update expressions", "Projection expressions", "Expression attribute
names", "Reserved words") and from messages observed from DynamoDB.
"""

from __future__ import annotations

from typing import Any

VE = "ValidationException"


def S(x: str) -> dict[str, Any]:
    return {"S": x}


def N(x: str | int) -> dict[str, Any]:
    return {"N": str(x)}


def B(x: str) -> dict[str, Any]:
    return {"B": x}  # base64 text


def L(*xs: Any) -> dict[str, Any]:
    return {"L": list(xs)}


def M(**xs: Any) -> dict[str, Any]:
    return {"M": dict(xs)}


def SS(*xs: str) -> dict[str, Any]:
    return {"SS": list(xs)}


def NS(*xs: str | int) -> dict[str, Any]:
    return {"NS": [str(x) for x in xs]}


def BS(*xs: str) -> dict[str, Any]:
    return {"BS": list(xs)}


BOOL_T = {"BOOL": True}
BOOL_F = {"BOOL": False}
NUL = {"NULL": True}

CASES: list[dict[str, Any]] = []


def case(kind: str, id: str, expr: str, *, item: Any = None, names: Any = None,
         values: Any = None, expect: Any = None, error: str | None = None,
         message_contains: str | None = None, **extra: Any) -> None:
    # Keep only the names/values the text mentions: DynamoDB rejects unused ones.
    names = {k: v for k, v in (names or {}).items() if k in expr}
    values = {k: v for k, v in (values or {}).items() if k in expr}
    entry: dict[str, Any] = {"id": f"{kind}:{id}", "kind": kind, "expr": expr,
                             "names": names, "values": values, "item": item}
    if error is not None:
        entry["error"] = error
        if message_contains is not None:
            entry["message_contains"] = message_contains
    else:
        entry["expect"] = expect
    entry.update(extra)
    CASES.append(entry)


def cond(id: str, expr: str, expect: bool | None = None, **kw: Any) -> None:
    case("condition", id, expr, expect=expect, **kw)


def upd(id: str, expr: str, expect: Any = None, **kw: Any) -> None:
    case("update", id, expr, expect=expect, **kw)


def proj(id: str, expr: str, expect: Any = None, **kw: Any) -> None:
    case("projection", id, expr, expect=expect, **kw)


def key(id: str, expr: str, expect: Any = None, schema: Any = None, **kw: Any) -> None:
    case("key", id, expr, expect=expect,
         schema=schema or {"hash": "pk", "range": "sk", "types": {"pk": "S", "sk": "N"}}, **kw)


# ---- comparisons: "Comparison operator and function reference" -------------------------

ITEM = {"s": S("hello"), "n": N(5), "b": B("AQID"), "t": BOOL_T, "z": NUL,
        "l": L(S("x"), N(1), L(S("y"))), "m": M(a=S("1"), b=M(c=N(2))),
        "ss": SS("a", "b"), "ns": NS(1, 2), "bs": BS("AQ==", "Ag=="), "e": S("")}

_cmp = [
    ("n = :v", N(5), True), ("n = :v", N("5.0"), True), ("n = :v", N(6), False),
    ("n = :v", S("5"), False), ("n <> :v", N(6), True), ("n <> :v", N(5), False),
    ("n <> :v", S("5"), True), ("n < :v", N(6), True), ("n < :v", N(5), False),
    ("n <= :v", N(5), True), ("n > :v", N(4), True), ("n > :v", N("4.99"), True),
    ("n >= :v", N(5), True), ("n >= :v", N(6), False), ("n < :v", N("-10"), False),
    ("n > :v", N("-1E+2"), True), ("n < :v", S("6"), False), ("n > :v", S("4"), False),
    ("s = :v", S("hello"), True), ("s = :v", S("Hello"), False), ("s < :v", S("help"), True),
    ("s > :v", S("hell"), True), ("s < :v", S("hello!"), True), ("s >= :v", S("hello"), True),
    ("s > :v", S("Z"), True), ("s < :v", S("\u00e9"), True),
    ("b = :v", B("AQID"), True), ("b < :v", B("AQIE"), True), ("b > :v", B("AQ=="), True),
    ("b = :v", S("AQID"), False),
    ("t = :v", BOOL_T, True), ("t = :v", BOOL_F, False), ("t <> :v", BOOL_F, True),
    ("z = :v", NUL, True), ("z <> :v", NUL, False),
    ("l = :v", L(S("x"), N(1), L(S("y"))), True), ("l = :v", L(S("x"), N(1)), False),
    ("l = :v", L(S("x"), N("1.0"), L(S("y"))), True),
    ("m = :v", M(a=S("1"), b=M(c=N(2))), True), ("m = :v", M(a=S("1")), False),
    ("m <> :v", M(a=S("1")), True),
    ("ss = :v", SS("b", "a"), True), ("ss = :v", SS("a"), False), ("ns = :v", NS(2, 1), True),
    ("ns = :v", NS("2.0", 1), True), ("bs = :v", BS("Ag==", "AQ=="), True),
    ("ss = :v", L(S("a"), S("b")), False),
    ("absent = :v", N(1), False), ("absent <> :v", N(1), True), ("absent < :v", N(1), False),
    ("absent >= :v", N(1), False), ("e = :v", S(""), True),
]
for i, (expr, value, expected) in enumerate(_cmp):
    cond(f"cmp{i}:{expr}", expr, expected, item=ITEM, values={":v": value})

# `<`, `<=`, `>`, `>=` with a value that has no order (not S, N or B) are refused, not
# false: "Invalid FilterExpression: Incorrect operand type for operator or function;
# operator or function: <=, operand type: BOOL" (DynamoDB's answer, quoted in the Trino
# DynamoDB connector's source).
for i, (expr, value, type_name) in enumerate([
        ("t < :v", BOOL_T, "BOOL"), ("t >= :v", BOOL_T, "BOOL"), ("l < :v", L(S("z")), "L"),
        ("ss < :v", SS("z"), "SS"), (":v > n", NUL, "NULL"), ("m <= :v", M(a=S("1")), "M")]):
    op = expr.split()[1]
    cond(f"cmp-unordered{i}:{expr}", expr, error=VE, item=ITEM, values={":v": value},
         message_contains="Invalid ConditionExpression: Incorrect operand type for operator or "
                          f"function; operator or function: {op}, operand type: {type_name}")

cond("cmp:path=path", "n = ns", False, item=ITEM)
cond("cmp:path=path-equal", "a = b", True, item={"a": N(1), "b": N("1")})
cond("cmp:value=value", ":a = :b", True, item=ITEM, values={":a": N(1), ":b": N(1)})
cond("cmp:value<value", ":a < :b", True, item=ITEM, values={":a": S("a"), ":b": S("b")})
cond("cmp:nested-map", "m.b.c = :v", True, item=ITEM, values={":v": N(2)})
cond("cmp:nested-index", "l[2][0] = :v", True, item=ITEM, values={":v": S("y")})
cond("cmp:index-past-end", "l[7] = :v", False, item=ITEM, values={":v": S("y")})
cond("cmp:index-on-map", "m[0] = :v", False, item=ITEM, values={":v": S("1")})
cond("cmp:dot-on-list", "l.a = :v", False, item=ITEM, values={":v": S("x")})
cond("cmp:dot-on-scalar", "s.a = :v", False, item=ITEM, values={":v": S("x")})
cond("cmp:no-item", "n = :v", False, item=None, values={":v": N(5)})
cond("cmp:no-item-ne", "n <> :v", True, item=None, values={":v": N(5)})
cond("cmp:name-ref", "#n = :v", True, item=ITEM, names={"#n": "n"}, values={":v": N(5)})
cond("cmp:name-ref-dotted", "#d = :v", True, item={"a.b": N(1), "a": M(b=N(2))},
     names={"#d": "a.b"}, values={":v": N(1)})
cond("cmp:dotted-literal-is-path", "a.b = :v", True, item={"a.b": N(1), "a": M(b=N(2))},
     values={":v": N(2)})
cond("cmp:name-ref-in-path", "m.#x.c = :v", True, item=ITEM, names={"#x": "b"},
     values={":v": N(2)})
cond("cmp:spaces", "  n   =   :v  ", True, item=ITEM, values={":v": N(5)})
cond("cmp:no-spaces", "n=:v", True, item=ITEM, values={":v": N(5)})
cond("cmp:newline", "n\n=\t:v", True, item=ITEM, values={":v": N(5)})
cond("cmp:big-number", "n < :v", True, item=ITEM,
     values={":v": N("99999999999999999999999999999999999999")})
cond("cmp:tiny-number", "n > :v", True, item=ITEM, values={":v": N("1E-130")})
cond("cmp:neg-numbers", "a < :v", True, item={"a": N("-2")}, values={":v": N("-1")})
cond("cmp:string-utf8-order", "a < :v", True, item={"a": S("\uffff")},
     values={":v": S("\U0001f600")})
cond("cmp:names-case-sensitive", "N = :v", False, item=ITEM, values={":v": N(5)})

# ---- BETWEEN and IN -------------------------------------------------------------------

_between = [
    ("n BETWEEN :a AND :b", N(1), N(10), True), ("n BETWEEN :a AND :b", N(5), N(5), True),
    ("n BETWEEN :a AND :b", N(6), N(10), False), ("n BETWEEN :a AND :b", N(1), N(4), False),
    ("s BETWEEN :a AND :b", S("a"), S("z"), True), ("s BETWEEN :a AND :b", S("i"), S("z"), False),
    ("b BETWEEN :a AND :b", B("AQ=="), B("Ag=="), True),
    ("absent BETWEEN :a AND :b", N(1), N(2), False),
    ("t BETWEEN :a AND :b", BOOL_F, BOOL_T, False),
    ("n between :a and :b", N(1), N(10), True),
]
for i, (expr, lo, hi, expected) in enumerate(_between):
    cond(f"between{i}:{expr}", expr, expected, item=ITEM, values={":a": lo, ":b": hi})
cond("between:bounds-reversed", "n BETWEEN :a AND :b", error=VE, item=ITEM,
     values={":a": N(10), ":b": N(1)},
     message_contains="The BETWEEN operator requires upper bound to be greater than or equal to "
                      "lower bound; lower bound operand: AttributeValue: {N:10}, upper bound "
                      "operand: AttributeValue: {N:1}")
cond("between:bounds-types", "n BETWEEN :a AND :b", error=VE, item=ITEM,
     values={":a": N(1), ":b": S("x")},
     message_contains="The BETWEEN operator requires same data type for lower and upper bounds")
cond("between:mixed-operand-type", "n BETWEEN :a AND :b", False, item=ITEM,
     values={":a": S("a"), ":b": S("z")})
cond("between:missing-and", "n BETWEEN :a :b", error=VE, item=ITEM,
     values={":a": N(1), ":b": N(2)}, message_contains="Syntax error")
cond("between:path-bounds", "n BETWEEN lo AND hi", True,
     item={"n": N(5), "lo": N(1), "hi": N(9)})

_in = [
    ("n IN (:a)", [N(5)], True), ("n IN (:a, :b)", [N(1), N(5)], True),
    ("n IN (:a, :b)", [N(1), N(2)], False), ("s IN (:a, :b)", [N(1), S("hello")], True),
    ("absent IN (:a)", [N(1)], False), ("l IN (:a)", [L(S("x"), N(1), L(S("y")))], True),
    ("ss IN (:a)", [SS("b", "a")], True), ("n in (:a)", [N(5)], True),
    ("n IN(:a,:b)", [N(0), N("5.00")], True),
]
for i, (expr, opts, expected) in enumerate(_in):
    vals = {f":{chr(97 + j)}": o for j, o in enumerate(opts)}
    cond(f"in{i}:{expr}", expr, expected, item=ITEM, values=vals)
cond("in:100-operands", "n IN (" + ", ".join(f":v{i}" for i in range(100)) + ")", True,
     item=ITEM, values={f":v{i}": N(i) for i in range(100)})
cond("in:101-operands", "n IN (" + ", ".join(f":v{i}" for i in range(101)) + ")", error=VE,
     item=ITEM, values={f":v{i}": N(i) for i in range(101)},
     message_contains="The IN operator is provided with too many operands; number of operands: 101")
cond("in:empty", "n IN ()", error=VE, item=ITEM, message_contains="Syntax error")
cond("in:no-parens", "n IN :a", error=VE, item=ITEM, values={":a": N(1)},
     message_contains="Syntax error")

# ---- logical operators and precedence -------------------------------------------------

T, F = "n = :five", "n = :six"
LV = {":five": N(5), ":six": N(6)}
_logic = [
    (f"{T} AND {T}", True), (f"{T} AND {F}", False), (f"{F} OR {T}", True), (f"{F} OR {F}", False),
    (f"NOT {F}", True), (f"NOT {T}", False), (f"NOT NOT {T}", True),
    (f"{T} OR {F} AND {F}", True), (f"({T} OR {F}) AND {F}", False),
    (f"{F} AND {F} OR {T}", True), (f"{F} AND ({F} OR {T})", False),
    (f"NOT {T} OR {T}", True), (f"NOT ({T} OR {T})", False), (f"NOT {F} AND {F}", False),
    (f"({T})", True), (f"({T}) AND ({T})", True), (f"{T} and {T}", True), (f"{F} or {T}", True),
    (f"not {F}", True), (f"{T} AND {T} AND {T} AND {F}", False),
    (f"{F} OR {F} OR {F} OR {T}", True), (f"(({T}) AND {T})", True),
    (f"({T} AND ({F} OR ({T} AND {T})))", True), (f"NOT ({F})", True),
]
for i, (expr, expected) in enumerate(_logic):
    cond(f"logic{i}:{expr}", expr, expected, item=ITEM,
         values={k_: v_ for k_, v_ in LV.items() if k_ in expr})
cond("logic:redundant-parens", f"(({T}))", error=VE, item=ITEM, values=LV,
     message_contains="The expression has redundant parentheses;")
cond("logic:redundant-parens-and", f"(({T} AND {T}))", error=VE, item=ITEM, values=LV,
     message_contains="The expression has redundant parentheses;")
cond("logic:redundant-operand-parens", "((n)) = :five", error=VE, item=ITEM, values=LV,
     message_contains="The expression has redundant parentheses;")
cond("logic:operand-parens", "(n) = :five", True, item=ITEM, values={":five": N(5)})
cond("logic:operand-parens-right", "n = (:five)", True, item=ITEM, values={":five": N(5)})
cond("logic:powertools-shape",
     "attribute_not_exists(#id) OR #e < :now OR (#st = :ip AND attribute_exists(#x) AND #x < :ms)",
     True, item={"id": S("a"), "e": N(1), "st": S("INPROGRESS"), "x": N(1)},
     names={"#id": "id", "#e": "e", "#st": "st", "#x": "x"},
     values={":now": N(0), ":ip": S("INPROGRESS"), ":ms": N(2)})
cond("logic:dangling-and", f"{T} AND", error=VE, item=ITEM, values=LV,
     message_contains='Syntax error; token: "<EOF>"')
cond("logic:leading-or", f"OR {T}", error=VE, item=ITEM, values=LV, message_contains="Syntax error")
cond("logic:unbalanced-open", f"({T}", error=VE, item=ITEM, values=LV,
     message_contains="Syntax error")
cond("logic:unbalanced-close", f"{T})", error=VE, item=ITEM, values=LV,
     message_contains='Syntax error; token: ")"')
cond("logic:bare-path", "n", error=VE, item=ITEM, message_contains='token: "<EOF>"')
cond("logic:bare-path-and", f"n AND {T}", error=VE, item=ITEM, values=LV,
     message_contains='Syntax error; token: "AND", near: "n AND n"')
cond("logic:bare-value", ":five", error=VE, item=ITEM, values=LV, message_contains="Syntax error")
cond("logic:not-bare-path", "NOT n", error=VE, item=ITEM, message_contains="Syntax error")

# ---- functions ------------------------------------------------------------------------

_fn = [
    ("attribute_exists(n)", {}, True), ("attribute_exists(absent)", {}, False),
    ("attribute_not_exists(absent)", {}, True), ("attribute_not_exists(n)", {}, False),
    ("attribute_exists(m.b.c)", {}, True), ("attribute_exists(m.b.x)", {}, False),
    ("attribute_exists(l[2])", {}, True), ("attribute_exists(l[3])", {}, False),
    ("attribute_exists(z)", {}, True), ("attribute_exists(e)", {}, True),
    ("attribute_type(s, :t)", {":t": S("S")}, True), ("attribute_type(s, :t)", {":t": S("N")}, False),
    ("attribute_type(n, :t)", {":t": S("N")}, True), ("attribute_type(b, :t)", {":t": S("B")}, True),
    ("attribute_type(t, :t)", {":t": S("BOOL")}, True),
    ("attribute_type(z, :t)", {":t": S("NULL")}, True),
    ("attribute_type(l, :t)", {":t": S("L")}, True), ("attribute_type(m, :t)", {":t": S("M")}, True),
    ("attribute_type(ss, :t)", {":t": S("SS")}, True),
    ("attribute_type(ns, :t)", {":t": S("NS")}, True),
    ("attribute_type(bs, :t)", {":t": S("BS")}, True),
    ("attribute_type(absent, :t)", {":t": S("S")}, False),
    ("begins_with(s, :p)", {":p": S("he")}, True), ("begins_with(s, :p)", {":p": S("hello")}, True),
    ("begins_with(s, :p)", {":p": S("")}, True), ("begins_with(s, :p)", {":p": S("el")}, False),
    ("begins_with(s, :p)", {":p": S("hello world")}, False),
    ("begins_with(b, :p)", {":p": B("AQ==")}, True), ("begins_with(b, :p)", {":p": B("Ag==")}, False),
    ("begins_with(absent, :p)", {":p": S("a")}, False),
    ("begins_with(ss, :p)", {":p": S("a")}, False),
    ("begins_with(n, :p)", {":p": S("5")}, False),
    ("contains(s, :v)", {":v": S("ell")}, True), ("contains(s, :v)", {":v": S("xyz")}, False),
    ("contains(s, :v)", {":v": S("")}, True), ("contains(ss, :v)", {":v": S("a")}, True),
    ("contains(ss, :v)", {":v": S("c")}, False), ("contains(ns, :v)", {":v": N("2.0")}, True),
    ("contains(ns, :v)", {":v": S("2")}, False), ("contains(bs, :v)", {":v": B("Ag==")}, True),
    ("contains(l, :v)", {":v": S("x")}, True), ("contains(l, :v)", {":v": N(1)}, True),
    ("contains(l, :v)", {":v": L(S("y"))}, True), ("contains(l, :v)", {":v": S("y")}, False),
    ("contains(m, :v)", {":v": S("a")}, False), ("contains(n, :v)", {":v": N(5)}, False),
    ("contains(absent, :v)", {":v": S("a")}, False),
    ("contains(s, :v)", {":v": N(1)}, False),
    ("size(s) = :v", {":v": N(5)}, True), ("size(e) = :v", {":v": N(0)}, True),
    ("size(b) = :v", {":v": N(3)}, True), ("size(ss) = :v", {":v": N(2)}, True),
    ("size(l) = :v", {":v": N(3)}, True), ("size(m) = :v", {":v": N(2)}, True),
    ("size(m.b) = :v", {":v": N(1)}, True), ("size(n) = :v", {":v": N(1)}, False),
    ("size(t) = :v", {":v": N(1)}, False), ("size(absent) = :v", {":v": N(0)}, False),
    ("size(absent) <> :v", {":v": N(0)}, True),
    ("size(s) > :v", {":v": N(4)}, True), ("size(s) BETWEEN :a AND :b", {":a": N(1), ":b": N(9)}, True),
    ("size(s) IN (:a, :b)", {":a": N(1), ":b": N(5)}, True),
    ("size(s) = size(ss)", {}, False), ("size(ss) = size(m)", {}, True),
    (":v = size(s)", {":v": N(5)}, True),
    ("size(s) = :v", {":v": S("5")}, False),
    ("NOT attribute_exists(n)", {}, False),
    ("attribute_exists(n) AND begins_with(s, :p)", {":p": S("h")}, True),
    ("attribute_exists (n)", {}, True),
]
for i, (expr, vals, expected) in enumerate(_fn):
    cond(f"fn{i}:{expr}", expr, expected, item=ITEM, values=vals)

cond("fn:unicode-size", "size(a) = :v", True, item={"a": S("\u00e9\U0001f600")},
     values={":v": N(2)})
cond("fn:unknown", "foo(n)", error=VE, item=ITEM, message_contains="Invalid function name; function: foo")
cond("fn:case-sensitive", "ATTRIBUTE_EXISTS(n)", error=VE, item=ITEM,
     message_contains="Invalid function name; function: ATTRIBUTE_EXISTS")
cond("fn:update-function-in-condition", "if_not_exists(n, :v) = :v", error=VE, item=ITEM,
     values={":v": N(1)}, message_contains="Invalid function name; function: if_not_exists")
cond("fn:too-few", "begins_with(s)", error=VE, item=ITEM,
     message_contains="Incorrect number of operands for operator or function; operator or "
                      "function: begins_with, number of operands: 1")
cond("fn:too-many", "attribute_exists(s, n)", error=VE, item=ITEM,
     message_contains="number of operands: 2")
cond("fn:exists-needs-path", "attribute_exists(:v)", error=VE, item=ITEM, values={":v": S("x")},
     message_contains="Operator or function requires a document path; operator or function: "
                      "attribute_exists")
cond("fn:not-exists-needs-path", "attribute_not_exists(:v)", error=VE, item=ITEM,
     values={":v": S("x")}, message_contains="Operator or function requires a document path")
cond("fn:bad-type-name", "attribute_type(s, :t)", error=VE, item=ITEM, values={":t": S("X")},
     message_contains="Invalid attribute type name found; type: X, valid types: "
                      "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}")
cond("fn:type-name-lowercase", "attribute_type(s, :t)", error=VE, item=ITEM,
     values={":t": S("s")}, message_contains="Invalid attribute type name found")
cond("fn:type-not-string", "attribute_type(s, :t)", error=VE, item=ITEM, values={":t": N(1)},
     message_contains="Incorrect operand type for operator or function; operator or function: "
                      "attribute_type, operand type: N")
cond("fn:begins-with-number", "begins_with(s, :p)", error=VE, item=ITEM, values={":p": N(1)},
     message_contains="Incorrect operand type for operator or function; operator or function: "
                      "begins_with, operand type: N")
cond("fn:size-of-number-value", "size(:v) = :w", error=VE, item=ITEM,
     values={":v": N(1), ":w": N(1)},
     message_contains="operator or function: size, operand type: N")
cond("fn:size-as-condition", "size(s)", error=VE, item=ITEM,
     message_contains="The function is not allowed to be used this way in an expression; "
                      "function: size")
cond("fn:bool-function-as-operand", "begins_with(s, :p) = :v", error=VE, item=ITEM,
     values={":p": S("h"), ":v": BOOL_T},
     message_contains="The function is not allowed to be used this way in an expression; "
                      "function: begins_with")
cond("fn:bool-function-as-argument", "size(attribute_exists(s)) = :v", error=VE, item=ITEM,
     values={":v": N(1)}, message_contains="function: attribute_exists")
cond("fn:same-operands", "begins_with(s, s)", error=VE, item=ITEM,
     message_contains="The first operand must be distinct from the remaining operands for this "
                      "operator or function; operator: begins_with, first operand: [s]")
cond("cmp:same-operands", "s = s", error=VE, item=ITEM,
     message_contains="operator: =, first operand: [s]")
cond("cmp:same-operands-via-names", "#a = s", error=VE, item=ITEM, names={"#a": "s"},
     message_contains="first operand: [s]")
cond("fn:missing-paren", "attribute_exists(n", error=VE, item=ITEM, message_contains="Syntax error")
cond("fn:no-args", "attribute_exists()", error=VE, item=ITEM, message_contains="Syntax error")

# ---- names, tokens, reserved words, limits --------------------------------------------

for word in ("status", "name", "size", "Date", "DATA", "count", "year", "key", "value", "token",
             "user", "comment", "type", "timestamp", "order", "group", "level", "range"):
    cond(f"reserved:{word}", f"{word} = :v", error=VE, item={}, values={":v": N(1)},
         message_contains=f"Attribute name is a reserved keyword; reserved keyword: {word}")
cond("reserved:nested", "a.status = :v", error=VE, item={}, values={":v": N(1)},
     message_contains="reserved keyword: status")
cond("reserved:via-name-ok", "#s = :v", True, item={"status": N(1)}, names={"#s": "status"},
     values={":v": N(1)})
cond("reserved:not-reserved-ok", "statuses = :v", True, item={"statuses": N(1)}, values={":v": N(1)})
cond("token:underscore-start", "_a = :v", error=VE, item={}, values={":v": N(1)},
     message_contains='Syntax error; token: "_", near: "_a"')
cond("token:digit-start", "1a = :v", error=VE, item={}, values={":v": N(1)},
     message_contains="Syntax error")
cond("token:dash", "a-b = :v", error=VE, item={}, values={":v": N(1)},
     message_contains='Syntax error; token: "-", near: "a-b"')
cond("token:dollar", "a$b = :v", error=VE, item={}, values={":v": N(1)},
     message_contains='Syntax error; token: "$", near: "a$b"')
cond("token:quoted-string", 'a = "x"', error=VE, item={}, message_contains='Syntax error; token: """, near: "= "x"')
cond("token:lone-hash", "# = :v", error=VE, item={}, values={":v": N(1)},
     message_contains='token: "#"')
cond("token:lone-colon", "a = :", error=VE, item={}, message_contains='token: ":"')
cond("token:literal-number", "a = 5", error=VE, item={}, message_contains='token: "5"')
cond("token:name-ref-digits", "#1 = :v", True, item={"x": N(1)}, names={"#1": "x"},
     values={":v": N(1)})
cond("token:value-ref-digits", "x = :1", True, item={"x": N(1)}, values={":1": N(1)})
cond("token:underscores-inside", "a_b_1 = :v_1", True, item={"a_b_1": N(1)}, values={":v_1": N(1)})
cond("token:value-as-path-element", "a.:v = :v", error=VE, item={}, values={":v": N(1)},
     message_contains="Syntax error")
cond("token:index-name", "a[#i] = :v", error=VE, item={}, names={"#i": "x"}, values={":v": N(1)},
     message_contains="Syntax error")
cond("token:index-value", "a[:i] = :v", error=VE, item={}, values={":v": N(1), ":i": N(0)},
     message_contains="Syntax error")
cond("token:negative-index", "a[-1] = :v", error=VE, item={}, values={":v": N(1)},
     message_contains="Syntax error")
cond("token:empty-index", "a[] = :v", error=VE, item={}, values={":v": N(1)},
     message_contains="Syntax error")
cond("token:double-dot", "a..b = :v", error=VE, item={}, values={":v": N(1)},
     message_contains="Syntax error")
cond("token:trailing-dot", "a. = :v", error=VE, item={}, values={":v": N(1)},
     message_contains="Syntax error")
cond("token:equals-equals", "a == :v", error=VE, item={}, values={":v": N(1)},
     message_contains="Syntax error")
cond("token:bang-equals", "a != :v", error=VE, item={}, values={":v": N(1)},
     message_contains="Syntax error")
cond("limits:size-4096-ok", "a" * 4091 + " = :v", False, item={}, values={":v": N(1)})
cond("limits:size-4097", "a" * 4092 + " = :v", error=VE, item={}, values={":v": N(1)},
     message_contains="Invalid ConditionExpression: Expression size has exceeded the maximum "
                      "allowed size; expression size: 4097")
cond("limits:path-depth-32-ok", ".".join(["a"] * 32) + " = :v", False, item={},
     values={":v": N(1)})
cond("limits:path-depth-33", ".".join(["a"] * 33) + " = :v", error=VE, item={},
     values={":v": N(1)}, message_contains="nesting levels")
cond("names:undefined", "#x = :v", error=VE, item={}, values={":v": N(1)},
     message_contains="An expression attribute name used in the document path is not defined; "
                      "attribute name: #x")
cond("values:undefined", "a = :x", error=VE, item={"a": N(1)},
     message_contains="An expression attribute value used in expression is not defined; "
                      "attribute value: :x")

# ---- UpdateExpression: "Update expressions" -------------------------------------------

U0 = {"pk": S("k"), "a": N(1), "s": S("x"), "l": L(N(0), N(1), N(2), N(3), N(4), N(5)),
      "m": M(x=N(1), y=M(z=N(2))), "ss": SS("a", "b"), "ns": NS(1, 2), "bs": BS("AQ=="),
      "nl": L(M(q=L(N(1), N(2))))}


def with_(**changes: Any) -> dict[str, Any]:
    out = dict(U0)
    for k_, v_ in changes.items():
        if v_ is None:
            out.pop(k_, None)
        else:
            out[k_] = v_
    return out


upd("set:new", "SET b = :v", with_(b=S("y")), item=U0, values={":v": S("y")})
upd("set:replace", "SET a = :v", with_(a=S("y")), item=U0, values={":v": S("y")})
upd("set:two", "SET b = :v, c = :w", with_(b=S("y"), c=N(2)), item=U0,
    values={":v": S("y"), ":w": N(2)})
upd("set:lowercase", "set b = :v", with_(b=S("y")), item=U0, values={":v": S("y")})
upd("set:mixedcase", "sEt b = :v", with_(b=S("y")), item=U0, values={":v": S("y")})
upd("set:copy", "SET b = s", with_(b=S("x")), item=U0)
upd("set:copy-missing", "SET b = nothere", error=VE, item=U0,
    message_contains="The provided expression refers to an attribute that does not exist in the item")
upd("set:swap", "SET a = s, s = a", with_(a=S("x"), s=N(1)), item=U0)
upd("set:reads-original", "SET b = :v, c = b", error=VE, item=U0, values={":v": N(1)},
    message_contains="does not exist")
upd("set:self", "SET a = a", U0, item=U0)
upd("set:plus", "SET a = a + :v", with_(a=N(3)), item=U0, values={":v": N(2)})
upd("set:plus-values", "SET b = :x + :y", with_(b=N(7)), item=U0, values={":x": N(4), ":y": N(3)})
upd("set:minus", "SET a = a - :v", with_(a=N("-1.5")), item=U0, values={":v": N("2.5")})
upd("set:minus-reversed", "SET a = :v - a", with_(a=N(9)), item=U0, values={":v": N(10)})
upd("set:plus-decimal", "SET a = a + :v", with_(a=N("1.1")), item=U0, values={":v": N("0.1")})
upd("set:plus-to-zero", "SET a = a - :v", with_(a=N(0)), item=U0, values={":v": N(1)})
upd("set:plus-no-spaces", "SET a=a+:v", with_(a=N(2)), item=U0, values={":v": N(1)})
upd("set:plus-three", "SET a = a + :v + :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="Syntax error")
upd("set:plus-string-value", "SET a = a + :v", error=VE, item=U0, values={":v": S("x")},
    message_contains="Incorrect operand type for operator or function; operator or function: +, "
                     "operand type: S")
upd("set:plus-string-attr", "SET b = s + :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="An operand in the update expression has an incorrect data type")
upd("set:plus-missing-attr", "SET b = nope + :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="does not exist")
upd("set:minus-list-value", "SET a = a - :v", error=VE, item=U0, values={":v": L(N(1))},
    message_contains="operator or function: -, operand type: L")
upd("set:overflow", "SET a = a + :v", error=VE, item={"a": N("9.9E+125")},
    values={":v": N("9.9E+125")}, message_contains="Number overflow")
upd("set:parens-rhs", "SET a = (a + :v)", with_(a=N(2)), item=U0, values={":v": N(1)})
upd("set:parens-operand", "SET a = (a) + :v", with_(a=N(2)), item=U0, values={":v": N(1)})
upd("set:if-not-exists-missing", "SET b = if_not_exists(b, :v)", with_(b=N(0)), item=U0,
    values={":v": N(0)})
upd("set:if-not-exists-present", "SET a = if_not_exists(a, :v)", U0, item=U0, values={":v": N(0)})
upd("set:if-not-exists-other", "SET b = if_not_exists(a, :v)", with_(b=N(1)), item=U0,
    values={":v": N(0)})
upd("set:if-not-exists-plus", "SET b = if_not_exists(b, :z) + :one", with_(b=N(1)), item=U0,
    values={":z": N(0), ":one": N(1)})
upd("set:if-not-exists-nested", "SET b = if_not_exists(b, if_not_exists(c, :v))",
    with_(b=N(3)), item=U0, values={":v": N(3)})
upd("set:if-not-exists-value-first", "SET b = if_not_exists(:v, :v)", error=VE, item=U0,
    values={":v": N(3)}, message_contains="Operator or function requires a document path; "
                                          "operator or function: if_not_exists")
upd("set:if-not-exists-arity", "SET b = if_not_exists(b)", error=VE, item=U0,
    message_contains="Incorrect number of operands for operator or function; operator or "
                     "function: if_not_exists, number of operands: 1")
upd("set:if-not-exists-plus-inside", "SET b = if_not_exists(b, :v + :v)", error=VE, item=U0,
    values={":v": N(1)}, message_contains="Syntax error")
upd("set:list-append", "SET l = list_append(l, :v)",
    with_(l=L(N(0), N(1), N(2), N(3), N(4), N(5), N(6))), item=U0, values={":v": L(N(6))})
upd("set:list-prepend", "SET l = list_append(:v, l)",
    with_(l=L(N(9), N(0), N(1), N(2), N(3), N(4), N(5))), item=U0, values={":v": L(N(9))})
upd("set:list-append-values", "SET b = list_append(:x, :y)", with_(b=L(N(1), S("a"), N(2))),
    item=U0, values={":x": L(N(1), S("a")), ":y": L(N(2))})
upd("set:list-append-empty", "SET b = list_append(:x, :y)", with_(b=L()), item=U0,
    values={":x": L(), ":y": L()})
upd("set:list-append-if-not-exists", "SET b = list_append(if_not_exists(b, :e), :v)",
    with_(b=L(N(1))), item=U0, values={":e": L(), ":v": L(N(1))})
upd("set:list-append-non-list-value", "SET l = list_append(l, :v)", error=VE, item=U0,
    values={":v": S("x")}, message_contains="operator or function: list_append, operand type: S")
upd("set:list-append-non-list-attr", "SET b = list_append(s, :v)", error=VE, item=U0,
    values={":v": L(N(1))}, message_contains="incorrect data type")
upd("set:list-append-set-attr", "SET b = list_append(ss, :v)", error=VE, item=U0,
    values={":v": L(N(1))}, message_contains="incorrect data type")
upd("set:list-append-missing", "SET b = list_append(nope, :v)", error=VE, item=U0,
    values={":v": L(N(1))}, message_contains="does not exist")
upd("set:list-append-nested", "SET b = list_append(list_append(:v, :v), :v)", error=VE,
    item=U0, values={":v": L(N(1))},
    message_contains="The function is not allowed to be used this way in an expression; "
                     "function: list_append")
upd("set:list-append-arity", "SET b = list_append(:v)", error=VE, item=U0,
    values={":v": L(N(1))}, message_contains="number of operands: 1")
upd("set:list-append-case", "SET b = LIST_APPEND(:v, :v)", error=VE, item=U0,
    values={":v": L(N(1))}, message_contains="Invalid function name; function: LIST_APPEND")
upd("set:unknown-function", "SET b = f(a)", error=VE, item=U0,
    message_contains="Invalid function name; function: f")
upd("set:condition-function", "SET b = size(a)", error=VE, item=U0,
    message_contains="Invalid function name; function: size")
upd("set:nested-map", "SET m.x = :v", with_(m=M(x=S("n"), y=M(z=N(2)))), item=U0,
    values={":v": S("n")})
upd("set:nested-map-new-key", "SET m.w = :v", with_(m=M(x=N(1), y=M(z=N(2)), w=S("n"))),
    item=U0, values={":v": S("n")})
upd("set:deep", "SET m.y.z = :v", with_(m=M(x=N(1), y=M(z=S("n")))), item=U0,
    values={":v": S("n")})
upd("set:list-index", "SET l[1] = :v", with_(l=L(N(0), S("n"), N(2), N(3), N(4), N(5))),
    item=U0, values={":v": S("n")})
upd("set:list-past-end", "SET l[10] = :v",
    with_(l=L(N(0), N(1), N(2), N(3), N(4), N(5), S("n"))), item=U0, values={":v": S("n")})
upd("set:list-past-end-sorted", "SET l[84] = :a, l[37] = :b, l[50] = :c",
    with_(l=L(N(0), N(1), N(2), N(3), N(4), N(5), S("b"), S("c"), S("a"))), item=U0,
    values={":a": S("a"), ":b": S("b"), ":c": S("c")})
upd("set:index-in-nested-list", "SET nl[0].q[1] = :v", with_(nl=L(M(q=L(N(1), N(9)))))
    , item=U0, values={":v": N(9)})
upd("set:missing-parent", "SET nope.x = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="The document path provided in the update expression is invalid for update")
upd("set:scalar-parent", "SET s.x = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="invalid for update")
upd("set:list-parent-dot", "SET l.x = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="invalid for update")
upd("set:index-on-map", "SET m[0] = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="invalid for update")
upd("set:index-on-missing", "SET nope[0] = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="invalid for update")
upd("set:deep-missing", "SET m.q.r = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="invalid for update")
upd("set:name-ref", "SET #a = :v", with_(**{"a.b": N(1)}), item=U0, names={"#a": "a.b"},
    values={":v": N(1)})
upd("set:name-ref-path", "SET #m.#x = :v", with_(m=M(x=N(7), y=M(z=N(2)))), item=U0,
    names={"#m": "m", "#x": "x"}, values={":v": N(7)})
upd("set:reserved", "SET status = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="Invalid UpdateExpression: Attribute name is a reserved keyword; reserved "
                     "keyword: status")
upd("set:map-value", "SET b = :v", with_(b=M(k=L(N(1)))), item=U0, values={":v": M(k=L(N(1)))})
upd("set:empty-string", "SET b = :v", with_(b=S("")), item=U0, values={":v": S("")})
upd("set:value-on-left", "SET :v = a", error=VE, item=U0, values={":v": N(1)},
    message_contains="Syntax error")
upd("set:missing-equals", "SET a :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="Syntax error")
upd("set:missing-rhs", "SET a =", error=VE, item=U0, message_contains='token: "<EOF>"')
upd("set:trailing-comma", "SET a = :v,", error=VE, item=U0, values={":v": N(1)},
    message_contains='token: "<EOF>"')
upd("set:comma-before-clause", "SET a = :v, REMOVE s", error=VE, item=U0, values={":v": N(1)},
    message_contains='token: "REMOVE"')
upd("set:literal-number", "SET a = 1", error=VE, item=U0, message_contains='token: "1"')
upd("set:underscore-name", "SET _a = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains='Syntax error; token: "_", near: "SET _a"')
upd("set:twice", "SET a = :v SET b = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains='The "SET" section can only be used once in an update expression;')
upd("set:twice-interleaved", "SET a = :v REMOVE s SET b = :v", error=VE, item=U0,
    values={":v": N(1)}, message_contains='The "SET" section can only be used once')
upd("set:overlap-same", "SET a = :v, a = :w", error=VE, item=U0, values={":v": N(1), ":w": N(2)},
    message_contains="Two document paths overlap with each other; must remove or rewrite one of "
                     "these paths; path one: [a], path two: [a]")
upd("set:overlap-prefix", "SET m = :v, m.x = :w", error=VE, item=U0,
    values={":v": N(1), ":w": N(2)},
    message_contains="Two document paths overlap with each other; must remove or rewrite one of "
                     "these paths; path one: [m], path two: [m, x]")
upd("set:overlap-via-names", "SET #a = :v, #b = :w", error=VE, item=U0,
    names={"#a": "a", "#b": "a"}, values={":v": N(1), ":w": N(2)}, message_contains="overlap")
upd("set:overlap-index", "SET l[1] = :v, l[1][0] = :w", error=VE, item=U0,
    values={":v": N(1), ":w": N(2)}, message_contains="path one: [l, [1]], path two: [l, [1], [0]]")
upd("set:conflict", "SET m.x = :v, m[1] = :w", error=VE, item=U0,
    values={":v": N(1), ":w": N(2)},
    message_contains="Two document paths conflict with each other; must remove or rewrite one "
                     "of these paths; path one: [m, x], path two: [m, [1]]")
upd("set:siblings-ok", "SET m.x = :v, m.y.w = :w", with_(m=M(x=N(1), y=M(z=N(2), w=N(2)))),
    item=U0, values={":v": N(1), ":w": N(2)})
upd("set:new-item", "SET a = :v", {"pk": S("k"), "a": N(1)}, item={"pk": S("k")},
    values={":v": N(1)})

upd("remove:one", "REMOVE a", with_(a=None), item=U0)
upd("remove:two", "REMOVE a, s", with_(a=None, s=None), item=U0)
upd("remove:missing", "REMOVE nope", U0, item=U0)
upd("remove:lowercase", "remove a", with_(a=None), item=U0)
upd("remove:nested", "REMOVE m.x", with_(m=M(y=M(z=N(2)))), item=U0)
upd("remove:nested-missing-leaf", "REMOVE m.nope", U0, item=U0)
upd("remove:last-key-leaves-empty-map", "REMOVE m.y.z", with_(m=M(x=N(1), y=M())), item=U0)
upd("remove:list-element", "REMOVE l[1]", with_(l=L(N(0), N(2), N(3), N(4), N(5))), item=U0)
upd("remove:list-elements", "REMOVE l[1], l[3]", with_(l=L(N(0), N(2), N(4), N(5))), item=U0)
upd("remove:list-elements-any-order", "REMOVE l[4], l[0], l[2]", with_(l=L(N(1), N(3), N(5))),
    item=U0)
upd("remove:list-past-end", "REMOVE l[17]", U0, item=U0)
upd("remove:only-element", "REMOVE nl[0]", with_(nl=L()), item=U0)
upd("remove:nested-list", "REMOVE nl[0].q[0]", with_(nl=L(M(q=L(N(2))))), item=U0)
upd("remove:then-set-original-index", "REMOVE l[1] SET l[3] = :v",
    with_(l=L(N(0), N(2), S("n"), N(4), N(5))), item=U0, values={":v": S("n")})
upd("remove:set-first-then-remove", "SET l[3] = :v REMOVE l[1]",
    with_(l=L(N(0), N(2), S("n"), N(4), N(5))), item=U0, values={":v": S("n")})
upd("remove:and-copy", "REMOVE a SET b = a", with_(a=None, b=N(1)), item=U0)
upd("remove:bad-parent", "REMOVE s.x", error=VE, item=U0,
    message_contains="The document path provided in the update expression is invalid for update")
upd("remove:missing-parent", "REMOVE nope.x", error=VE, item=U0, message_contains="invalid for update")
upd("remove:index-of-scalar", "REMOVE s[0]", error=VE, item=U0, message_contains="invalid for update")
upd("remove:overlap-with-set", "SET a = :v REMOVE a", error=VE, item=U0, values={":v": N(1)},
    message_contains="path one: [a], path two: [a]")
upd("remove:overlap", "REMOVE m, m.x", error=VE, item=U0, message_contains="overlap")
upd("remove:twice", "REMOVE a REMOVE s", error=VE, item=U0,
    message_contains='The "REMOVE" section can only be used once')
upd("remove:value", "REMOVE :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="Syntax error")
upd("remove:with-equals", "REMOVE a = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="Syntax error")

upd("add:number", "ADD a :v", with_(a=N(3)), item=U0, values={":v": N(2)})
upd("add:negative", "ADD a :v", with_(a=N(-1)), item=U0, values={":v": N(-2)})
upd("add:new-number", "ADD b :v", with_(b=N(2)), item=U0, values={":v": N(2)})
upd("add:new-item", "ADD c :v", {"pk": S("k"), "c": N(1)}, item={"pk": S("k")},
    values={":v": N(1)})
upd("add:string-set", "ADD ss :v", with_(ss=SS("a", "b", "c")), item=U0, values={":v": SS("c", "a")})
upd("add:number-set", "ADD ns :v", with_(ns=NS(1, 2, 3)), item=U0, values={":v": NS(3, "2.0")})
upd("add:binary-set", "ADD bs :v", with_(bs=BS("AQ==", "Ag==")), item=U0, values={":v": BS("Ag==")})
upd("add:new-set", "ADD b :v", with_(b=SS("x")), item=U0, values={":v": SS("x")})
upd("add:nested", "ADD m.x :v", with_(m=M(x=N(2), y=M(z=N(2)))), item=U0, values={":v": N(1)})
upd("add:two", "ADD a :v, b :v", with_(a=N(2), b=N(1)), item=U0, values={":v": N(1)})
upd("add:string-value", "ADD a :v", error=VE, item=U0, values={":v": S("x")},
    message_contains="Incorrect operand type for operator or function; operator: ADD, operand "
                     "type: STRING")
upd("add:list-value", "ADD l :v", error=VE, item=U0, values={":v": L(N(1))},
    message_contains="operator: ADD, operand type: LIST")
upd("add:map-value", "ADD a :v", error=VE, item=U0, values={":v": M()},
    message_contains="operator: ADD, operand type: MAP")
upd("add:bool-value", "ADD a :v", error=VE, item=U0, values={":v": BOOL_T},
    message_contains="operand type: BOOLEAN")
upd("add:number-to-string", "ADD s :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="An operand in the update expression has an incorrect data type")
upd("add:set-to-number", "ADD a :v", error=VE, item=U0, values={":v": SS("x")},
    message_contains="incorrect data type")
upd("add:wrong-set-type", "ADD ss :v", error=VE, item=U0, values={":v": NS(1)},
    message_contains="incorrect data type")
upd("add:set-to-list", "ADD l :v", error=VE, item=U0, values={":v": NS(1)},
    message_contains="incorrect data type")
upd("add:path-operand", "ADD a b", error=VE, item=U0, message_contains="Syntax error")
upd("add:missing-operand", "ADD a", error=VE, item=U0, message_contains='token: "<EOF>"')
upd("add:spaced-colon", "ADD hits : incr", error=VE, item=U0, values={":incr": N(1)},
    message_contains='Syntax error; token: ":", near: "hits : incr"')
upd("add:twice", "ADD a :v ADD b :v", error=VE, item=U0, values={":v": N(1)},
    message_contains='The "ADD" section can only be used once')

upd("delete:some", "DELETE ss :v", with_(ss=SS("b")), item=U0, values={":v": SS("a")})
upd("delete:absent-member", "DELETE ss :v", U0, item=U0, values={":v": SS("zz")})
upd("delete:all", "DELETE ss :v", with_(ss=None), item=U0, values={":v": SS("a", "b")})
upd("delete:number-set", "DELETE ns :v", with_(ns=NS(2)), item=U0, values={":v": NS("1.0")})
upd("delete:binary-set", "DELETE bs :v", with_(bs=None), item=U0, values={":v": BS("AQ==")})
upd("delete:missing-attr", "DELETE nope :v", U0, item=U0, values={":v": SS("a")})
upd("delete:string-value", "DELETE ss :v", error=VE, item=U0, values={":v": S("a")},
    message_contains="Incorrect operand type for operator or function; operator: DELETE, operand "
                     "type: STRING")
upd("delete:number-value", "DELETE ns :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="operator: DELETE, operand type: NUMBER")
upd("delete:wrong-set-type", "DELETE ss :v", error=VE, item=U0, values={":v": NS(1)},
    message_contains="incorrect data type")
upd("delete:from-scalar", "DELETE s :v", error=VE, item=U0, values={":v": SS("x")},
    message_contains="incorrect data type")
upd("delete:twice", "DELETE ss :v DELETE ns :w", error=VE, item=U0,
    values={":v": SS("a"), ":w": NS(1)}, message_contains='The "DELETE" section can only be used once')

upd("multi:all-clauses", "SET b = :v REMOVE s ADD a :one DELETE ss :d",
    with_(b=S("y"), s=None, a=N(2), ss=SS("b")), item=U0,
    values={":v": S("y"), ":one": N(1), ":d": SS("a")})
upd("multi:clause-order-free", "DELETE ss :d ADD a :one REMOVE s SET b = :v",
    with_(b=S("y"), s=None, a=N(2), ss=SS("b")), item=U0,
    values={":v": S("y"), ":one": N(1), ":d": SS("a")})
upd("multi:add-overlaps-set", "SET a = :one ADD a :one", error=VE, item=U0,
    values={":one": N(1)}, message_contains="overlap")
upd("multi:unknown-clause", "HELLO a = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains='Syntax error; token: "HELLO"')
upd("multi:garbage", "INVALID SYNTAX HERE", error=VE, item=U0,
    message_contains='Syntax error; token: "INVALID", near: "INVALID SYNTAX"')
upd("limits:size", "SET " + "a" * 4100 + " = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="Invalid UpdateExpression: Expression size has exceeded the maximum allowed size;")
upd("names:undefined", "SET #x = :v", error=VE, item=U0, values={":v": N(1)},
    message_contains="attribute name: #x")
upd("values:undefined", "SET a = :x", error=VE, item=U0, message_contains="attribute value: :x")

# ---- ProjectionExpression: "Projection expressions" -----------------------------------

P0 = {"pk": S("k"), "a": N(1), "s": S("x"), "l": L(N(0), N(1), N(2)),
      "m": M(x=N(1), y=M(z=N(2), w=N(3)), l=L(M(q=N(1), r=N(2)), N(5))), "a.b": S("dot")}

proj("one", "a", {"a": N(1)}, item=P0)
proj("two", "a, s", {"a": N(1), "s": S("x")}, item=P0)
proj("missing", "nope", {}, item=P0)
proj("some-missing", "a, nope", {"a": N(1)}, item=P0)
proj("nested", "m.x", {"m": M(x=N(1))}, item=P0)
proj("nested-two", "m.x, m.y.z", {"m": M(x=N(1), y=M(z=N(2)))}, item=P0)
proj("nested-missing", "m.nope", {}, item=P0)
proj("index", "l[1]", {"l": L(N(1))}, item=P0)
proj("indexes-in-order", "l[2], l[0]", {"l": L(N(0), N(2))}, item=P0)
proj("index-past-end", "l[9]", {}, item=P0)
proj("index-then-key", "m.l[0].q", {"m": M(l=L(M(q=N(1))))}, item=P0)
proj("index-on-map", "m[0]", {}, item=P0)
proj("key-on-list", "l.x", {}, item=P0)
proj("key-on-scalar", "s.x", {}, item=P0)
proj("whole-map", "m.y", {"m": M(y=M(z=N(2), w=N(3)))}, item=P0)
proj("name-ref", "#a", {"a.b": S("dot")}, item=P0, names={"#a": "a.b"})
proj("name-ref-nested", "#m.#x", {"m": M(x=N(1))}, item=P0, names={"#m": "m", "#x": "x"})
proj("spaces", "  a ,  s  ", {"a": N(1), "s": S("x")}, item=P0)
proj("nested-list-elements", "m.l[1], m.l[0].r", {"m": M(l=L(M(r=N(2)), N(5)))}, item=P0)
proj("reserved", "name", error=VE, item=P0,
     message_contains="Invalid ProjectionExpression: Attribute name is a reserved keyword; "
                      "reserved keyword: name")
proj("reserved-nested", "m.size", error=VE, item=P0, message_contains="reserved keyword: size")
proj("overlap", "m, m.x", error=VE, item=P0,
     message_contains="Invalid ProjectionExpression: Two document paths overlap with each other; "
                      "must remove or rewrite one of these paths; path one: [m], path two: [m, x]")
proj("overlap-reversed", "m.x, m", error=VE, item=P0,
     message_contains="path one: [m, x], path two: [m]")
proj("duplicate", "a, a", error=VE, item=P0, message_contains="path one: [a], path two: [a]")
proj("duplicate-via-names", "#x, a", error=VE, item=P0, names={"#x": "a"},
     message_contains="overlap")
proj("conflict", "l[0], l.x", error=VE, item=P0, message_contains="conflict")
proj("trailing-comma", "a,", error=VE, item=P0,
     message_contains='Syntax error; token: "<EOF>", near: ","')
proj("leading-comma", ",a", error=VE, item=P0, message_contains='token: ","')
proj("value-ref", ":v", error=VE, item=P0, message_contains="Syntax error")
proj("function", "size(a)", error=VE, item=P0, message_contains="Syntax error")
proj("space-separated", "a s", error=VE, item=P0, message_contains='token: "s"')
proj("size-limit", "a" * 4097, error=VE, item=P0,
     message_contains="Invalid ProjectionExpression: Expression size has exceeded the maximum "
                      "allowed size;")
proj("undefined-name", "#nope", error=VE, item=P0, message_contains="attribute name: #nope")
proj("keyword-allowed-as-name?", "AND", error=VE, item=P0, message_contains="reserved keyword: AND")

# ---- KeyConditionExpression ------------------------------------------------------------

KV = {":p": S("a"), ":s": N(1), ":t": N(5)}
key("hash-only", "pk = :p", {"hash_value": S("a"), "op": None, "operands": []},
    values={":p": S("a")})
for op in ("=", "<", "<=", ">", ">="):
    key(f"sort{op}", f"pk = :p AND sk {op} :s", {"hash_value": S("a"), "op": op,
                                                 "operands": [N(1)]}, values={":p": S("a"), ":s": N(1)})
key("sort-first", "sk > :s AND pk = :p", {"hash_value": S("a"), "op": ">", "operands": [N(1)]},
    values={":p": S("a"), ":s": N(1)})
key("between", "pk = :p AND sk BETWEEN :s AND :t",
    {"hash_value": S("a"), "op": "BETWEEN", "operands": [N(1), N(5)]}, values=KV)
key("begins-with", "pk = :p AND begins_with(sk, :x)",
    {"hash_value": S("a"), "op": "begins_with", "operands": [S("x")]}, values={":p": S("a"), ":x": S("x")},
    schema={"hash": "pk", "range": "sk", "types": {"pk": "S", "sk": "S"}})
key("names", "#h = :p AND #r < :s", {"hash_value": S("a"), "op": "<", "operands": [N(1)]},
    names={"#h": "pk", "#r": "sk"}, values={":p": S("a"), ":s": N(1)})
key("parens", "(pk = :p) AND (sk < :s)", {"hash_value": S("a"), "op": "<", "operands": [N(1)]},
    values={":p": S("a"), ":s": N(1)})
key("parens-whole", "(pk = :p AND sk < :s)", {"hash_value": S("a"), "op": "<", "operands": [N(1)]},
    values={":p": S("a"), ":s": N(1)})
key("lowercase-and", "pk = :p and sk < :s", {"hash_value": S("a"), "op": "<", "operands": [N(1)]},
    values={":p": S("a"), ":s": N(1)})
key("binary-hash", "pk = :p", {"hash_value": B("AQ=="), "op": None, "operands": []},
    values={":p": B("AQ==")}, schema={"hash": "pk", "range": None, "types": {"pk": "B"}})
key("or", "pk = :p OR sk < :s", error=VE, values={":p": S("a"), ":s": N(1)},
    message_contains="Invalid operator used in KeyConditionExpression: OR")
key("not", "NOT pk = :p", error=VE, values={":p": S("a")},
    message_contains="Invalid operator used in KeyConditionExpression: NOT")
key("in", "pk IN (:p)", error=VE, values={":p": S("a")},
    message_contains="Invalid operator used in KeyConditionExpression: IN")
key("contains", "pk = :p AND contains(sk, :s)", error=VE, values={":p": S("a"), ":s": N(1)},
    message_contains="Invalid operator used in KeyConditionExpression: contains")
key("attribute-exists", "pk = :p AND attribute_exists(sk)", error=VE, values={":p": S("a")},
    message_contains="Invalid operator used in KeyConditionExpression: attribute_exists")
key("missing-hash", "sk = :s", error=VE, values={":s": N(1)},
    message_contains="Query condition missed key schema element: pk")
key("hash-not-equal", "pk > :p", error=VE, values={":p": S("a")},
    message_contains="Query key condition not supported")
key("ne", "pk = :p AND sk <> :s", error=VE, values={":p": S("a"), ":s": N(1)},
    message_contains="Query key condition not supported")
key("two-on-sort", "pk = :p AND sk > :s AND sk < :t", error=VE, values=KV,
    message_contains="Conditions can be of length 1 or 2 only")
key("two-on-hash", "pk = :p AND pk = :p", error=VE, values={":p": S("a")},
    message_contains="KeyConditionExpressions must only contain one condition per key")
key("non-key", "pk = :p AND foo = :s", error=VE, values={":p": S("a"), ":s": N(1)},
    message_contains="Query condition missed key schema element: sk")
key("hash-type", "pk = :p", error=VE, values={":p": N(1)},
    message_contains="One or more parameter values were invalid: Condition parameter type does "
                     "not match schema type")
key("sort-type", "pk = :p AND sk < :s", error=VE, values={":p": S("a"), ":s": S("1")},
    message_contains="Condition parameter type does not match schema type")
key("begins-with-number-key", "pk = :p AND begins_with(sk, :s)", error=VE,
    values={":p": S("a"), ":s": N(1)},
    message_contains="Invalid KeyConditionExpression: Incorrect operand type for operator or "
                     "function; operator or function: begins_with, operand type: N")
key("between-reversed", "pk = :p AND sk BETWEEN :t AND :s", error=VE, values=KV,
    message_contains="Invalid KeyConditionExpression: The BETWEEN operator requires upper bound "
                     "to be greater than or equal to lower bound; lower bound operand: "
                     "AttributeValue: {N:5}, upper bound operand: AttributeValue: {N:1}")
key("path-vs-path", "pk = sk", error=VE, message_contains="Query key condition not supported")
key("nested-path", "pk.x = :p", error=VE, values={":p": S("a")},
    message_contains="Query key condition not supported")
key("syntax", "pk = :p AND", error=VE, values={":p": S("a")},
    message_contains='Invalid KeyConditionExpression: Syntax error; token: "<EOF>"')
key("reserved", "pk = :p AND size = :s", error=VE, values={":p": S("a"), ":s": N(1)},
    message_contains="reserved keyword: size")
key("redundant-parens", "((pk = :p))", error=VE, values={":p": S("a")},
    message_contains="The expression has redundant parentheses;")
key("no-range-key-schema", "pk = :p AND sk = :s", error=VE, values={":p": S("a"), ":s": N(1)},
    schema={"hash": "pk", "range": None, "types": {"pk": "S"}},
    message_contains="Query key condition not supported")
