"""Code fingerprints: a short hash of the Python source that computes a cell.

A stored cell is reused only when the code that computed it is the code that would run now
(benchinit.results.store keeps the rule, benchinit.engine.execute.cell_code combines the
parts). The parts:

- :func:`engine_code`: the compute path, :data:`ENGINE_MODULES`: the modules that turn a
  cell into records. Written down here, in one place; ``tests/test_fingerprint.py`` checks
  that every benchinit module they import is either listed or named in
  :data:`NOT_COMPUTE` with the reason it cannot change a number.
- :func:`module_code`: one module (a built-in plugin, an in-memory plugin's module, a plugin
  file).
- :func:`package_code`: a distribution plugin's top-level package, installed or editable:
  every ``.py`` file under it, by sorted relative path and content; a distribution of one
  module hashes that file.

What counts is the syntax tree with docstrings stripped, serialised without line numbers and
without empty fields: comments, docstrings, blank lines and formatting do not change a
fingerprint, and neither does a Python upgrade that only adds AST fields. Any edit to code
does, imports included: a file moved to another package keeps its fingerprint unless its
imports (or anything else in it) change. The engine's fingerprint hashes the sorted digests
of its files, not their names, so renaming or moving a module alone changes nothing. A file
that does not parse is hashed byte for byte.

The cost (``tests/benchmarks/bench_fingerprint.py``): the engine and the built-ins (about
3,200 and 740 lines) take 80-220 ms on our shared 2-core machine, 2-5% of ``import torch``
measured alongside, once per process that runs cells; hashing bytes would take 0.3 ms, but
would count every docstring edit as new code.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

# The modules between a resolved cell and its records (imports of benchinit modules that are
# not listed here must be in NOT_COMPUTE). The built-in plugins are not here: each is a
# plugin with its own fingerprint, like a third-party one.
ENGINE_MODULES = (
    "benchinit.study.cells",  # the grouping rule: which cells share a stack
    "benchinit.plugins.descriptors",  # Bound: how a plugin is called with its parameters
    "benchinit.study.schedules",  # learning-rate schedules
    "benchinit.analysis.meanfield",  # activation gains, the theory columns
    "benchinit.study.parametrization",  # the abc table: multipliers, init and lr scales
    "benchinit.engine.models",  # stacked MLPs
    "benchinit.engine.parametrize",  # the table applied: initial scales, lr groups
    "benchinit.engine.coordinates",  # the coordinate check during training
    "benchinit.plugins.model_kind",  # ModelShape and the declared Layers a model builds
    "benchinit.engine.convnets",  # stacked CNNs (the built-in cnn model's computation)
    "benchinit.engine.resnets",  # stacked ResNets (the built-in resnet model's)
    "benchinit.engine.model_plugin",  # a cell's model plugin, its shape and size
    "benchinit.engine.probes",  # per-layer statistics and histograms
    "benchinit.engine.jacobian",  # Jacobian spectra
    "benchinit.results.schema",  # what a recorded row holds
    "benchinit.engine.recorder",  # how rows are collected into the tables
    "benchinit.study.validation",  # the validation split
    "benchinit.engine.splits",  # the split applied to a dataset's tensors
    "benchinit.engine.stack",  # data loading, seeds, building a stack
    "benchinit.engine.evaluation",  # losses, evaluation, probes during training
    "benchinit.engine.atinit",  # signal studies
    "benchinit.engine.train",  # training studies
    "benchinit.engine.execute",  # a batch of cells -> records
)
# Imported by the engine, but what they decide is in the cell's id or cannot change a value.
NOT_COMPUTE = {
    "benchinit._version": "benchinit's version: in every built-in's version, so in the id",
    "benchinit.errors": "error texts of failed cells, which a rerun retries anyway",
    "benchinit.fingerprint": "this module",
    "benchinit.lazy": "imports a module on first use: the module's code is what computes",
    "benchinit.study.grid": "resolves configurations: what it decides is in the id",
    "benchinit.plugins.guard": "refuses os._exit, stops a batch past its time limit: failed cells",
    "benchinit.plugins.hookspecs": "hook declarations",
    "benchinit.metrics": "metric names and directions, for the tables' columns",
    "benchinit.plugins.registry": "finds plugins by name: each plugin has its own fingerprint",
    "benchinit.study.settings": "checks and defaults of settings, which are in the id",
    "benchinit.plugins.specs": "parses and checks parameters, which are in the id",
}
DIGITS = 16  # hex digits kept: what meta.json and the runs table show


_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")  # where statements nest


def _strip_docstrings(tree: ast.Module) -> None:
    """Drop the docstring of the module and of every class and function (statements nest
    only in statement bodies, so only those are walked)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.copy_location(ast.Pass(), first)]
        for field in _BODIES:
            body = getattr(node, field, None)
            if isinstance(body, list):
                stack.extend(item for item in body if isinstance(item, ast.AST))


def _serialise(node: object, out: list[str]) -> None:
    """Like ``ast.dump`` without line numbers, and without None or empty fields (Python
    versions differ in which empty fields a node has)."""
    if isinstance(node, ast.AST):
        out.append(type(node).__name__)
        out.append("(")
        for name in node._fields:
            value = getattr(node, name, None)
            if value is None or (isinstance(value, list) and not value):
                continue
            out.append(name)
            out.append("=")
            _serialise(value, out)
            out.append(",")
        out.append(")")
    elif isinstance(node, list):
        out.append("[")
        for item in node:
            _serialise(item, out)
            out.append(",")
        out.append("]")
    else:
        out.append(repr(node))


def source_digest(source: bytes) -> str:
    """The digest of one file's code: its syntax tree without docstrings (see the module
    docstring); its bytes when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return hashlib.sha256(b"bytes:" + source).hexdigest()
    _strip_docstrings(tree)
    out: list[str] = []
    _serialise(tree, out)
    return hashlib.sha256("".join(out).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    try:
        return source_digest(path.read_bytes())
    except OSError:
        return ""


def _combine(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:DIGITS]


def file_code(path: str | Path) -> str:
    """The fingerprint of one source file ("" when it cannot be read)."""
    digest = _file_digest(Path(path))
    return _combine([digest]) if digest else ""


def _module_file(name: str) -> str | None:
    """Where module ``name``'s code is: the loaded module's file, else where it would load
    from."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return getattr(loaded, "__file__", None)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None


def module_code(module: ModuleType | str) -> str:
    """The fingerprint of one module's file ("" for a module without a Python file)."""
    if isinstance(module, ModuleType):
        origin = getattr(module, "__file__", None)
    else:
        origin = _module_file(module)
    return file_code(origin) if origin and origin.endswith(".py") else ""


def object_code(plugin: object) -> str:
    """The fingerprint of the module that defines an in-memory plugin (a module object,
    or any object whose module has a file); "" when it has none."""
    module = plugin if isinstance(plugin, ModuleType) else inspect.getmodule(plugin)
    return module_code(module) if module is not None else ""


def package_code(module_name: str) -> str:
    """The fingerprint of the top-level package that holds ``module_name`` (every ``.py``
    file under it, by relative path and content), or of the top-level module itself."""
    top = module_name.partition(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return ""
    if spec is None:
        return ""
    if spec.submodule_search_locations:
        parts = []
        for root in map(Path, spec.submodule_search_locations):
            for path in sorted(root.rglob("*.py")):
                relative = path.relative_to(root).as_posix()
                parts.append(f"{relative}:{_file_digest(path)}")
        return _combine(sorted(parts))
    return file_code(spec.origin) if spec.origin and spec.origin.endswith(".py") else ""


@functools.cache
def engine_code() -> str:
    """The fingerprint of :data:`ENGINE_MODULES`, once per process: a process runs the
    engine it imported when it started."""
    return engine_code_of(ENGINE_MODULES)


def engine_code_of(modules: Iterable[str]) -> str:
    """The fingerprint of ``modules`` together: their digests sorted, names left out."""
    digests = []
    for name in modules:
        origin = _module_file(name)
        digests.append(_file_digest(Path(origin)) if origin else f"missing:{name}")
    return _combine(sorted(digests))
