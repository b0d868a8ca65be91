"""What compiled modules must not do, checked from the source with `ast`.

No `await` inside a `finally` block of a module setup.py compiles. In a mypyc-compiled
coroutine suspended in a `finally` block, the exception another compiled coroutine
raises meanwhile (a task cancelled at shutdown) is re-raised when the block ends, as if
it were the block's own. That is what made nodes of the fully compiled build exit 1
with a pull task's CancelledError after "atoll: stopped cleanly": `Node.run`'s
`finally` awaited the replicator's stop while the pull tasks, compiled too, raised
CancelledError. (Reproduced with mypyc 1.x on Python 3.11, on asyncio's loop and
uvloop's: two compiled modules, one task cancelled while the other awaits in `finally`;
either module interpreted, and the same code is quiet.) An `except` block that awaits
and falls through is not affected; `async with` is listed too, because its exit is a
`finally` that awaits `__aexit__`, and is allowed only for asyncio's locks, whose
`__aexit__` never suspends.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "src" / "atoll"
NON_SUSPENDING_EXITS = ("_lock", "ddl_lock")  # asyncio.Lock: __aexit__ only releases


def compiled_modules() -> list[Path]:
    """The modules setup.py's REQUEST_PATH names (read, not imported: importing setup.py
    would run the build)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    entries = next(ast.literal_eval(node.value) for node in tree.body
                   if isinstance(node, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "REQUEST_PATH"
                           for t in node.targets))
    paths: set[Path] = set()
    for entry in entries:
        paths |= set((ROOT / entry).rglob("*.py")) if entry.endswith("/") else {ROOT / entry}
    return sorted(paths)


def suspensions_in_finally(source: str) -> Iterator[int]:
    """Lines of every `await`, `async for` or `async with` inside a `finally` block, and of
    every `async with` over anything but a lock named in NON_SUSPENDING_EXITS."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Try | ast.TryStar):
            for statement in node.finalbody:
                for inner in ast.walk(statement):
                    if isinstance(inner, ast.Await | ast.AsyncFor | ast.AsyncWith):
                        yield inner.lineno
        if isinstance(node, ast.AsyncWith) and not all(
                isinstance(item.context_expr, ast.Attribute)
                and item.context_expr.attr in NON_SUSPENDING_EXITS for item in node.items):
            yield node.lineno


def test_the_compiled_modules_are_found() -> None:
    modules = compiled_modules()
    assert len(modules) > 50 and all(path.exists() for path in modules)
    assert ROOT / "http" / "client.py" in modules


def test_no_compiled_module_suspends_in_a_finally_block() -> None:
    offenders = [f"{path.relative_to(REPO)}:{line}" for path in compiled_modules()
                 for line in suspensions_in_finally(path.read_text())]
    assert offenders == [], "an await in a finally block of a compiled module: " + \
        ", ".join(offenders)


def test_the_check_sees_a_finally_that_awaits() -> None:
    """The shutdown that printed the traceback, as it was when node.py was compiled."""
    source = '''
async def run(self):
    try:
        await self._stopping.wait()
    finally:
        await self.replicator.stop()
        print("atoll: stopped cleanly")

async def fine(self):
    try:
        await self._stopping.wait()
    except KeyError:
        await self.retry()
    async with self._lock:
        await self.exchange()

async def unknown_exit(self):
    async with self.session():
        pass
'''
    assert list(suspensions_in_finally(source)) == [6, 18]
    assert list(suspensions_in_finally((ROOT / "node" / "node.py").read_text()))
