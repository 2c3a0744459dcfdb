"""The package's shape: data flows one way, every module is on the README's map, packages
are contiguous rooms, nothing grows past what one reader can hold, and the read side runs
where torch is not installed.

The README's "Where things are" table is the order: a module may import only modules listed
above it. Imports inside functions count, and so do ``if TYPE_CHECKING:`` imports: a type
that must be named from below is a sign that it lives in the wrong place.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "benchinit"
MAX_MODULE_LINES = 420  # "about 400"
MAX_FUNCTION_LINES = 80
DECLARATIVE = {"cli_options.parser"}  # long by nature: one argparse declaration per option
# The read side: what compare, history, index and report of stored folders import.
READ_SIDE = ("results", "analysis/stats", "analysis/effects", "figures", "report", "gate")


def module_map() -> list[str]:
    """Module names in README order: 'errors', 'analysis/stats', 'builtin', 'cli', ..."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([\w/]+?)(?:\.py|/)` \|", section, flags=re.M)
    assert names, "README has no module map"
    return names


def name_of(path: Path) -> str:
    """'analysis/stats' for benchinit/analysis/stats.py; every built-in plugin is 'builtin';
    a subpackage's ``__init__.py`` is 'analysis/__init__'."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    return "builtin" if rel.parts[0] == "builtin" else rel.as_posix()


def is_face(name: str) -> bool:
    """A subpackage's ``__init__.py``: a docstring that says what the room holds."""
    return name.endswith("/__init__")


def modules() -> dict[str, Path]:
    """'analysis/stats' -> path, package faces included."""
    return {name_of(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def mapped() -> dict[str, Path]:
    return {n: p for n, p in modules().items() if not is_face(n)}


def _lazy_names() -> dict[str, str]:
    """What ``from benchinit import NAME`` resolves to: the public API's lazy names."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_LAZY":
            lazy = ast.literal_eval(node.value)
            names.update({k: _resolve(v) for k, v in lazy.items()})
    return names


def _resolve(dotted: str) -> str:
    """'benchinit.gate.compare' -> 'gate/compare'; a package -> its face; built-ins -> 'builtin'."""
    parts = dotted.split(".")[1:]
    if not parts:
        return "__init__"
    if parts[0] == "builtin":
        return "builtin"
    if (PACKAGE.joinpath(*parts)).is_dir():
        return "/".join(parts) + "/__init__"
    return "/".join(parts)


def imports_of(path: Path) -> set[str]:
    """The benchinit modules ``path`` imports (by map name), TYPE_CHECKING ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lazy = _lazy_names()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names if a.name.startswith("benchinit.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "benchinit":
                for alias in node.names:
                    module = _resolve(f"benchinit.{alias.name}")
                    exists = module == "builtin" or (PACKAGE / f"{module}.py").exists()
                    found.add(module if exists else lazy.get(alias.name, "__init__"))
            elif node.module.startswith("benchinit."):
                for alias in node.names:  # `from benchinit.gate import compare`: a submodule
                    sub = _resolve(f"{node.module}.{alias.name}")
                    is_module = (PACKAGE / f"{sub}.py").exists()
                    found.add(sub if is_module else _resolve(node.module))
    return found


def test_every_module_is_on_the_readme_map_and_only_those():
    listed, present = module_map(), set(mapped())
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert set(listed) == present, (
        f"missing from README: {sorted(present - set(listed))}; "
        f"listed but absent: {sorted(set(listed) - present)}"
    )


def test_a_package_is_one_room_on_the_map():
    """A subpackage's modules stand together in the map: the map reads as floors."""
    seen: list[str] = []
    for name in module_map():
        room = name.split("/")[0] if "/" in name else name
        if seen and seen[-1] == room:
            continue
        assert room not in seen, f"{name}: the modules of {room}/ are not listed together"
        seen.append(room)


@pytest.mark.parametrize("name", sorted(n for n in modules() if is_face(n)))
def test_a_package_face_only_says_what_the_room_holds(name):
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{name}.py: say what the package holds"
    assert len(tree.body) == 1, f"{name}.py defines or imports something: put it in a module"


@pytest.mark.parametrize("name", sorted(mapped()))
def test_imports_flow_one_way(name):
    order = {m: i for i, m in enumerate(module_map())}
    upward = sorted(
        m for m in imports_of(modules()[name]) if m != name and order.get(m, -1) >= order[name]
    )
    assert not upward, f"{name} imports {upward}, listed below it in README's module map"


def test_the_import_check_sees_function_level_and_type_only_imports(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from benchinit.results.tables import Results\n"
        "def f():\n    from benchinit.report.page import render_report\n"
        "    from benchinit import run, fingerprint\n"
        "    from benchinit.gate import compare\n"
        "    import benchinit.builtin.initializers\n"
    )
    assert imports_of(path) == {
        "results/tables",
        "report/page",
        "pipeline",
        "fingerprint",
        "gate/compare",
        "builtin",
    }


@pytest.mark.parametrize("name", sorted(mapped()))
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
    public function (``run/`` beside ``benchinit.run``) would replace it."""
    import importlib

    import benchinit

    for name in mapped():
        if name not in ("__init__", "__main__", "builtin"):
            importlib.import_module("benchinit." + name.replace("/", "."))
    for name in benchinit.__all__:
        value = getattr(benchinit, name)
        assert not isinstance(value, type(benchinit)), f"benchinit.{name} is a module"


# The read side without torch: a child process in which `import torch` fails.
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")
sys.meta_path.insert(0, NoTorch())
import importlib
for name in sys.argv[2:]:
    importlib.import_module(name)
from benchinit.cli import main
code = main(sys.argv[1].split("|"))
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("benchinit"))
sys.exit(code)
"""


def _read_side_modules() -> list[str]:
    names = [n for n in mapped() if n.startswith(READ_SIDE)]
    return ["benchinit." + n.replace("/", ".") for n in names]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    from benchinit import load_study, run

    root = tmp_path_factory.mktemp("stored")
    shrunk = ["model.depth=2", "model.width=16", "data.samples=64", "data.features=16"]
    run(load_study("seed", shrunk, seeds=2), out=root / "seed", progress=False, report=False)
    return root


@pytest.mark.parametrize(
    "command",
    [
        "--version",
        "compare|{seed}|{seed}|--out|{root}/c.html",
        "history|{seed}|{seed}|--out|{root}/h.html",
        "index|{root}",
        "report|{seed}",
        "show|{seed}",
    ],
)
def test_the_read_side_runs_where_torch_is_not_installed(stored, command):
    """compare, history, index, report and show of stored folders import no torch (nor anything
    that does), so a CI job that only judges results needs no 5 GB torch."""
    argv = command.format(root=stored, seed=stored / "seed")
    modules_to_import = _read_side_modules() if command == "--version" else []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, argv, *modules_to_import],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    if command == "report|{seed}":
        assert (stored / "seed" / "index.html").exists()
