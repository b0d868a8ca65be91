"""The architecture, checked: the import rules of DESIGN.md and STYLE.md, read from the
source with `ast` (nothing is imported, so a rule holds whether or not a module compiles).

Every import counts wherever it appears: at module level, inside a function, and under
`if TYPE_CHECKING:` (a cycle that only the type checker sees still ties the modules
together: neither can be understood, moved or tested alone). An import of `a.b.c` is an
edge to module `a.b.c`; `from a.b import x` is an edge to `a.b.x` when that is a module,
else to `a.b` (the package that defines or re-exports `x`). The implicit import of a
parent package's `__init__` is not an edge: it is how Python finds a submodule, not a
dependency the code chose.

Each test lists every offender, so one run shows all that is left to fix.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "atoll"

PURE_PACKAGES = ("atoll.model", "atoll.expressions", "atoll.replication", "atoll.clock",
                 "atoll.topology")
IMPURE_MODULES = ("asyncio", "sqlite3", "socket", "time", "random")
CLIENT_MAY_NOT_IMPORT = ("atoll.node", "atoll.api", "atoll.engine", "atoll.storage")
# The storage protocol's names (DESIGN.md decision 2): the engine programs against these
# and never against an implementation. protocol.py, where it exists, adds what it defines.
STORAGE_PROTOCOL_NAMES = frozenset({"Storage", "WriteTxn"})
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 70


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module, dotted
    target: str  # the imported module, dotted (resolved as the module docstring says)
    names: tuple[str, ...]  # for `from target import names`; () for `import target`
    line: int

    def where(self) -> str:
        return f"{self.importer}:{self.line}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


@cache
def _tree(module: str) -> ast.Module:
    path = _modules()[module]
    return ast.parse(path.read_text(), str(path))


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, with relative imports resolved."""
    if not node.level:
        return node.module or ""
    is_package = _modules()[module].name == "__init__.py"
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports_of(module: str) -> Iterator[Import]:
    modules = _modules()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            names = tuple(alias.name for alias in node.names)
            submodules = [n for n in names if f"{source}.{n}" in modules]
            for name in submodules:
                yield Import(module, f"{source}.{name}", (), node.lineno)
            rest = tuple(n for n in names if n not in submodules)
            if rest:
                yield Import(module, source, rest, node.lineno)


@cache
def _all_imports() -> tuple[Import, ...]:
    return tuple(i for module in _modules() for i in _imports_of(module))


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and modules
    that import themselves."""
    graph: dict[str, set[str]] = {m: set() for m in _modules()}
    for imp in _all_imports():
        if imp.target in graph:
            graph[imp.importer].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(start: str) -> None:  # iterative: no recursion limit on deep graphs
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    components.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(components)


def _cycle_path(component: list[str]) -> str:
    """One import loop through a component's first module, to show where to cut."""
    members = set(component)
    edges: dict[str, list[Import]] = {}
    for imp in _all_imports():
        if imp.importer in members and imp.target in members:
            edges.setdefault(imp.importer, []).append(imp)
    start = component[0]
    paths: list[tuple[str, list[Import]]] = [(start, [])]
    seen = {start}
    while paths:  # breadth first: the shortest loop back to `start`
        node, path = paths.pop(0)
        for imp in edges.get(node, ()):
            if imp.target == start:
                return " -> ".join(f"{i.where()}" for i in [*path, imp]) + f" -> {start}"
            if imp.target not in seen:
                seen.add(imp.target)
                paths.append((imp.target, [*path, imp]))
    return start


def test_no_import_cycles() -> None:
    offenders = [f"{len(c)} modules: {', '.join(c)}\n    e.g. {_cycle_path(c)}"
                 for c in _cycles()]
    assert not offenders, "import cycles:\n  " + "\n  ".join(offenders)


def test_pure_packages_do_no_io_and_take_time_and_randomness_as_arguments() -> None:
    offenders = [f"{imp.where()} imports {imp.target}" for imp in _all_imports()
                 if any(_within(imp.importer, p) for p in PURE_PACKAGES)
                 and any(_within(imp.target, m) for m in IMPURE_MODULES)]
    assert not offenders, "pure packages importing I/O, time or randomness:\n  " + \
        "\n  ".join(offenders)


def _storage_protocol_names() -> frozenset[str]:
    protocol = ROOT / "storage" / "protocol.py"
    if not protocol.exists():
        return STORAGE_PROTOCOL_NAMES
    defined = {node.name for node in ast.parse(protocol.read_text()).body
               if isinstance(node, ast.ClassDef)}
    defined |= {target.id for node in ast.parse(protocol.read_text()).body
                if isinstance(node, ast.Assign | ast.AnnAssign)
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Name)}
    return STORAGE_PROTOCOL_NAMES | defined


def test_the_engine_uses_the_storage_protocol_not_an_implementation() -> None:
    allowed = _storage_protocol_names()
    offenders = []
    for imp in _all_imports():
        if not _within(imp.importer, "atoll.engine") or not _within(imp.target, "atoll.storage"):
            continue
        if imp.target == "atoll.storage.protocol":
            continue
        if imp.target == "atoll.storage" and imp.names and set(imp.names) <= allowed:
            continue
        what = f"{imp.target} ({', '.join(imp.names)})" if imp.names else imp.target
        offenders.append(f"{imp.where()} imports {what}")
    assert not offenders, "the engine importing a storage implementation:\n  " + \
        "\n  ".join(offenders)


def test_the_client_library_stands_alone() -> None:
    offenders = [f"{imp.where()} imports {imp.target}" for imp in _all_imports()
                 if _within(imp.importer, "atoll.client")
                 and any(_within(imp.target, p) for p in CLIENT_MAY_NOT_IMPORT)]
    assert not offenders, "client/ importing the server side:\n  " + "\n  ".join(offenders)


def test_modules_are_at_most_600_lines() -> None:
    offenders = [f"{path.relative_to(SRC)}: {lines} lines"
                 for path in _modules().values()
                 if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n  " + "\n  ".join(offenders)


def test_functions_are_at_most_70_lines() -> None:
    offenders = []
    for module, path in _modules().items():
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} "
                                     f"{node.name}: {lines} lines")
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n  " + \
        "\n  ".join(offenders)


# --- the checker itself: each rule must be able to fail ---------------------------------

def test_the_import_walk_sees_function_level_and_type_checking_imports() -> None:
    edges = {(i.importer, i.target) for i in _all_imports()}
    # atoll.cli.main imports its subcommands inside functions? Use a known one instead:
    # every module whose source has an indented import contributes that edge.
    indented = 0
    for module in _modules():
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.ImportFrom) and node.col_offset > 0 and node.module \
                    and node.module.startswith("atoll."):
                indented += 1
                source = _absolute(module, node)
                assert any(e[0] == module and _within(e[1], source) for e in edges), \
                    (module, source)
    assert indented > 0
