"""Compaction: a folder's chunks merged into one file per table, crash-safely, and the read
side that reads only what it needs (summary.json for the index, lazy tables)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from synthetic import write_signal

from benchinit import load_results, load_study, run
from benchinit.cli import main
from benchinit.gate.index import entry
from benchinit.results.compaction import compact
from benchinit.results.folder_summary import read_summary, settle, write_summary
from benchinit.results.schema import COLUMNS, conform
from benchinit.results.store import Store

TABLES = ("runs", "curves", "layers", "histograms", "spectra", "tuning")


def units(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "records").iterdir() if not p.name.startswith("."))


def everything(folder: Path) -> dict[str, pd.DataFrame]:
    """Every table as load_results gives it, and every stored record's status."""
    results = load_results(folder, all_cells=True)
    tables = {t: getattr(results, t) for t in TABLES}
    statuses = Store(folder).statuses()
    tables["statuses"] = statuses.sort_values(["chunk", "cell"]).reset_index(drop=True)
    return tables


def assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for name, frame in want.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name)


def _retry_record(store: Store, cell: str, status: str, code: str) -> None:
    """Another record of ``cell``, as a rerun with other code writes it."""
    runs = pd.DataFrame(
        {"cell": [cell], "initializer": ["init0"], "seed": [0], "status": [status]}
    ).assign(error="boom" if status == "failed" else "", code=code, std_drift=0.5)
    empty = {t: conform(t, pd.DataFrame(columns=list(COLUMNS[t]))) for t in COLUMNS}
    store.write({**empty, "runs": conform("runs", runs)})


@pytest.fixture
def old_folder(tmp_path) -> Path:
    """A folder as benchinit wrote them before compaction: 4 chunks, one cell recorded
    twice (a newer code's failed record supersedes the ok one)."""
    folder = tmp_path / "old"
    write_signal(folder, configs=3, seeds=4, chunk=4, layers=2, bins=4)
    _retry_record(Store(folder), f"{0:016x}", "failed", "newer")
    return folder


def test_compaction_keeps_every_table_and_record(old_folder):
    before = everything(old_folder)
    assert len(units(old_folder)) == 4
    assert before["runs"].set_index("cell").loc[f"{0:016x}", "status"] == "failed"
    placed = compact(old_folder)
    assert placed is not None and units(old_folder) == [placed.name]
    assert_same(everything(old_folder), before)
    assert compact(old_folder) is None, "one unit: nothing to merge"


def _kill_at(folder: Path, step: int) -> None:
    """Compact ``folder`` in a forked child that ends abruptly at hook call ``step``."""
    pid = os.fork()
    if pid == 0:
        calls = iter(range(10_000))

        def hook(name: str) -> None:
            if next(calls) == step:
                os._exit(0)

        try:
            compact(folder, hook=hook)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_a_kill_at_every_step_loses_nothing_and_duplicates_nothing(old_folder, tmp_path):
    before = everything(old_folder)
    steps: list[str] = []
    probe = tmp_path / "probe"
    shutil.copytree(old_folder, probe)
    compact(probe, hook=steps.append)
    assert steps[:2] == ["written", "placed"] and len(steps) == 2 + 2 * 4
    for step in range(len(steps)):
        victim = tmp_path / f"kill-{step}"
        shutil.copytree(old_folder, victim)
        _kill_at(victim, step)
        assert_same(everything(victim), before)  # read as it was left
        compact(victim)  # the next compaction finishes the work
        assert len(units(victim)) == 1
        assert not list((victim / "records").glob(".retired-*"))
        assert_same(everything(victim), before)


def test_compactions_that_overlap_count_each_chunk_once(old_folder):
    """Two compacted units covering the same chunks (two processes without the lock, or a
    kill after placing) and chunks written after: each record read once."""
    _kill_at(old_folder, 1)  # placed, nothing retired
    _retry_record(Store(old_folder), f"{1:016x}", "ok", "newer")
    want = everything(old_folder)
    _kill_at(old_folder, 1)  # a second unit covering the first, its chunks and the new one
    assert sum(n.startswith("compact-") for n in units(old_folder)) == 2
    assert_same(everything(old_folder), want)
    compact(old_folder)
    assert len(units(old_folder)) == 1
    assert_same(everything(old_folder), want)


def test_reading_while_a_run_writes_and_compacts(tmp_path):
    """A reader never sees a record twice or misses a stored one while chunks arrive and
    another process compacts them away under it."""
    folder = tmp_path / "live"
    write_signal(folder, configs=1, seeds=2, chunk=1, layers=1, bins=2)
    store = Store(folder)
    pid = os.fork()
    if pid == 0:
        try:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                compact(folder)
        finally:
            os._exit(0)
    try:
        for n in range(2, 25):
            runs = pd.DataFrame({"cell": [f"new{n:04d}"], "initializer": ["init0"]})
            runs = runs.assign(seed=n, status="ok", std_drift=1.0)
            layers = pd.DataFrame(
                {"cell": [f"new{n:04d}"], "phase": "init", "layer": 1, "metric": "m", "value": 1.0}
            )
            empty = {t: conform(t, pd.DataFrame(columns=list(COLUMNS[t]))) for t in COLUMNS}
            empty |= {"runs": conform("runs", runs), "layers": conform("layers", layers)}
            store.write(empty)
            seen = load_results(folder, all_cells=True)
            assert seen.runs["cell"].is_unique and len(seen.runs) == n + 1
            assert len(seen.layers) == 5 * 2 + n - 1
    finally:
        os.waitpid(pid, 0)
    compact(folder)
    assert len(units(folder)) == 1 and len(load_results(folder, all_cells=True).runs) == 25


def test_a_run_into_an_old_folder_compacts_it_and_resumes(tmp_path, monkeypatch):
    study = load_study("seed", ["grid.initializer=['zeros']", "grid.activation=['relu','tanh']"])
    out = tmp_path / "out"
    with monkeypatch.context() as patched:  # as benchinit wrote folders before compaction
        patched.setattr("benchinit.execution.runner.settle", lambda path: None)
        first = run(study, out, report=False, progress=False, jobs=1)
    assert len(units(out)) > 1 and not (out / "summary.json").exists()
    before = everything(out)
    grown = load_study(
        "seed", ["grid.initializer=['zeros']", "grid.activation=['relu','tanh','sigmoid']"]
    )
    again = run(grown, out, report=False, progress=False, jobs=1)
    cells = len(first.results.runs)
    assert again.reused == cells and again.computed == cells // 2
    assert len(units(out)) == 1 and units(out)[0].startswith("compact-")
    after = everything(out)
    old = before["runs"]["cell"]
    for table in ("runs", "layers", "histograms"):
        kept = after[table][after[table]["cell"].isin(old)].reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, before[table], obj=table)
    assert run(grown, out, report=False, progress=False, jobs=1).computed == 0


def test_the_index_reads_the_summary_and_falls_back_to_the_runs(old_folder, tmp_path):
    settle(old_folder)
    meta = Store(old_folder).meta()
    assert read_summary(old_folder, meta) is not None
    from_summary = entry(old_folder, tmp_path, tmp_path / "index.html")
    (old_folder / "summary.json").unlink()
    from_runs = entry(old_folder, tmp_path, tmp_path / "index.html")
    assert from_summary == from_runs and not from_runs.problem
    assert from_runs.counts == {"ok": 11, "diverged": 0, "failed": 1}
    assert from_runs.best.startswith("initializer=init") and from_runs.seeds in (3, 4)
    write_summary(old_folder)
    # a record added since (another run into the folder): the summary no longer counts
    _retry_record(Store(old_folder), f"{1:016x}", "failed", "newest")
    assert read_summary(old_folder, meta) is None
    assert entry(old_folder, tmp_path, tmp_path / "index.html").counts["failed"] == 2


def test_the_index_reads_no_record_while_the_summary_holds(old_folder, tmp_path):
    settle(old_folder)
    (unit,) = units(old_folder)
    (old_folder / "records" / unit / "runs.parquet").write_bytes(b"not parquet")
    listed = entry(old_folder, tmp_path, tmp_path / "index.html")
    assert not listed.problem and listed.counts["ok"] == 11
    (old_folder / "summary.json").unlink()
    assert "corrupt or unreadable" in entry(old_folder, tmp_path, tmp_path / "x.html").problem


def test_tables_load_on_first_access_and_compare_reads_only_runs(old_folder, tmp_path):
    settle(old_folder)
    (unit,) = units(old_folder)
    (old_folder / "records" / unit / "layers.parquet").write_bytes(b"not parquet")
    results = load_results(old_folder)
    assert len(results.runs) == 12 and results.tables == {}
    same = [str(old_folder), str(old_folder)]
    assert main(["compare", *same, "--out", str(tmp_path / "c.html")]) == 0
    assert main(["history", str(old_folder), "--out", str(tmp_path / "h.html")]) == 0
    assert len(results.histograms) == 3 * 4 * 2 * 4 - 2 * 4, "read when asked"
    with pytest.raises(Exception, match="corrupt or unreadable"):
        _ = results.layers


def test_compact_command(old_folder, tmp_path, capsys):
    before = everything(old_folder)
    assert main(["compact", str(old_folder)]) == 0
    assert len(units(old_folder)) == 1 and (old_folder / "summary.json").is_file()
    assert_same(everything(old_folder), before)
    assert main(["compact", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
