"""Micro-benchmark of atoll.expressions: parse (cold vs cached) and evaluate.

Run: .venv/bin/python bench/expressions_micro.py
Prints microseconds per operation (best of 5 repeats).
"""

from __future__ import annotations

import timeit

from atoll import expressions as ex

CONDITION = "attribute_exists(#pk) AND #st = :active AND size(tags) > :zero AND (score BETWEEN :lo AND :hi OR begins_with(#n, :pre))"
UPDATE = "SET #c = if_not_exists(#c, :zero) + :one, tags = list_append(tags, :t), m.x = :v REMOVE gone ADD ss :s"
PROJECTION = "pk, #st, m.x, tags[0], score"
NAMES = {"#pk": "pk", "#st": "status", "#n": "name", "#c": "count"}
VALUES = {":active": {"S": "on"}, ":zero": {"N": "0"}, ":lo": {"N": "1"}, ":hi": {"N": "100"},
          ":pre": {"S": "ab"}, ":one": {"N": "1"}, ":t": {"L": [{"S": "z"}]},
          ":v": {"S": "v"}, ":s": {"SS": ["q"]}}
ITEM = {"pk": {"S": "k"}, "status": {"S": "on"}, "tags": {"L": [{"S": "a"}, {"S": "b"}]},
        "score": {"N": "42"}, "name": {"S": "abc"}, "count": {"N": "7"},
        "m": {"M": {"x": {"S": "old"}, "y": {"N": "1"}}}, "gone": {"S": "x"},
        "ss": {"SS": ["p"]}}


def per_op_us(stmt: object, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def cold(parse: object, text: str) -> float:
    def run() -> None:
        parse.cache_clear()  # type: ignore[attr-defined]
        parse(text)  # type: ignore[operator]
    return per_op_us(run, 2000)


def main() -> None:
    rows = []
    for label, parse, text in (("condition", ex.parse_condition, CONDITION),
                               ("update", ex.parse_update, UPDATE),
                               ("projection", ex.parse_projection, PROJECTION)):
        parse(text)
        rows.append((f"parse {label} (cold)", cold(parse, text)))
        rows.append((f"parse {label} (cached)", per_op_us(lambda p=parse, t=text: p(t), 100_000)))
    cond = ex.parse_condition(CONDITION)
    update = ex.parse_update(UPDATE)
    projection = ex.parse_projection(PROJECTION)
    simple = ex.parse_condition("attribute_not_exists(pk)")
    rows.append(("evaluate condition", per_op_us(
        lambda: ex.evaluate_condition(cond, ITEM, NAMES, VALUES), 50_000)))
    rows.append(("evaluate attribute_not_exists(pk)", per_op_us(
        lambda: ex.evaluate_condition(simple, ITEM, {}, {}), 200_000)))
    rows.append(("apply update", per_op_us(lambda: ex.apply_update(update, ITEM, NAMES, VALUES),
                                           20_000)))
    rows.append(("project", per_op_us(lambda: ex.project(ITEM, projection, NAMES), 50_000)))
    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print(f"{name:<{width}}  {us:8.2f} us")


if __name__ == "__main__":
    main()
