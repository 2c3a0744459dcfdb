"""Bad input and unwritable output: exit 2 with one clear paragraph, no traceback, nothing
lost, no file benchinit did not write touched.

Each test states the guarantee it backs (README, "Guarantees"); the fuzz test at the end
feeds generated damaged study files, results folders and command lines through run,
report, compare and load_results.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from forked import in_child

from benchinit import load_results
from benchinit.cli import main
from benchinit.errors import ResultsError

TINY = """
[study]
name = "tiny"
title = "Tiny"
kind = "signal"
seeds = 2
[data]
name = "gaussian"
samples = 30
features = 5
[model]
depth = 2
width = 5
[grid]
initializer = ["xavier_normal", "kaiming_normal"]
activation = ["tanh", "relu"]
"""


def run_cli(*args: str) -> tuple[int, str]:
    """``benchinit ARGS`` in this process: (exit status, stderr), argparse errors included."""

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse: usage errors exit 2
            status = int(exc.code or 0)
    return status, err.getvalue()


# What a command prints off a terminal while it works (benchinit.execution.progress): progress lines
# may come before an error found mid-way (a damaged file read for the page's last section).
PROGRESS = re.compile(r"^[^:\n]+: (drawing the report \(\d+ figures\)|\d+/\d+ \w+ \(\d+%\).*)$")


def assert_clear_error(status: int, err: str, *words: str) -> None:
    assert status == 2, err
    err = "\n".join(line for line in err.splitlines() if not PROGRESS.match(line))
    assert err.startswith("benchinit: error: ") or err.startswith("usage: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A finished results folder of a tiny signal study (with its report)."""
    folder = tmp_path_factory.mktemp("results")
    study = folder / "tiny.toml"
    study.write_text(TINY)
    assert main(["run", str(study), "--out", str(folder / "out"), "--quiet"]) == 0
    return folder / "out"


# --- sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("study.seeds=1000000000", ["1,000,000,000 seeds", "limit of 100,000", "--no-size-check"]),
        ("model.width=10000000", ["needs about", "available", "--no-size-check"]),
        ("data.samples=2000000000", ["needs about", "available"]),
        ("study.seeds=[9223372036854775808]", ["study.seeds", "at most", "2^63 - 1"]),
    ],
    ids=["seeds", "width", "samples", "a seed int64 cannot hold"],
)
def test_a_grid_too_big_to_run_is_refused_before_anything_runs(tmp_path, override, words):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    status, err = run_cli("run", str(study), "--set", override, "--out", str(tmp_path / "o"))
    assert_clear_error(status, err, *words)
    assert not (tmp_path / "o").exists()


TUNED_TINY = """
[study]
name = "tuned-tiny"
kind = "train"
seeds = 2
[data]
name = "gaussian"
samples = 40
features = 5
[model]
depth = 1
width = 5
[train]
epochs = 1
batch_size = 16
[grid]
initializer = "kaiming_normal"
activation = "relu"
optimizer = "sgd"
[tune]
"optimizer.lr" = [0.01, 0.1]
seeds = 1
"""
HUGE = 99_999_999_999  # cells, seeds or layers: about 21 GB as a tuple of ints


def test_huge_numbers_are_refused_before_anything_is_built_from_them(tmp_path):
    """Every number that sizes a structure is counted before the structure is built: under
    a memory limit of 1 GB more than the imports take, each is exit 2 naming what to fix."""
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "tuned.toml").write_text(TUNED_TINY)
    cases = {
        "tuning seeds": (["tuned.toml", "--set", f"tune.seeds={HUGE}"], "limit of 100,000"),
        "tuning seeds past int64": (
            ["tuned.toml", "--set", "tune.seeds=9223372036854775807"],
            "tune.seeds",
        ),
        "study seeds": (["tiny.toml", "--set", f"study.seeds={HUGE}"], "limit of 100,000"),
        "--seeds": (["tiny.toml", "--seeds", str(HUGE)], "limit of 100,000"),
        "depth, train": (["tuned.toml", "--set", f"model.depth={HUGE}"], "needs about"),
        "depth, signal": (["tiny.toml", "--set", f"model.depth={HUGE}"], "needs about"),
        "threads": (["tiny.toml", "--threads", "99999999"], "threads per worker must be 1 to"),
    }
    code = f"""
import contextlib, io, json, resource, sys
from benchinit.cli import main
import benchinit.execution.runner  # imported before the limit: its cost is not ours
with open("/proc/self/statm") as f:
    used = int(f.read().split()[0]) * resource.getpagesize()
limit = used + 2**30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
answers = {{}}
for name, (args, _) in {cases!r}.items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["run", *args, "--out", "out-" + name.replace(" ", "-"), "--quiet"])
    answers[name] = [status, err.getvalue()]
print(json.dumps(answers))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout)
    for name, (_, words) in cases.items():
        status, err = answers[name]
        assert_clear_error(status, err, words)
    assert not list(tmp_path.glob("out-*")), "nothing was written"


def test_the_size_limits_can_be_lifted(tmp_path):
    from benchinit import load_study, run

    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    with pytest.raises(Exception, match="more than the limit of 4"):
        load_study(study, max_cells=4)
    outcome = run(
        load_study(study, max_cells=None),
        tmp_path / "o",
        check_memory=False,
        report=False,
        progress=False,
    )
    assert len(outcome.results.runs) == 8


# --- folders that are not ours ---------------------------------------------------------------


def test_a_folder_that_is_not_ours_is_refused_and_left_alone(tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my page")
    (mine / "notes.txt").write_text("my notes")
    status, err = run_cli("run", str(study), "--out", str(mine))
    assert_clear_error(status, err, str(mine), "not a benchinit results folder", "--force")
    status, err = run_cli("run", str(study), "--out", str(mine), "--force")
    assert_clear_error(status, err, "index.html", "never replaces")
    assert sorted(p.name for p in mine.iterdir()) == ["index.html", "notes.txt"]
    assert (mine / "index.html").read_text() == "my page"


@pytest.mark.parametrize("lookalike", ["records and locks folders", "a meta.json of sorts"])
def test_a_folder_that_only_looks_like_ours_is_refused(lookalike, tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    mine = tmp_path / "mine"
    mine.mkdir()
    if lookalike == "records and locks folders":
        (mine / "records").mkdir()
        (mine / "locks").mkdir()
    else:
        (mine / "meta.json").write_text('{"schema": 1, "study": "mine"}')
    (mine / "index.html").write_text("MY SITE")
    (mine / "study.toml").write_text("notes")
    before = {p.name: p.read_bytes() for p in mine.iterdir() if p.is_file()}
    status, err = run_cli("run", str(study), "--out", str(mine))
    assert_clear_error(status, err, str(mine), "not a benchinit results folder")
    status, err = run_cli("run", str(study), "--out", str(mine), "--force")
    assert_clear_error(status, err, "index.html", "never replaces")
    assert {p.name: p.read_bytes() for p in mine.iterdir() if p.is_file()} == before


def test_a_folder_another_run_is_starting_in_is_ours(tmp_path):
    """What a second run sees while the first creates the folder: ours at every step."""
    from benchinit.results.store import Store

    folder = tmp_path / "out"
    (folder / "records").mkdir(parents=True)
    assert Store(folder).is_results_folder()
    (folder / "locks").mkdir()
    (folder / ".meta.json.0123abcd.tmp").write_text("{")
    assert Store(folder).is_results_folder()
    (folder / "notes.txt").write_text("mine")
    assert not Store(folder).is_results_folder()


def test_force_adds_results_beside_other_files(tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("my notes")
    assert run_cli("run", str(study), "--out", str(shared), "--force")[0] == 0
    assert (shared / "notes.txt").read_text() == "my notes"
    assert (shared / "index.html").is_file()
    assert run_cli("run", str(study), "--out", str(shared))[0] == 0, "now it is ours"


# --- outputs that cannot be written ----------------------------------------------------------


def _limited(args: list[str], max_bytes: int, cwd: Path) -> subprocess.CompletedProcess:
    """``benchinit ARGS`` with files limited to ``max_bytes`` (a full disk, in effect)."""
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({max_bytes}, {max_bytes}))\n"
        "from benchinit.cli import main\n"
        f"sys.exit(main({args!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_a_full_disk_is_a_clear_error_and_leaves_no_temporary_files(tmp_path, results):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    proc = _limited(["run", str(study), "--out", "out", "--quiet"], 1500, tmp_path)
    assert_clear_error(proc.returncode, proc.stderr, "cannot write", "File too large")
    assert not _temporaries(tmp_path / "out")
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    before = (copy / "index.html").read_bytes()
    proc = _limited(["report", str(copy)], 50_000, tmp_path)
    assert_clear_error(proc.returncode, proc.stderr, "cannot write", "index.html")
    assert not _temporaries(copy)
    assert (copy / "index.html").read_bytes() == before, "the old report is intact"


def test_outputs_named_wrongly_are_clear_errors(tmp_path, results):
    status, err = run_cli("report", str(results), "--out", str(tmp_path))
    assert_clear_error(status, err, "is a folder")
    status, err = run_cli(
        "compare", str(results), str(results), "--json", str(tmp_path / "no" / "x.json")
    )
    assert_clear_error(status, err, "does not exist")
    assert not _temporaries(results)


# --- inputs that are not what they claim ---------------------------------------------------


def test_a_study_that_is_not_text_is_a_clear_error(tmp_path):
    image = tmp_path / "picture.toml"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert_clear_error(*run_cli("run", str(image)), str(image), "not UTF-8")
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert_clear_error(*run_cli("run", str(picture)), str(picture), "not UTF-8")


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("model.residual=inf", ["model.residual", "finite", "inf"]),
        ("model.residual=-inf", ["model.residual", "finite"]),
        ("model.residual=nan", ["model.residual", "finite", "nan"]),
        ('grid.initializer=[{name="normal", std=inf}]', ["grid.initializer", "'std'", "finite"]),
        ('grid.initializer=["normal(std=1e999)"]', ["grid.initializer", "'std'", "finite"]),
        ('model.bias_init={name="constant", value=nan}', ["model.bias_init", "'value'", "finite"]),
        ("data.samples=inf", ["'samples'", "finite"]),
    ],
)
def test_an_infinite_or_nan_number_is_bad_input(tmp_path, override, words):
    """meta.json holds every setting and parameter, and JSON has no Infinity or NaN."""
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    status, err = run_cli("run", str(study), "--set", override, "--out", str(tmp_path / "o"))
    assert_clear_error(status, err, str(study), *words)
    assert not (tmp_path / "o").exists()


DAMAGE = {
    "meta not UTF-8": ("meta.json", b"\xff\xfe{}", "not UTF-8"),
    "meta a list": ("meta.json", b"[]", "must be a JSON object"),
    "meta empty object": ("meta.json", b"{}", "key 'schema' is missing"),
    "meta truncated": ("meta.json", b'{"schema": 1, "stu', "is corrupt"),
    "meta study a string": ("meta.json", "study", "key 'study' must be dict"),
    "meta no cells": ("meta.json", "-cells", "key 'cells' is missing"),
    "meta unknown kind": ("meta.json", "kind", "key 'study.kind'"),
    "meta seeds strings": ("meta.json", "seeds", "key 'study.seeds'"),
    "sections not UTF-8": ("sections.json", b"\x80\x81", "not UTF-8"),
    "sections an object": ("sections.json", b"{}", "expected a list of sections"),
    "sections numbers": ("sections.json", b"[1, 2]", "expected a list of sections"),
    "sections title number": ("sections.json", b'[{"title": 3}]', "expected a list"),
    "study.toml not UTF-8": ("study.toml", b"\xff\xff\xff", "not UTF-8"),
}


def _damage(folder: Path, name: str, how: bytes | str) -> None:
    path = folder / name
    if isinstance(how, bytes):
        path.write_bytes(how)
        return
    meta = json.loads(path.read_text())
    if how == "study":
        meta["study"] = "tiny"
    elif how == "-cells":
        del meta["cells"]
    elif how == "kind":
        meta["study"]["kind"] = "dream"
    elif how == "seeds":
        meta["study"]["seeds"] = ["a"]
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_results_file_is_named_in_a_clear_error(case, results, tmp_path):
    name, how, words = DAMAGE[case]
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    _damage(copy, name, how)
    assert_clear_error(*run_cli("report", str(copy)), str(copy / name), words)
    if name == "meta.json":
        with pytest.raises(ResultsError, match=r"meta\.json"):
            load_results(copy)
        assert_clear_error(*run_cli("compare", str(results), str(copy)), "meta.json")


def test_a_corrupt_chunk_says_how_to_recover(results, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    chunk = next((copy / "records").glob("*/runs.parquet"))
    chunk.write_bytes(b"garbage")
    status, err = run_cli("report", str(copy))
    assert_clear_error(status, err, "corrupt", "move the folder", "run the study")


def test_a_file_is_not_a_results_folder(results, tmp_path):
    status, err = run_cli("compare", str(results), "/etc/passwd")
    assert_clear_error(status, err, "is a file, not a benchinit results folder")


# --- fuzz ----------------------------------------------------------------------------------


def _study_mutations(rng: random.Random, count: int) -> list[bytes]:
    """Damaged variants of the tiny study: lines dropped or swapped, values of every type,
    truncation, binary noise, hostile strings."""
    lines = TINY.strip().splitlines()
    values = [
        "-1",
        "0",
        "1e309",
        "nan",
        "inf",
        "true",
        '"x"',
        "[]",
        "{}",
        '["zeros", 3]',
        "[[1]]",
        '"<script>alert(1)</script>"',
        '"../../etc"',
        '"\\u0000"',
        "99999999999999999999",
        '{name = "sgd", lr = "fast"}',
        '"normal(std=)"',
        "\"sgd(lr=__import__('os'))\"",
    ]
    out = []
    for _ in range(count):
        mutated = list(lines)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(mutated))
            choice = rng.random()
            if choice < 0.3:
                del mutated[i]
            elif choice < 0.7 and "=" in mutated[i]:
                key = mutated[i].split("=")[0]
                mutated[i] = f"{key}= {rng.choice(values)}"
            elif choice < 0.85:
                mutated.insert(i, f"{rng.choice(['junk', 'grid.x', 'seeds'])} = 1")
            else:
                j = rng.randrange(len(mutated))
                mutated[i], mutated[j] = mutated[j], mutated[i]
        text = "\n".join(mutated).encode()
        if rng.random() < 0.15:
            text = text[: rng.randrange(len(text))]
        if rng.random() < 0.1:
            text = bytes(rng.randrange(256) for _ in range(64)) + text
        out.append(text)
    return out


# The tuned tiny study's lines, and what a hostile user may write instead: numbers that
# size something (seeds, tuning seeds, layers, samples, trials), a range that rounds to one
# value; and grid axes to add (the validation share, a huge depth).
SIZE_EDITS = {
    "seeds = 2": [f"seeds = {HUGE}", "seeds = 9223372036854775807"],
    "seeds = 1": [f"seeds = {HUGE}", "seeds = 9223372036854775807", "seeds = 0"],
    "depth = 1": [f"depth = {HUGE}"],
    "width = 5": [f"width = {HUGE}"],
    "samples = 40": [f"samples = {HUGE}"],
    "batch_size = 16": [f"batch_size = {HUGE}"],
    '"optimizer.lr" = [0.01, 0.1]': [
        '"optimizer.lr" = {range = [1.0, 1.00001], trials = 3}',
        f'"optimizer.lr" = {{log_range = [1e-4, 1], trials = {HUGE}}}',
    ],
}
SIZE_AXES = ['"data.validation" = [0.0, 0.3]', '"data.validation" = [0.1, 1.3]']
SIZE_AXES += [f'"model.depth" = [1, {HUGE}]', f'"train.epochs" = [1, {HUGE}.5]']


def _size_mutations(rng: random.Random, count: int) -> list[bytes]:
    """The tuned tiny study with one or two of its numbers made huge or hostile, or a
    hostile grid axis added."""
    out = []
    for _ in range(count):
        lines = TUNED_TINY.strip().splitlines()
        for _ in range(rng.randint(1, 2)):
            if rng.random() < 0.7:
                line = rng.choice(sorted(SIZE_EDITS))
                if line in lines:
                    lines[lines.index(line)] = rng.choice(SIZE_EDITS[line])
            else:
                lines.insert(lines.index("[grid]") + 1, rng.choice(SIZE_AXES))
        out.append("\n".join(lines).encode())
    return out


def _folder_damages(rng: random.Random, results: Path, root: Path, count: int) -> list[Path]:
    """Copies of a results folder, each damaged at random: files truncated, replaced by
    noise, deleted, or meta.json values of the wrong type."""
    files = sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file())
    folders = []
    for n in range(count):
        copy = root / f"damaged-{n}"
        shutil.copytree(results, copy)
        for _ in range(rng.randint(1, 2)):
            victim = copy / rng.choice(files)
            if not victim.exists():
                continue
            data = victim.read_bytes()
            how = rng.random()
            if how < 0.3:
                victim.write_bytes(data[: rng.randrange(max(len(data), 1))])
            elif how < 0.5:
                victim.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(64))))
            elif how < 0.7:
                victim.unlink()
            elif victim.name == "meta.json":
                meta = json.loads(data)
                key = rng.choice(sorted(meta))
                meta[key] = rng.choice([None, 3, "x", [], {}, [1, "a"]])
                victim.write_text(json.dumps(meta))
            else:
                victim.write_bytes(data.replace(b"tanh", b"\xff\xfe"))
        folders.append(copy)
    return folders


def _snapshot(root: Path, skip: set[Path]) -> dict[Path, bytes]:
    return {
        p: p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not any(s in p.parents for s in skip)
    }


# Plugin files that end the process in every way plugin code can, where plugins load
PLUGIN_EXITS = {
    "os-exit-at-import": "import os\nos._exit(0)\n",
    "sys-exit-at-import": "import sys\nsys.exit(0)\n",
    "os-exit-in-a-hook": (
        "import os\nfrom benchinit import hookimpl\n\n"
        "@hookimpl\ndef benchinit_activations():\n    os._exit(0)\n"
    ),
    "base-exception-in-a-hook": (
        "from benchinit import hookimpl\n\nclass Boom(BaseException):\n    pass\n\n"
        "@hookimpl\ndef benchinit_datasets():\n    raise Boom()\n"
    ),
}


@pytest.mark.slow
def test_fuzz_every_damaged_input_ends_with_a_documented_exit_and_no_traceback(
    results, tmp_path, monkeypatch
):
    rng = random.Random(20261129)
    bystander = tmp_path / "bystander"  # files of the user's that nothing may touch
    bystander.mkdir()
    (bystander / "index.html").write_text("mine")
    (bystander / "data.csv").write_text("1,2,3")
    cases: list[tuple[str, list[str]]] = []
    sized = random.Random(20)  # its own stream: the cases above stay what they were
    mutations = [*_study_mutations(rng, 30), *_size_mutations(sized, 12)]
    for n, text in enumerate(mutations):
        path = tmp_path / f"study-{n}.toml"
        path.write_bytes(text)
        out = tmp_path / f"out-{n}"
        cases.append(("run", ["run", str(path), "--out", str(out), "--quiet", "--no-report"]))
    for name, body in PLUGIN_EXITS.items():
        plugin = tmp_path / f"{name}.py"
        plugin.write_text(body)
        argv = ["run", "seed", "--plugin", str(plugin), "--out", str(tmp_path / f"out-{name}")]
        cases.append(("plugin", argv))
    # where $GITHUB_STEP_SUMMARY may point: a results folder's own files (directly or by a
    # link), a folder, a missing folder (/dev/full: test_outputs.py, which guards the node)
    link = tmp_path / "summary-link.md"
    link.symlink_to(results / "meta.json")
    summaries = [results / n for n in ("meta.json", "study.toml", "index.html")]
    summaries += [link, tmp_path, tmp_path / "missing" / "s.md"]
    (tmp_path / "out-summary").mkdir()
    for target in summaries:
        page = tmp_path / "out-summary" / "c.html"
        cases.append(
            ("summary", [str(target), "compare", str(results), str(results), "--out", str(page)])
        )
    for folder in _folder_damages(rng, results, tmp_path, 15):
        cases.append(("report", ["report", str(folder)]))
        cases.append(
            ("compare", ["compare", str(results), str(folder), "--out", str(folder / "c.html")])
        )
    argv_noise = [
        ["run"],
        ["run", "seed", "--seeds", "x"],
        ["run", "seed", "--jobs", "0", "--out", str(tmp_path / "j")],
        ["run", "seed", "--timeout", "-1", "--out", str(tmp_path / "t")],
        ["compare", str(results)],
        ["compare", str(results), str(results), "--tolerance", "x"],
        ["report"],
        ["list", "gizmos"],
        ["nonsense"],
        ["run", "seed", "--device", "tpu", "--out", str(tmp_path / "d")],
        ["run", str(bystander)],
        ["report", str(bystander)],
        ["compare", str(bystander), str(results)],
        ["run", "seed", "--out", str(bystander)],
        ["run", "seed", "--set", "model.depth", "--out", str(tmp_path / "s")],
        # grid values that one setting with no effect makes one configuration (issue 20)
        [
            "run",
            "seed",
            "--set",
            "model.depth=1",
            "--set",
            'grid."model.residual"=[false, 1]',
            "--out",
            str(tmp_path / "r"),
        ],
        # batch norm over batches of one sample (issue 20)
        [
            "run",
            "mnist-mlp",
            "--set",
            'model.norm="batch"',
            "--set",
            "train.batch_size=1",
            "--out",
            str(tmp_path / "b"),
        ],
        # numbers that size something, and a signal study's validation axis
        ["run", "seed", "--seeds", str(HUGE), "--out", str(tmp_path / "h")],
        ["run", "seed", "--threads", "99999999", "--out", str(tmp_path / "h")],
        ["run", "seed", "--set", f"model.depth={HUGE}", "--out", str(tmp_path / "h")],
        ["run", "seed", "--set", "grid.data.validation=[0.1]", "--out", str(tmp_path / "h")],
    ]
    cases += [("argv", argv) for argv in argv_noise]
    before = _snapshot(tmp_path, set())
    kept = _snapshot(results, set())
    seen = {"run": 0, "report": 0, "compare": 0, "argv": 0, "plugin": 0, "summary": 0}
    for kind, argv in cases:
        if kind == "summary":
            monkeypatch.setenv("GITHUB_STEP_SUMMARY", argv.pop(0))
        if kind in ("plugin", "run", "argv"):  # a process-ending exit or a huge number
            # that were not refused end the child (its memory limited), never pytest
            status, err = in_child(lambda argv=argv: run_cli(*argv), memory=2**31)
        else:
            status, err = run_cli(*argv)
        monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
        if kind in ("plugin", "summary"):
            assert status == 2, (argv, status, err)
        assert status in (0, 1, 2), (argv, status, err)
        assert "Traceback" not in err, (argv, err)
        if status == 2:
            assert err.strip(), (argv, "an exit 2 says why")
        seen[kind] += 1
    assert len(cases) >= 50 and all(seen.values()), seen
    assert _snapshot(results, set()) == kept, "a results folder is never another's output"
    after = _snapshot(tmp_path, set())
    for path, content in before.items():
        rel = path.relative_to(tmp_path)
        # report writes its page, and a summary where the folder's is missing or damaged
        pages = {"index.html", "c.html", "summary.json"}
        written = rel.parts[0].startswith("out-") or path.name in pages
        if not written or rel.parts[0] == "bystander":
            assert after.get(path) == content, f"{rel} was changed"


def test_fuzz_load_results_raises_only_documented_errors(results, tmp_path):
    rng = random.Random(7)
    for folder in _folder_damages(rng, results, tmp_path, 20):
        with contextlib.suppress(ResultsError):  # documented; anything else fails the test
            load_results(folder)


# --- smaller findings -------------------------------------------------------------------


def test_a_key_without_a_section_suggests_the_section_that_has_it():
    status, err = run_cli("run", "seed", "--set", "seeds=1e9")
    assert_clear_error(status, err, "study.seeds=")
    assert "model.seeds" not in err


def test_ctrl_c_says_what_it_left_behind_for_each_command(monkeypatch, results):
    import benchinit.report.page

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchinit.report.page, "render_report", interrupted)
    status, err = run_cli("report", str(results))
    assert status == 130 and "the report was not written" in err
    assert "finished cells are saved" not in err


def test_plugin_docs_lose_their_restructuredtext_markup_in_list(tmp_path, capsys):
    plugin = tmp_path / "marked.py"
    plugin.write_text(
        "from benchinit import Initializer, hookimpl\n"
        "def marked(weight, generator, activation):\n"
        '    """Fills with ``value`` like :func:`torch.nn.init.zeros_`."""\n'
        "    weight.zero_()\n"
        "@hookimpl\n"
        "def benchinit_initializers():\n"
        "    return [Initializer('marked', marked)]\n"
    )
    assert main(["list", "initializers", "--plugin", str(plugin)]) == 0
    line = next(
        x for x in capsys.readouterr().out.splitlines() if x.startswith("initializer  marked")
    )
    assert "Fills with value like torch.nn.init.zeros_." in line and "``" not in line


@pytest.mark.slow
def test_many_cells_run_under_a_low_file_descriptor_limit(tmp_path):
    study = tmp_path / "many.toml"
    study.write_text(
        TINY.replace("seeds = 2", "seeds = 150").replace('name = "tiny"', 'name = "many"')
    )
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "from benchinit.cli import main\n"
        f"sys.exit(main(['run', {str(study)!r}, '--out', 'out', '--quiet', '--no-report', "
        "'--jobs', '1']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert len(load_results(tmp_path / "out").runs) == 600  # 4 configurations x 150 seeds


def test_a_device_benchinit_does_not_compute_on_is_bad_input(tmp_path):
    status, err = run_cli("run", "seed", "--device", "mps", "--out", str(tmp_path / "o"))
    assert_clear_error(status, err, "'mps'", "cpu or cuda", "--device")
