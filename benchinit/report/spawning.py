"""Whether worker processes may be spawned from this process without a main guard.

A spawned worker imports the program's main module again before it runs anything (that is
how it finds functions defined there). A script whose work is at its top level, without an
``if __name__ == "__main__":`` guard, then runs that work again in every worker, and the
worker's own attempt to start processes ends in ``RuntimeError`` and ``BrokenProcessPool``.
The report draws its figures in spawned workers only when that cannot happen: the main
module is guarded (the ``benchinit`` command, ``python -m benchinit``, pytest, a guarded
script) or has no file to run again (an interactive session, a notebook, ``python -c``);
otherwise it draws in its own process, slower and correct. Forking would avoid the import,
but a process that has started torch's thread pool can hang in a forked child
(README, "All cores by default").
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either way round)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1


@functools.cache
def guarded(path: str) -> bool:
    """Whether the Python file at ``path`` has a top-level main guard (False when it
    cannot be read or parsed: then nothing is known about it)."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return False
    return any(_is_main_guard(node) for node in tree.body)


def spawn_safe() -> bool:
    """Whether a spawned worker would import no unguarded main module again."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:  # interactive, a notebook, python -c
        return True
    return guarded(str(path))
