"""ProjectionExpression: parse a list of document paths and cut an item down to them.

Theory of operation: the result keeps the nesting of the item. Paths are merged into a
tree of the parts to keep; a list keeps only the projected elements, in their original
order (projecting `a.b[1]` of `{"a": {"M": {"b": {"L": [x, y, z]}}}}` gives
`{"a": {"M": {"b": {"L": [y]}}}}`). Paths that lead nowhere contribute nothing.
Overlapping paths (`a, a.b`) are a client error, checked once names are resolved.
"""

from __future__ import annotations

from typing import Any

from atoll.expressions import paths
from atoll.expressions.parser import Parser
from atoll.expressions.paths import Path

KIND = "ProjectionExpression"


class Projection:
    __slots__ = ("paths", "names_used", "values_used", "_plain")

    def __init__(self, parsed: tuple[tuple[str | int, ...], ...], names_used: frozenset[str]) -> None:
        self.paths = parsed
        self.names_used = names_used
        self.values_used: frozenset[str] = frozenset()
        # Fast path: only top-level literal names, already checked for duplicates.
        self._plain: tuple[str, ...] | None = None
        if all(len(p) == 1 and not str(p[0]).startswith("#") for p in parsed):
            self._plain = tuple(str(p[0]) for p in parsed)

    def resolved(self, names: dict[str, str]) -> list[Path]:
        result = [paths.resolve(p, names) for p in self.paths]
        paths.check_disjoint(KIND, result)
        return result


def parse(text: str) -> Projection:
    parser = Parser(text, KIND, frozenset())
    found = [parser.parse_path()]
    while parser.at_punct(","):
        parser.pos += 1
        found.append(parser.parse_path())
    parser.finish()
    projection = Projection(tuple(found), frozenset(parser.names_used))
    if projection._plain is not None:
        paths.check_disjoint(KIND, [(name,) for name in projection._plain])
    return projection


def project(item: dict[str, Any], projection: Projection, names: dict[str, str]) -> dict[str, Any]:
    if projection._plain is not None:
        return {name: item[name] for name in projection._plain if name in item}
    return project_paths(item, projection.resolved(names))


def project_paths(item: dict[str, Any] | None, wanted: list[Path]) -> dict[str, Any]:
    """The parts of `item` at `wanted` (already resolved, non-overlapping paths)."""
    if not item:
        return {}
    tree: dict[Any, Any] = {}
    for path in wanted:
        if paths.lookup(item, path) is None:
            continue
        node = tree
        for element in path[:-1]:
            node = node.setdefault(element, {})
        node[path[-1]] = True  # keep the whole value
    return _build_map(item, tree)


def _build_map(source: dict[str, Any], tree: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        value = source[key]
        out[key] = value if sub is True else _build(value, sub)
    return out


def _build(value: dict[str, Any], tree: dict[Any, Any]) -> dict[str, Any]:
    if "M" in value:
        return {"M": _build_map(value["M"], tree)}
    elements = value["L"]
    return {"L": [elements[i] if tree[i] is True else _build(elements[i], tree[i])
                  for i in sorted(tree)]}
