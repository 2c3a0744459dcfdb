"""No stale reuse: a stored cell is reused only while the code that computes it is unchanged
(plugins' and the compute path's fingerprints), and cell ids never depend on code."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from synthetic import runs_frame, write_runs

import benchinit.builtin.initializers as builtin_initializers
import benchinit.engine.stack
from benchinit import compare, fingerprint, history, load_results, load_study, run
from benchinit.engine.execute import cell_code, plan, run_batch
from benchinit.gate.compare_render import text_summary
from benchinit.gate.differences import environment_differences
from benchinit.plugins import registry
from benchinit.results import freshness
from benchinit.results.schema import COLUMNS, conform
from benchinit.results.store import Store
from benchinit.study.cells import cell_id

PACKAGE = "fp_scaled"
INIT = """
    from benchinit import Initializer, hookimpl

    from fp_scaled.draw import scaled


    @hookimpl
    def benchinit_initializers():
        return [Initializer("scaled", scaled)]
"""
DRAW = """
    import torch

    SCALE = {scale}


    def scaled(weight, generator, activation):
        "{doc}"
        with torch.no_grad():  # {comment}
            weight.normal_(0.0, SCALE / weight.shape[1] ** 0.5, generator=generator)
"""
STUDY = """
    [study]
    name = "fp"
    kind = "signal"
    seeds = 2
    [data]
    name = "gaussian"
    samples = 40
    features = 6
    [model]
    depth = 1
    width = 6
    [grid]
    initializer = [{initializers}]
    activation = ["tanh"]
"""


def write_draw(site: Path, scale: float = 1.0, doc: str = "N(0, SCALE^2 / fan_in).") -> None:
    text = textwrap.dedent(DRAW.format(scale=scale, doc=doc, comment="no autograd"))
    (site / PACKAGE / "draw.py").write_text(text, encoding="utf-8")


@pytest.fixture
def editable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A distribution installed in place (like ``pip install -e``): a package of two
    modules in a source folder on sys.path, with an entry point in group ``benchinit``.
    Calling it forgets the imported modules, as a new process would."""
    site = tmp_path / "site"
    (site / PACKAGE).mkdir(parents=True)
    (site / PACKAGE / "__init__.py").write_text(textwrap.dedent(INIT), encoding="utf-8")
    write_draw(site)
    info = site / f"{PACKAGE}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[benchinit]\n{PACKAGE} = {PACKAGE}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD")

    def forget() -> Path:
        for name in [m for m in sys.modules if m.partition(".")[0] == PACKAGE]:
            del sys.modules[name]
        importlib.invalidate_caches()
        return site

    yield forget
    forget()


def tiny(write_study, initializers: str = '"scaled", "xavier_normal"') -> Path:
    return write_study(STUDY.format(initializers=initializers))


def go(study: Path, out: Path, **options):
    return run(load_study(study), out, report=False, progress=False, **options)


def preact_std(out: Path) -> pd.Series:
    """Layer 1's pre-activation std at initialization, by cell."""
    layers = load_results(out).layers
    chosen = layers[(layers["metric"] == "preact_std") & (layers["phase"] == "init")]
    return chosen.set_index("cell")["value"]


# --- the fingerprint of source ------------------------------------------------------------


def test_only_code_changes_a_fingerprint():
    base = fingerprint.source_digest(b'"""Module."""\nX = 1\n\n\ndef f(x):\n    return x + X\n')
    same = [
        b'"""Another docstring."""\n# a comment\nX = 1\n\ndef f(x):\n    "doc"\n    return x+X\n',
        b"X = (1)\n\n\ndef f(x):  # why\n    return (x\n            + X)\n",
    ]
    changed = [
        b"X = 2\n\n\ndef f(x):\n    return x + X\n",
        b"X = 1\n\n\ndef f(x):\n    return X + x\n",
        b"import math\nX = 1\n\n\ndef f(x):\n    return x + X\n",
    ]
    assert all(fingerprint.source_digest(s) == base for s in same)
    assert len({base, *map(fingerprint.source_digest, changed)}) == 1 + len(changed)
    # a docstring-only body keeps a body; a file that does not parse is hashed as bytes
    assert fingerprint.source_digest(b'def f():\n    "doc"\n') != base
    assert fingerprint.source_digest(b"def (:") != fingerprint.source_digest(b"def  (:")


def test_a_distribution_is_fingerprinted_by_its_whole_package(editable):
    site = editable()
    before = fingerprint.package_code(PACKAGE)
    assert fingerprint.package_code(f"{PACKAGE}.draw") == before, "any module: its package"
    write_draw(site, doc="Scaled normal: a new docstring only.")
    assert fingerprint.package_code(PACKAGE) == before
    write_draw(site, scale=25.0)
    assert fingerprint.package_code(PACKAGE) != before, "a module the entry point imports"
    (site / PACKAGE / "extra.py").write_text("Y = 1\n")
    assert len({before, fingerprint.package_code(PACKAGE)}) == 2


def _runtime_imports(module: str) -> set[str]:
    """benchinit modules ``module`` imports at run time (not under TYPE_CHECKING)."""
    path = fingerprint._module_file(module)
    assert path, module
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("benchinit"):
            names = [f"{node.module}.{a.name}" for a in node.names]  # a submodule, or a name
            found |= {n for n in names if n in sys.modules} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("benchinit")}
    return found


def test_the_engine_list_covers_what_the_engine_imports():
    """A module the compute path starts to import must be listed, or said not to compute."""
    listed = set(fingerprint.ENGINE_MODULES) | set(fingerprint.NOT_COMPUTE)
    for module in listed:
        importlib.import_module(module)
    for module in fingerprint.ENGINE_MODULES:
        unlisted = _runtime_imports(module) - listed
        assert not unlisted, f"{module} imports {sorted(unlisted)}: add to ENGINE_MODULES"


# --- reruns -------------------------------------------------------------------------------


def test_an_edited_editable_plugin_is_recomputed_at_the_same_version(
    editable, write_study, tmp_path
):
    editable()
    study = tiny(write_study)
    out = tmp_path / "out"
    ids = [c.id for c in load_study(study).cells()]
    assert all(c.id == cell_id(c.config) for c in load_study(study).cells())
    first = go(study, out)
    assert (first.computed, first.reused, first.failed) == (4, 0, 0)
    assert set(first.results.runs["cell"]) == set(ids)
    base = shutil.copytree(out, tmp_path / "base")
    before = preact_std(out)

    again = go(study, out)
    assert (again.computed, again.reused, again.recomputed) == (0, 4, {})

    site = editable()
    write_draw(site, scale=25.0)  # same version, 25x larger weights
    assert [c.id for c in load_study(study).cells()] == ids, "ids never carry code"
    edited = go(study, out)
    assert (edited.computed, edited.reused) == (2, 2)
    assert edited.recomputed == {"their plugin code changed (fp_scaled)": 2}
    assert "2 recomputed: their plugin code changed (fp_scaled)" in edited.summary()
    runs = load_results(out).runs
    assert len(runs) == 4 and runs["cell"].is_unique, "the new record supersedes the old"
    after = preact_std(out)
    scaled = runs.loc[runs["initializer"] == "scaled", "cell"]
    others = runs.loc[runs["initializer"] != "scaled", "cell"]
    np.testing.assert_allclose(after[scaled] / before[scaled], 25.0, rtol=1e-4)
    np.testing.assert_array_equal(after[others], before[others])
    plugins = {p["name"]: p for p in load_results(out).meta["plugins"]}
    old = {p["name"]: p for p in load_results(base).meta["plugins"]}
    assert plugins[PACKAGE]["version"] == old[PACKAGE]["version"] == "1.0"
    assert plugins[PACKAGE]["code"] != old[PACKAGE]["code"]

    rows = environment_differences(load_results(base).meta, load_results(out).meta)
    differs = {r["key"]: (r["base"], r["new"]) for r in rows if r["differs"]}
    assert differs == {"plugin fp_scaled code": (old[PACKAGE]["code"], plugins[PACKAGE]["code"])}

    editable()
    unchanged = go(study, out)
    assert (unchanged.computed, unchanged.reused) == (0, 4)


def test_a_failure_of_new_code_is_not_hidden_by_the_old_result(editable, write_study, tmp_path):
    site = editable()
    study = tiny(write_study, '"scaled"')
    out = tmp_path / "out"
    assert go(study, out).computed == 2
    broken = '\n\ndef scaled(weight, generator, activation):\n    raise RuntimeError("broken")\n'
    (site / PACKAGE / "draw.py").write_text(broken, encoding="utf-8")
    editable()
    after = go(study, out)
    assert (after.computed, after.failed) == (2, 2)
    runs = load_results(out).runs
    assert len(runs) == 2 and set(runs["status"]) == {"failed"}, "not the old ok records"
    write_draw(site)  # back to the code of the older ok records: computed again
    editable()
    assert go(study, out).computed == 2
    assert set(load_results(out).runs["status"]) == {"ok"}


def _edited_copy(module, tmp_path: Path, edit) -> str:
    source = Path(module.__file__).read_text(encoding="utf-8")
    copy = tmp_path / f"{module.__name__}.py"
    copy.write_text(edit(source), encoding="utf-8")
    assert copy.read_text(encoding="utf-8") != source
    return str(copy)


def test_an_edited_builtin_or_engine_makes_cells_stale(write_study, tmp_path, monkeypatch):
    study = tiny(write_study, '"normal(std=1)", "xavier_normal"')
    out = tmp_path / "out"
    assert go(study, out).computed == 4
    # a built-in plugin edited in a checkout, fingerprinted from an edited copy
    doc = _edited_copy(builtin_initializers, tmp_path, lambda s: s.replace('"""', '"""New. ', 1))
    monkeypatch.setattr(builtin_initializers, "__file__", doc)
    assert go(study, out).reused == 4, "a docstring edit changes nothing"
    code = _edited_copy(builtin_initializers, tmp_path, lambda s: s + "\nEXTRA = 1\n")
    monkeypatch.setattr(builtin_initializers, "__file__", code)
    plugin = go(study, out)
    assert plugin.recomputed == {"their plugin code changed (benchinit.builtin.initializers)": 4}
    assert len(load_results(out).runs) == 4
    # the compute path edited: every cell, whatever its plugins
    stack = _edited_copy(benchinit.engine.stack, tmp_path, lambda s: s + "\nEXTRA = 1\n")
    monkeypatch.setattr(benchinit.engine.stack, "__file__", stack)
    fingerprint.engine_code.cache_clear()
    try:
        engine = go(study, out)
    finally:
        monkeypatch.undo()
        fingerprint.engine_code.cache_clear()
    assert engine.recomputed == {"benchinit's compute code changed": 4}
    assert go(study, out).computed == 4, "and back to the real files: computed again"


def test_a_fresh_worker_computes_the_codes_the_run_planned_with(editable, write_study):
    """A spawned worker rebuilds the registry from the batch's spec (benchinit.plugins.registry);
    its fingerprints are the parent's, distribution plugins included."""
    editable()
    study = load_study(tiny(write_study))
    batches = plan(study.cells(), study.registry, device="cpu")
    fresh = registry._rebuild.__wrapped__(batches[0].registry)
    assert fresh is not study.registry
    for batch in batches:
        assert batch.codes == tuple(cell_code(c, fresh) for c in batch.cells)
    assert len({code for b in batches for code in b.codes}) == 2, "scaled vs xavier cells"


def test_a_worker_whose_code_differs_fails_its_batch(write_study):
    study = load_study(tiny(write_study, '"normal(std=1)", "xavier_normal"'))
    (batch,) = plan(study.cells()[:2], study.registry, device="cpu")
    records = run_batch(dataclasses.replace(batch, codes=("0" * 16, "1" * 16)))
    runs = records["runs"]
    assert set(runs["status"]) == {"failed"}
    assert runs["error"].str.startswith("CodeChanged: ").all()


# --- the store's rule, and folders from before --------------------------------------------


def _record(store: Store, cell: str, status: str, code: str) -> None:
    runs = pd.DataFrame([{"cell": cell, "seed": 0, "status": status, "code": code}])
    empty = {t: conform(t, pd.DataFrame(columns=list(COLUMNS[t]))) for t in COLUMNS if t != "runs"}
    store.write({"runs": conform("runs", runs), **empty})


@pytest.mark.parametrize(
    ("history", "expected", "kept", "finished"),
    [
        ([("ok", "a")], "a", ("ok", "a"), True),
        ([("ok", "a")], "b", ("ok", "a"), False),  # stale: computed again
        ([("ok", "a"), ("failed", "b")], "b", ("failed", "b"), False),  # new code fails
        ([("ok", "a"), ("failed", "b")], "a", ("failed", "b"), False),  # reverted: again
        ([("failed", "a"), ("ok", "a"), ("failed", "a")], "a", ("ok", "a"), True),
        ([("ok", ""), ("diverged", "b")], "b", ("diverged", "b"), True),
    ],
)
def test_readers_keep_the_record_of_the_latest_code(tmp_path, history, expected, kept, finished):
    store = Store(tmp_path / "s", create=True)
    for status, code in history:
        _record(store, "c1", status, code)
    store.expect({"c1": expected})
    row = freshness.kept(store.statuses()).iloc[0]
    assert (row["status"], row["code"]) == kept
    assert ("c1" in store.finished()) is finished
    assert len(store.read(("runs",))["runs"]) == 1
    assert Store(tmp_path / "s").finished() == ({"c1"} if kept[0] != "failed" else set())


def test_a_folder_from_before_fingerprints_loads_and_is_computed_again(write_study, tmp_path):
    study = tiny(write_study, '"xavier_normal"')
    out = tmp_path / "out"
    go(study, out)
    for chunk in Store(out).chunks():  # as benchinit wrote them before: no code column
        path = chunk / "runs.parquet"
        pq.write_table(pq.read_table(path).drop_columns(["code"]), path)
    meta = json.loads((out / "meta.json").read_text())
    del meta["environment"]["benchinit_code"]
    for plugin in meta["plugins"]:
        del plugin["code"]
    (out / "meta.json").write_text(json.dumps(meta))
    old = load_results(out)
    assert len(old.runs) == 2 and set(old.runs["code"]) == {""}
    assert set(old.runs["status"]) == {"ok"}
    base = shutil.copytree(out, tmp_path / "old")
    again = go(study, out)
    assert again.recomputed == {"stored before benchinit recorded the code of each cell": 2}
    runs = load_results(out).runs
    assert len(runs) == 2 and "" not in set(runs["code"])
    rows = environment_differences(load_results(base).meta, load_results(out).meta)
    assert not [r for r in rows if r["group"] == "code"], "unknown is not different"


def test_compare_and_history_say_when_plugin_code_differs_at_one_version(tmp_path):
    rng = np.random.default_rng(0)
    base_runs, new_runs = (runs_frame(0.9 + 0.01 * rng.standard_normal((2, 3))) for _ in "ab")

    def plugins(code: str) -> dict:
        return {
            "plugins": [
                {"name": "lsuv", "origin": "distribution", "source": "benchinit-lsuv==0.1",
                 "version": "0.1", "code": code}
            ]
        }  # fmt: skip

    base = write_runs(tmp_path / "base", base_runs, meta=plugins("ab12ab12ab12ab12"))
    new = write_runs(tmp_path / "new", new_runs, meta=plugins("cd34cd34cd34cd34"))
    outcome = compare(base, new)
    assert "plugin lsuv code ab12ab12ab12ab12 -> cd34cd34cd34cd34" in text_summary(outcome)
    assert "plugin lsuv code" in (new / "compare.html").read_text()
    steps = history([base, new], out=tmp_path / "history.html").changes
    assert [(e["key"], e["base"], e["new"]) for e in steps[0]] == [
        ("plugin lsuv code", "ab12ab12ab12ab12", "cd34cd34cd34cd34")
    ]
