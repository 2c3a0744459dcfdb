"""The package's shape: data flows one way, every module is on the README's map, nothing
grows past what one reader can hold.

The README's "Where things are" table is the order: a module may import only modules listed
above it (imports inside functions count; ``if TYPE_CHECKING:`` blocks do not).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "benchinit"
MAX_MODULE_LINES = 420  # "about 400"
MAX_FUNCTION_LINES = 80
DECLARATIVE = {"cli._parser"}  # long by nature: one argparse declaration per option


def module_map() -> list[str]:
    """Module names in README order: 'cells', 'builtin', '__init__', ..."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([\w/]+?)(?:\.py|/)` \|", section, flags=re.M)
    assert names, "README has no module map"
    return names


def modules() -> dict[str, Path]:
    """'cells' -> path; the built-in plugins are one entry, 'builtin'."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        found["builtin" if rel.parts[0] == "builtin" else rel.stem] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _lazy_names() -> dict[str, str]:
    """What ``from benchinit import NAME`` resolves to (the package's own imports)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    names = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("benchinit.")
        ):
            for alias in node.names:
                names[alias.asname or alias.name] = node.module.split(".")[1]
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_LAZY":
            lazy = ast.literal_eval(node.value)
            names.update({k: v.split(".")[1] for k, v in lazy.items()})
    return names


def imports_of(path: Path) -> set[str]:
    """The benchinit modules ``path`` imports (by map name), outside TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lazy = _lazy_names()
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("benchinit."):
                    found.add(alias.name.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "benchinit" and len(parts) > 1:
                found.add(parts[1])
            elif node.module == "benchinit":
                for alias in node.names:
                    if (PACKAGE / f"{alias.name}.py").exists() or alias.name == "builtin":
                        found.add(alias.name)
                    elif alias.name in lazy:
                        found.add(lazy[alias.name])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_every_module_is_on_the_readme_map_and_only_those():
    listed, present = module_map(), set(modules())
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert set(listed) == present, (
        f"missing from README: {sorted(present - set(listed))}; "
        f"listed but absent: {sorted(set(listed) - present)}"
    )


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_flow_one_way(name):
    order = {m: i for i, m in enumerate(module_map())}
    upward = sorted(
        m for m in imports_of(modules()[name]) if m != name and order.get(m, -1) >= order[name]
    )
    assert not upward, f"{name} imports {upward}, listed below it in README's module map"


def test_the_import_check_sees_function_level_imports(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from benchinit.results.tables import Results\n"
        "def f():\n    from benchinit.report.page import render_report\n"
        "    from benchinit import run, figures\n"
    )
    assert imports_of(path) == {"report", "runner", "figures"}


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_and_functions_stay_small(name):
    path = modules()[name]
    paths = sorted((PACKAGE / "builtin").glob("*.py")) if name == "builtin" else [path]
    for path in paths:
        source = path.read_text(encoding="utf-8")
        assert source.count("\n") <= MAX_MODULE_LINES, f"{path.name} is over ~400 lines"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if f"{path.stem}.{node.name}" not in DECLARATIVE:
                    assert length <= MAX_FUNCTION_LINES, f"{path.stem}.{node.name}: {length} lines"


def test_public_names_are_never_shadowed_by_submodules():
    """Importing a submodule sets it as an attribute of the package: a module named like a
    public function (``compare.py`` beside ``benchinit.compare``) would replace it."""
    import importlib

    import benchinit

    for name in modules():
        if name not in ("__init__", "__main__", "builtin"):
            importlib.import_module(f"benchinit.{name}")
    for name in benchinit.__all__:
        value = getattr(benchinit, name)
        assert not isinstance(value, type(benchinit)), f"benchinit.{name} is a module"
