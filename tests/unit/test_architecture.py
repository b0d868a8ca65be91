"""The architecture, checked: the import rules of DESIGN.md and STYLE.md and the size
limits, read from the source with `ast` (nothing is imported, so a rule holds whether or
not a module is compiled).

Every import counts wherever it appears: at module level, inside a function, and under
`if TYPE_CHECKING:` (a cycle that only the type checker sees still ties the modules
together: neither can be read, moved or tested alone). An import of `a.b.c` is an edge
to module `a.b.c`; `from a.b import x` is an edge to `a.b.x` when that is a module, else
to `a.b` (the package that defines or re-exports `x`). The implicit import of a parent
package's `__init__` is not an edge: it is how Python finds a submodule, not a
dependency the code chose.

Each rule lists every offender, so one run shows all that is left to fix. The last
tests run the same rules over small packages written for the purpose, so the checker
itself is seen to fail.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

PURE_PACKAGES = ("atoll.model", "atoll.expressions", "atoll.replication", "atoll.clock",
                 "atoll.topology", "atoll.partiql", "atoll.streams")
IMPURE_MODULES = ("asyncio", "sqlite3", "socket", "time", "random")
CLIENT_MAY_NOT_IMPORT = ("atoll.node", "atoll.api", "atoll.engine", "atoll.storage")
# The storage protocol's names (DESIGN.md decision 2): the engine programs against these,
# never against an implementation. storage/protocol.py, where it exists, adds its names.
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


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class SourceTree:
    """The modules of one package under a source directory, and their imports."""

    def __init__(self, src: Path, package: str) -> None:
        self.src = src
        self.modules: dict[str, Path] = {
            self._name(path): path for path in sorted((src / package).rglob("*.py"))}
        self.trees = {m: ast.parse(p.read_text(), str(p)) for m, p in self.modules.items()}

    def _name(self, path: Path) -> str:
        parts = list(path.relative_to(self.src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def _absolute(self, module: str, node: ast.ImportFrom) -> str:
        """The module a `from ... import` names, relative imports resolved."""
        if not node.level:
            return node.module or ""
        base = module.split(".")
        if self.modules[module].name != "__init__.py":
            base.pop()  # relative to the module's package
        base = base[:len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def _imports_of(self, module: str) -> Iterator[Import]:
        for node in ast.walk(self.trees[module]):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, alias.name, (), node.lineno)
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(module, node)
                names = tuple(alias.name for alias in node.names)
                submodules = [n for n in names if f"{source}.{n}" in self.modules]
                for name in submodules:
                    yield Import(module, f"{source}.{name}", (), node.lineno)
                rest = tuple(n for n in names if n not in submodules)
                if rest:
                    yield Import(module, source, rest, node.lineno)

    @cached_property
    def imports(self) -> tuple[Import, ...]:
        return tuple(i for module in self.modules for i in self._imports_of(module))

    # --- cycles --------------------------------------------------------------------------
    def cycles(self) -> list[list[str]]:
        """Strongly connected components of more than one module (and self-imports)."""
        graph: dict[str, set[str]] = {m: set() for m in self.modules}
        for imp in self.imports:
            if imp.target in graph:
                graph[imp.importer].add(imp.target)
        reaches = {m: self._reachable(graph, m) for m in graph}
        components: list[list[str]] = []
        placed: set[str] = set()
        for module in sorted(graph):
            if module in placed or module not in reaches[module]:
                continue
            component = sorted(m for m in reaches[module] if module in reaches[m])
            placed.update(component)
            components.append(component)
        return components

    @staticmethod
    def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
        return seen

    def loop_through(self, component: list[str]) -> str:
        """The shortest import loop through a component's first module: where to cut."""
        members = set(component)
        start = component[0]
        paths: list[tuple[str, list[Import]]] = [(start, [])]
        seen = {start}
        while paths:
            node, path = paths.pop(0)
            for imp in self.imports:
                if imp.importer != node or imp.target not in members:
                    continue
                if imp.target == start:
                    return " -> ".join(i.where() for i in [*path, imp]) + f" -> {start}"
                if imp.target not in seen:
                    seen.add(imp.target)
                    paths.append((imp.target, [*path, imp]))
        return start

    # --- the rules -----------------------------------------------------------------------
    def cycle_offenders(self) -> list[str]:
        return [f"{len(c)} modules: {', '.join(c)}\n    e.g. {self.loop_through(c)}"
                for c in self.cycles()]

    def impure_offenders(self, pure: tuple[str, ...]) -> list[str]:
        return [f"{imp.where()} imports {imp.target}" for imp in self.imports
                if any(within(imp.importer, p) for p in pure)
                and any(within(imp.target, m) for m in IMPURE_MODULES)]

    def storage_offenders(self, engine: str, storage: str,
                          allowed: frozenset[str]) -> list[str]:
        offenders = []
        for imp in self.imports:
            if not within(imp.importer, engine) or not within(imp.target, storage):
                continue
            if imp.target in (f"{storage}.protocol", f"{storage}.treeprotocol"):
                continue  # the protocols (treeprotocol: those of a storage keeping trees)
            if imp.target == storage and imp.names and set(imp.names) <= allowed:
                continue
            what = f"{imp.target} ({', '.join(imp.names)})" if imp.names else imp.target
            offenders.append(f"{imp.where()} imports {what}")
        return offenders

    def forbidden_offenders(self, importer: str, forbidden: tuple[str, ...]) -> list[str]:
        return [f"{imp.where()} imports {imp.target}" for imp in self.imports
                if within(imp.importer, importer)
                and any(within(imp.target, p) for p in forbidden)]

    def third_party(self, own: str) -> dict[str, list[str]]:
        """Top-level modules imported from outside the standard library and `own`, with
        where (absolute imports only: a relative one stays inside the package)."""
        found: dict[str, list[str]] = {}
        for imp in self.imports:
            top = imp.target.split(".")[0]
            if top and top != own and top not in sys.stdlib_module_names:
                found.setdefault(top, []).append(imp.where())
        return found

    def long_modules(self, limit: int) -> list[str]:
        return [f"{path.relative_to(self.src)}: {lines} lines"
                for path in self.modules.values()
                if (lines := len(path.read_text().splitlines())) > limit]

    def long_functions(self, limit: int) -> list[str]:
        offenders = []
        for module, tree in self.trees.items():
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > limit:
                        offenders.append(f"{self.modules[module].relative_to(self.src)}:"
                                         f"{node.lineno} {node.name}: {lines} lines")
        return offenders


def storage_protocol_names(src: Path) -> frozenset[str]:
    protocol = src / "atoll" / "storage" / "protocol.py"
    if not protocol.exists():
        return STORAGE_PROTOCOL_NAMES
    defined: set[str] = set()
    for node in ast.parse(protocol.read_text()).body:
        if isinstance(node, ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(t.id for t in targets if isinstance(t, ast.Name))
    return STORAGE_PROTOCOL_NAMES | defined


ATOLL = SourceTree(SRC, "atoll")


def _report(title: str, offenders: list[str]) -> str:
    return f"{title}:\n  " + "\n  ".join(offenders)


# --- the rules, over src/atoll ----------------------------------------------------------

def test_no_import_cycles() -> None:
    offenders = ATOLL.cycle_offenders()
    assert not offenders, _report("import cycles", offenders)


def test_pure_packages_do_no_io_and_take_time_and_randomness_as_arguments() -> None:
    offenders = ATOLL.impure_offenders(PURE_PACKAGES)
    assert not offenders, _report("pure packages importing I/O, time or randomness", offenders)


def test_the_engine_uses_the_storage_protocol_not_an_implementation() -> None:
    offenders = ATOLL.storage_offenders("atoll.engine", "atoll.storage",
                                        storage_protocol_names(SRC))
    assert not offenders, _report("the engine importing a storage implementation", offenders)


def test_the_client_library_stands_alone() -> None:
    offenders = ATOLL.forbidden_offenders("atoll.client", CLIENT_MAY_NOT_IMPORT)
    assert not offenders, _report("client/ importing the server side", offenders)


def _declared_dependencies() -> set[str]:
    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]
    return {_normalized(re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0])
            for d in project["dependencies"]}


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_every_third_party_import_is_a_declared_dependency() -> None:
    declared = _declared_dependencies()
    distributions = importlib.metadata.packages_distributions()
    offenders = []
    for module, where in sorted(ATOLL.third_party("atoll").items()):
        names = {_normalized(d) for d in distributions.get(module, [module])}
        if not names & declared:
            offenders.append(f"{module} (from {', '.join(sorted(names))}), imported at "
                             f"{', '.join(where[:3])}")
    assert not offenders, _report("imports pyproject.toml does not declare", offenders)


def test_modules_are_at_most_600_lines() -> None:
    offenders = ATOLL.long_modules(MAX_MODULE_LINES)
    assert not offenders, _report(f"modules over {MAX_MODULE_LINES} lines", offenders)


def test_functions_are_at_most_70_lines() -> None:
    offenders = ATOLL.long_functions(MAX_FUNCTION_LINES)
    assert not offenders, _report(f"functions over {MAX_FUNCTION_LINES} lines", offenders)


# --- the checker itself, over packages written to break each rule -----------------------

def _package(tmp_path: Path, files: dict[str, str]) -> SourceTree:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return SourceTree(tmp_path, "pkg")


def test_a_cycle_only_the_type_checker_sees_is_a_cycle(tmp_path: Path) -> None:
    tree = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": ("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from pkg.c import Other\nthing = 1\n"),
        "pkg/c.py": "def f():\n    from . import a\n    return a\n",
        "pkg/d.py": "import pkg.a\n",  # reaches the cycle without being part of it
    })
    assert tree.cycles() == [["pkg.a", "pkg.b", "pkg.c"]]
    assert tree.loop_through(["pkg.a", "pkg.b", "pkg.c"]) == \
        "pkg.a:1 -> pkg.b:3 -> pkg.c:2 -> pkg.a"


def test_each_import_rule_finds_every_offender(tmp_path: Path) -> None:
    tree = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/pure/__init__.py": "import time\n",
        "pkg/pure/rules.py": "def f():\n    from random import random\n    return random()\n",
        "pkg/storage/__init__.py": "from pkg.storage.impl import Impl, WriteTxn\n",
        "pkg/storage/impl.py": "class Impl: ...\nclass WriteTxn: ...\n",
        "pkg/storage/protocol.py": "class Storage: ...\n",
        "pkg/engine/__init__.py": ("from pkg.storage import WriteTxn\n"
                                   "from pkg.storage.protocol import Storage\n"
                                   "from ..storage import Impl\n"),
        "pkg/engine/core.py": "import pkg.storage.impl\n",
        "pkg/client/__init__.py": "def f():\n    import pkg.engine.core\n",
    })
    assert tree.impure_offenders(("pkg.pure",)) == [
        "pkg.pure:1 imports time", "pkg.pure.rules:2 imports random"]
    assert sorted(tree.storage_offenders("pkg.engine", "pkg.storage", STORAGE_PROTOCOL_NAMES)) == [
        "pkg.engine.core:1 imports pkg.storage.impl", "pkg.engine:3 imports pkg.storage (Impl)"]
    assert tree.forbidden_offenders("pkg.client", ("pkg.engine",)) == [
        "pkg.client:2 imports pkg.engine.core"]


def test_sizes_are_counted_in_lines(tmp_path: Path) -> None:
    body = "".join(f"    x{n} = {n}\n" for n in range(70))
    tree = _package(tmp_path, {"pkg/__init__.py": "",
                               "pkg/long.py": f"def f():\n{body}\n\ndef g():\n    pass\n"})
    assert tree.long_functions(70) == ["pkg/long.py:1 f: 71 lines"]
    assert tree.long_modules(74) == ["pkg/long.py: 75 lines"]
    assert tree.long_modules(75) == []
