"""The README's promises hold: its plugin example works, every hook is documented and tested."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from benchinit.cli import main
from benchinit.plugins import hookspecs
from benchinit.testing import check_plugin

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("benchinit_"))


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 3)
    return README[start : end if end > 0 else None]


def test_the_plugin_example_is_complete_short_and_conforms(tmp_path, capsys):
    code = re.findall(r"```python\n(.*?)```", section("Writing a plugin"), re.S)[0]
    assert len(code.strip().splitlines()) < 30
    path = tmp_path / "my_init.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("my_init", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert check_plugin(module) == ["initializer scaled_normal"]
    assert main(["list", "initializers", "--plugin", str(path)]) == 0
    assert "scaled_normal(scale=1.0)" in capsys.readouterr().out
    assert (
        main(
            [
                "run",
                "seed",
                "--plugin",
                str(path),
                "--seeds",
                "1",
                "--no-report",
                "--quiet",
                "--set",
                'grid.initializer=["scaled_normal(scale=1.4)", "kaiming_normal"]',
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )


def test_the_studies_example_loads_with_the_plugin_example(tmp_path):
    """README's study file, with README's plugin beside it, is a valid study as written."""
    from benchinit import load_study

    study = re.findall(r"```toml\n(.*?)```", section("Studies"), re.S)[0]
    plugin = re.findall(r"```python\n(.*?)```", section("Writing a plugin"), re.S)[0]
    (tmp_path / "my_init.py").write_text(plugin)
    (tmp_path / "my-study.toml").write_text(study)
    loaded = load_study(tmp_path / "my-study.toml")
    assert loaded.axes["initializer"][1] == "scaled_normal(scale=1.4)"
    assert loaded.tune is not None and len(loaded.cells()) > 0


def test_every_hook_is_documented_and_tested():
    tests = "".join(
        p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_docs.py"
    )
    tests += "".join(p.read_text() for p in (ROOT / "plugins").glob("*/*/*.py"))
    assert HOOKS == [
        "benchinit_activations",
        "benchinit_datasets",
        "benchinit_initializers",
        "benchinit_losses",
        "benchinit_models",
        "benchinit_optimizers",
        "benchinit_report_sections",
    ]
    table = section("Writing a plugin")
    for hook in HOOKS:
        assert f"`{hook}(" in table, f"{hook} is not in the README's hook table"
        assert hook in tests, f"no test implements {hook}"
        assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"


def test_readme_commands_exist():
    synopsis = section("Commands")
    for command in ("list", "run", "report", "compare", "history"):
        assert f"benchinit {command}" in synopsis
    for flag in (
        "--set",
        "--seeds",
        "--device",
        "--executor",
        "--jobs",
        "--threads",
        "--scheduler",
        "--plugin",
        "--deterministic",
        "--no-report",
        "--quiet",
        "--tolerance",
        "--metric",
        "--json",
        "--alpha",
        "--correction",
        "--markdown",
        "--sort",
    ):
        assert flag in synopsis, flag


def test_every_guarantee_names_a_test_that_exists():
    """README's "Guarantees": each backing test named there exists (file::name)."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(?:(test_\w+\.py))?::(test_\w+)`", section)
    assert len(named) >= 8
    current = None
    for module, name in named:
        current = module or current
        source = (ROOT / "tests" / current).read_text(encoding="utf-8")
        assert f"def {name}(" in source, f"{current}::{name} is named in README but missing"


@pytest.mark.slow
def test_the_python_api_block_runs_as_a_script_without_a_main_guard(tmp_path):
    """README's Python API block, as a script with no guard, shrunk only in its studies (one
    activation, two initializers, two seeds, 2 to 4 layers): every folder it names is made,
    no traceback."""
    import os
    import subprocess
    import sys

    code = re.findall(r"```python\n(.*?)```", section("Python API"), re.S)[0]
    assert "__main__" not in code
    small = (
        "\"study.seeds=2\", \"grid.activation=['tanh']\", \"grid.initializer=['zeros', 'normal']\""
    )
    shrunk = code.replace('"study.seeds=3"', small)
    for deep, shallow in (("10", "2"), ("20", "3"), ("40", "4")):
        shrunk = shrunk.replace(f'"model.depth={deep}"', f'"model.depth={shallow}"')
    assert shrunk.count("grid.activation") == 3  # every study of the block is shrunk
    (tmp_path / "api.py").write_text(shrunk)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "api.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "report drawn in" in done.stdout
    reports = tmp_path / "reports"
    assert (reports / "deep" / "index.html").is_file()
    assert (reports / "deeper" / "compare.html").is_file()
    assert (reports / "deepest" / "history.html").is_file()
