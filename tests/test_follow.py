"""A run you can follow from a terminal, a log and a script (issue 22): failures said at
the end of a run, progress in logs, ``benchinit show``, figures as files, report drawing
without a main guard."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import runs_frame, write_runs

from benchinit.cli import main
from benchinit.execution.progress import Progress
from benchinit.report import spawning
from benchinit.results import failures

ROOT = Path(__file__).resolve().parent.parent

BROKEN = """
from benchinit import Initializer, hookimpl


def broken(weight, generator, activation) -> None:
    raise ValueError("broken on purpose")


@hookimpl
def benchinit_initializers():
    return [Initializer("broken", broken)]
"""


def test_a_failed_run_says_each_configuration_s_first_error_and_times_apart(
    write_plugin, tmp_path, capsys
):
    plugin = write_plugin(BROKEN)
    grid = 'grid.initializer=["broken", "kaiming_normal"]'
    sets = ["--set", grid, "--set", 'grid.activation=["tanh"]', "--set", "model.depth=2"]
    rest = ["--seeds", "2", "--jobs", "1", "--out", str(tmp_path / "r")]
    code = main(["run", "seed", "--plugin", str(plugin), *sets, *rest])
    out, err = capsys.readouterr()
    assert code == 1
    assert "1 configuration failed (2 cells):" in out
    line = next(x for x in out.splitlines() if "broken on purpose" in x)
    assert line.strip().startswith("broken, tanh [2 of 2]: ValueError: broken on purpose (at ")
    assert "benchinit show" in out
    # compute and drawing timed apart; the drawing announced, with its own progress
    assert re.search(r"computed in \d+\.\d s, 0 already stored; report drawn in \d+\.\d s", out)
    assert "seed: drawing the report (" in err
    assert re.search(r"seed report: \d+/\d+ figures \(100%\)", err)
    # off a terminal the cells' progress is whole lines with the failures so far
    assert re.search(r"seed: 4/4 cells \(100%\), [\d.]+ cells/s, ETA 0:00, 2 failed so far", err)
    assert "\r" not in err


def test_failure_lists_are_capped_and_say_how_many_more():
    runs = runs_frame(np.ones((14, 2)), labels=[f"init{i}" for i in range(14)])
    runs["error"] = ""
    runs.loc[runs["initializer"] != "init0", "status"] = "failed"
    runs.loc[runs["status"] == "failed", "error"] = "RuntimeError: out of\nmemory"
    runs.loc[runs["initializer"] == "init0", ["status", "diverged_epoch"]] = ["diverged", 3]
    found = failures.problems(runs, ["initializer"], "failed")
    assert len(found) == 13 and found[0].detail == "RuntimeError: out of memory"
    assert failures.problems(runs, ["initializer"], "diverged")[0].detail == "at epoch 3"

    class Fake:
        def __init__(self) -> None:
            self.axes, self.runs, self.tuning = ["initializer"], runs, pd.DataFrame()

    lines = failures.report_lines(Fake(), "see the report", limit=10)
    assert lines[0] == "13 configurations failed (26 cells):"
    assert "  ... and 3 more configuration(s) failed" in lines
    assert "1 configuration diverged (2 cells):" in lines
    assert "  init0 [2 of 2]: at epoch 3" in lines
    assert lines[-1] == "see the report"
    assert failures.first_line("x" * 400).endswith("...")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_logs_a_line_per_tenth_off_a_terminal_and_redraws_on_one():
    log = io.StringIO()
    bar = Progress(20, "study", stream=log)
    for i in range(20):
        bar.advance(1, failed=int(i == 5))
    lines = log.getvalue().splitlines()
    assert len(lines) == 10  # every 2 of 20 cells: a tenth
    assert lines[0].startswith("study: 2/20 cells (10%), ")
    assert lines[-1].startswith("study: 20/20 cells (100%), ") and "1 failed so far" in lines[-1]
    quiet = io.StringIO()
    bar = Progress(20, "study", stream=quiet, enabled=False)
    bar.advance(20)
    bar.note("a round")
    assert quiet.getvalue() == ""
    tty = _Terminal()
    bar = Progress(3, "study", stream=tty)
    bar.advance(3)
    bar.close()
    assert tty.getvalue().startswith("\rstudy [") and "3/3 cells" in tty.getvalue()


def test_spawning_knows_a_guarded_script(tmp_path):
    plain, guarded = tmp_path / "plain.py", tmp_path / "guarded.py"
    plain.write_text("import benchinit\nbenchinit.run(None)\n")
    guarded.write_text("def f(): pass\n\nif '__main__' == __name__:\n    f()\n")
    assert not spawning.guarded(str(plain))
    assert spawning.guarded(str(guarded))
    assert not spawning.guarded(str(tmp_path / "missing.py"))


def test_a_script_without_a_main_guard_draws_its_figures(tmp_path):
    """Spawned workers would run this script again and break; it draws in process."""
    script = tmp_path / "draw.py"
    script.write_text(
        textwrap.dedent(
            """
            from matplotlib.figure import Figure
            from benchinit.report import spawning
            from benchinit.report.page import draw_all
            from benchinit.report.section_figures import FigureJob

            def draw():
                fig = Figure(figsize=(1, 1))
                fig.subplots().plot([0, 1])
                return fig

            jobs = [FigureJob("results", "a figure", f"f{i}", draw, ()) for i in range(8)]
            images = draw_all(jobs, parallel=2)
            print(len(images), spawning.spawn_safe())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8", "False"]
    assert "Traceback" not in done.stderr


def _folder(tmp_path: Path) -> Path:
    """A results folder: two axes, one configuration failed, one diverged, a tuned value."""
    runs = runs_frame(
        np.array([[0.9, 0.92, 0.91], [0.8, 0.82, 0.81], [0.7, 0.7, 0.7], [0.5, 0.5, 0.5]]),
        labels=["kaiming_normal", "xavier_normal", "zeros", "normal"],
    )
    runs["activation"] = "relu"
    runs["error"] = ""
    runs["tuned.optimizer.lr"] = runs["initializer"].map(
        {"kaiming_normal": 0.1, "xavier_normal": 0.01, "zeros": 0.1, "normal": 0.1}
    )
    zeros, normal = runs["initializer"] == "zeros", runs["initializer"] == "normal"
    runs.loc[zeros, ["status", "error"]] = ["failed", "ValueError: no | symmetry"]
    runs.loc[normal & (runs["seed"] == 1), ["status", "diverged_epoch"]] = ["diverged", 2]
    return write_runs(tmp_path / "res", runs, axes=("initializer", "activation"))


@pytest.mark.parametrize("fmt", ["text", "markdown", "csv", "json"])
def test_show_prints_the_leaderboard_with_tuned_values_failures_and_divergences(
    tmp_path, capsys, fmt
):
    folder = _folder(tmp_path)
    assert main(["show", str(folder), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        data = json.loads(out)
        board = {r["initializer"]: r for r in data["leaderboard"]}
        assert board["kaiming_normal"]["tuned.optimizer.lr"] == 0.1
        assert board["kaiming_normal"]["test_accuracy"] == pytest.approx(0.91)
        assert board["zeros"]["test_accuracy"] is None
        assert data["failed"][0]["detail"] == "ValueError: no | symmetry"
        assert data["diverged"][0]["configuration"] == "normal, relu"
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows[0]["initializer"] == "kaiming_normal"
        assert rows[0]["tuned.optimizer.lr"] == "0.1"
        zeros = next(r for r in rows if r["initializer"] == "zeros")
        assert zeros["first_error"] == "ValueError: no | symmetry" and zeros["failed"] == "3"
        normal = next(r for r in rows if r["initializer"] == "normal")
        assert normal["diverged_at"] == "at epoch 2"
    elif fmt == "markdown":
        table = [x for x in out.splitlines() if x.startswith("|")]
        assert table[0].startswith("| initializer | activation | test\\_accuracy |")
        assert all(x.count(" | ") == table[0].count(" | ") for x in table[2:])  # | escaped
        assert "ValueError: no \\| symmetry" in out
    else:
        assert "tuned.optimizer.lr" in out.splitlines()[2]
        assert "1 configuration failed (3 cells):" in out
        assert "  zeros, relu [3 of 3]: ValueError: no | symmetry" in out
        assert "  normal, relu [1 of 3]: at epoch 2" in out


def test_report_writes_each_figure_as_a_file_for_a_paper(tmp_path, capsys):
    folder = _folder(tmp_path)
    figures = tmp_path / "figs"
    assert main(["report", str(folder), "--figures", str(figures), "--format", "svg"]) == 0
    listed = json.loads((figures / "figures.json").read_text())["figures"]
    assert listed and all((figures / f["file"]).is_file() for f in listed)
    assert all(f["file"].startswith(f["section"] + "-") for f in listed)
    for f in listed:
        width = re.search(r'<svg[^>]*width="([\d.]+)pt"', (figures / f["file"]).read_text())
        assert width and float(width.group(1)) <= 7.0 * 72 + 1  # at most 178 mm wide
    # again into the same folder: its own files are replaced
    assert main(["report", str(folder), "--figures", str(figures), "--format", "svg"]) == 0
    capsys.readouterr()
    # never a folder of someone else's files, never --format alone
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    assert main(["report", str(folder), "--figures", str(other), "--format", "png"]) == 2
    assert main(["report", str(folder), "--format", "png"]) == 2
    err = capsys.readouterr().err
    assert "did not write" in err and "--figures OUTDIR" in err and "Traceback" not in err
    assert (other / "notes.txt").read_text() == "keep"
