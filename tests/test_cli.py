"""The `benchinit` command: list, argument errors, entry points of the command itself."""

from __future__ import annotations

import subprocess
import sys

from test_registry import EXPECTED

from benchinit.cli import main


def test_list_shows_every_plugin_and_study(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "SOURCE", "DESCRIPTION"]
    rows = {(line.split()[0], line.split()[1]) for line in lines[1:]}
    for kind, names in EXPECTED.items():
        assert {(kind, n) for n in names} <= rows, kind
    assert ("study", "seed") in rows
    assert "Glorot & Bengio 2010" in out


def test_list_one_kind_shows_parameters(capsys):
    assert main(["list", "optimizers"]) == 0
    out = capsys.readouterr().out
    assert "sgd(lr=0.01, momentum=0.0, nesterov=False" in out
    assert "schedule='constant'" in out
    assert "initializer" not in out


def test_list_plugin_file_shows_its_source(write_plugin, capsys):
    path = write_plugin("""
        from benchinit import Activation, hookimpl

        def cube(x):
            "x^3, for testing."
            return x ** 3

        @hookimpl
        def benchinit_activations():
            return [Activation("cube", cube)]
    """)
    assert main(["list", "activations", "--plugin", str(path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.split()[:2] == ["activation", "cube"])
    assert str(path.resolve()) in row and "x^3, for testing." in row


def test_unknown_kind(capsys):
    assert main(["list", "optimisers"]) == 2
    assert "Did you mean 'optimizers'?" in capsys.readouterr().err


def test_console_script_and_module_agree():
    for command in (["benchinit", "--version"], [sys.executable, "-m", "benchinit", "--version"]):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith("benchinit ")
