"""Document paths: resolution of `#names`, lookup in an item, overlap checks.

Theory of operation: the parser keeps a path as a tuple of elements exactly as written:
a literal attribute name (`"a"`), an expression attribute name (`"#n"` — a literal name
can never start with `#`, so the two cannot be confused) or a list index (`3`). At
evaluation time `resolve` swaps each `#n` for its definition, giving a `Path` of plain
names and indexes; `lookup` walks an item along it, returning None as soon as the path
leaves the item (missing attribute, index past the end, wrong container type).
"""

from __future__ import annotations

from typing import Any

from atoll.errors import ValidationError

Path = tuple[str | int, ...]

MAX_PATH_DEPTH = 32


def resolve(path: tuple[str | int, ...], names: dict[str, str]) -> Path:
    """Replace `#n` elements by their definitions."""
    for element in path:
        if type(element) is str and element[0] == "#":
            break
    else:
        return path
    out: list[str | int] = []
    for element in path:
        if type(element) is str and element[0] == "#":
            try:
                out.append(names[element])
            except (KeyError, TypeError):
                raise ValidationError(
                    "An expression attribute name used in the document path is not defined; "
                    f"attribute name: {element}") from None
        else:
            out.append(element)
    return tuple(out)


def lookup(item: dict[str, Any] | None, path: Path) -> Any:
    """The value at `path` in `item`, or None when there is none."""
    if not item:
        return None
    head = path[0]
    current = item.get(head) if type(head) is str else None
    for element in path[1:]:
        if type(current) is not dict:
            return None
        if type(element) is int:
            inner = current.get("L")
            if type(inner) is not list or element >= len(inner):
                return None
            current = inner[element]
        else:
            inner = current.get("M")
            if type(inner) is not dict:
                return None
            current = inner.get(element)
    return current


def show(path: Path) -> str:
    """DynamoDB's spelling of a path in messages: `[a, b, [3]]`."""
    return "[" + ", ".join(f"[{e}]" if type(e) is int else str(e) for e in path) + "]"


def check_disjoint(kind: str, paths: list[Path]) -> None:
    """No path may be a prefix of another (overlap) or index where another names (conflict).

    Sorting first makes the common case O(n log n): if p is a prefix of q, every path
    sorted between them also starts with p, so some neighbouring pair shows the problem.
    Only then is the quadratic scan run, to name the pair the way DynamoDB does
    (earlier path first).
    """
    if len(paths) < 2:
        return
    ordered = sorted(paths, key=_sort_key)
    if all(_disjoint(a, b) for a, b in zip(ordered, ordered[1:])):
        return
    for i, one in enumerate(paths):
        for two in paths[:i]:
            _check_pair(kind, two, one)


def _sort_key(path: Path) -> tuple[tuple[int, str | int], ...]:
    return tuple((0, e) if type(e) is int else (1, e) for e in path)


def _disjoint(one: Path, two: Path) -> bool:
    for x, y in zip(one, two):
        if (type(x) is int) != (type(y) is int):
            return False
        if x != y:
            return True
    return False


def _check_pair(kind: str, one: Path, two: Path) -> None:
    for x, y in zip(one, two):
        if (type(x) is int) != (type(y) is int):
            raise ValidationError(
                f"Invalid {kind}: Two document paths conflict with each other; must remove or "
                f"rewrite one of these paths; path one: {show(one)}, path two: {show(two)}")
        if x != y:
            return
    raise ValidationError(
        f"Invalid {kind}: Two document paths overlap with each other; must remove or rewrite "
        f"one of these paths; path one: {show(one)}, path two: {show(two)}")
