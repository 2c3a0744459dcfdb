"""Where report, compare, history and index may write (benchinit.results.outputs): never a results
folder's own files, never a file benchinit did not write, links followed, streams written
into; and the same rule through every command."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import runs_frame, write_runs

from benchinit.cli import main
from benchinit.errors import BenchinitError
from benchinit.results.outputs import check_distinct, check_output, write_output


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def pair(tmp_path: Path) -> tuple[Path, Path]:
    values = np.full((2, 3), 0.9) + np.arange(3) * 0.01
    base = write_runs(tmp_path / "base", runs_frame(values))
    new = write_runs(tmp_path / "new", runs_frame(values))
    return base, new


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_file_benchinit_did_not_write_is_never_replaced(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    for fmt in ("html", "json", "markdown"):
        with pytest.raises(BenchinitError, match="was not written by benchinit"):
            write_output(notes, "x", fmt)
    assert notes.read_text() == "precious"
    page = tmp_path / "page.html"
    page.write_text('<html><meta name="generator" content="benchinit compare">old')
    write_output(page, '<meta name="generator" content="benchinit">new', "html")
    assert page.read_text().endswith("new"), "benchinit's own page is replaced"
    empty = tmp_path / "mktemp"
    empty.touch()
    write_output(empty, "{}", "json")
    assert empty.read_text() == "{}", "an empty file holds nothing to lose"


def test_a_results_folder_s_own_files_are_never_an_output(tmp_path):
    base, _ = pair(tmp_path)
    (base / "index.html").write_text('<meta name="generator" content="benchinit">report')
    before = snapshot(base)
    chunk = next((base / "records").iterdir())
    for target in (
        base / "meta.json",
        base / "study.toml",
        chunk / "runs.parquet",
        base / "locks" / "x.json",
        base / "index.html",  # another folder's report is not a compare page's to replace
    ):
        with pytest.raises(BenchinitError, match="is part of the results folder"):
            write_output(target, '"generator": "benchinit"', "json")
    assert snapshot(base) == before
    write_output(base / "index.html", "<p>new report", "html", report=base)
    assert (base / "index.html").read_text() == "<p>new report"


def test_links_are_followed_and_streams_written_into(tmp_path):
    real = tmp_path / "real.json"
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_output(link, "{}", "json")
    assert link.is_symlink() and real.read_text() == "{}"
    # Never write to the real /dev here: tests run as root, and a broken version of this
    # code would replace /dev/null for the whole machine. Checking is enough.
    assert check_output("/dev/null", "json") == Path("/dev/null")
    assert check_output("/dev/stdout", "json") == Path("/dev/stdout")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    write_output(fifo, "through a pipe", "markdown")
    assert reader.communicate(timeout=30)[0] == b"through a pipe"
    assert fifo.is_fifo()


def test_json_to_this_process_s_stdout_prints_also_when_stdout_is_a_file(tmp_path):
    """/proc/self/fd/1 (what /dev/stdout links to): if this code ever regressed to replacing
    the file, procfs would refuse, where /dev/stdout would be replaced machine-wide."""
    base, new = pair(tmp_path)
    out = tmp_path / "out.txt"
    code = (
        "import sys; from benchinit.cli import main; "
        f"sys.exit(main(['compare', {str(base)!r}, {str(new)!r}, '--json', '/proc/self/fd/1']))"
    )
    with open(out, "w") as stdout:
        done = subprocess.run([sys.executable, "-c", code], stdout=stdout, timeout=120)
    assert done.returncode == 0
    text = out.read_text()
    assert out.is_file() and '"generator": "benchinit' in text and "comparisons" in text


def test_two_outputs_of_one_command_may_not_name_one_file(tmp_path):
    with pytest.raises(BenchinitError, match="--json and --markdown name the same file"):
        check_distinct(**{"--json": tmp_path / "x", "--markdown": tmp_path / "x"})
    check_distinct(**{"--json": "/dev/stdout", "--markdown": "/dev/stdout"})


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "{base}", "{new}", "--json", "{victim}/meta.json"],
        ["compare", "{base}", "{new}", "--markdown", "{chunk}/runs.parquet"],
        ["compare", "{base}", "{new}", "--out", "{notes}"],
        ["compare", "{base}", "{new}", "--out", "{x}", "--json", "{x}"],
        ["report", "{base}", "--out", "{victim}/meta.json"],
        ["history", "{base}", "{new}", "--json", "{notes}"],
        ["history", "{base}", "{new}", "--out", "{victim}/index.html"],
        ["index", "{tmp}", "--out", "{notes}"],
    ],
)
def test_every_command_refuses_before_it_overwrites(args, tmp_path, capsys):
    base, new = pair(tmp_path)
    victim = write_runs(tmp_path / "victim", runs_frame(np.ones((1, 2))), name="other")
    (victim / "index.html").write_text('<meta name="generator" content="benchinit">report')
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    chunk = next((victim / "records").iterdir())
    values = {
        "base": base,
        "new": new,
        "victim": victim,
        "chunk": chunk,
        "notes": notes,
        "x": tmp_path / "x.out",
        "tmp": tmp_path,
    }
    before = {**snapshot(victim), str(notes): notes.read_bytes()}
    assert main([a.format(**{k: str(v) for k, v in values.items()}) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("benchinit: error: ") and "Traceback" not in err
    assert "never replaced" in err or "same file" in err
    assert {**snapshot(victim), str(notes): notes.read_bytes()} == before
    assert not (tmp_path / "x.out").exists(), "refused before anything was written"


def test_a_user_s_compare_html_in_new_is_kept(tmp_path, capsys):
    base, new = pair(tmp_path)
    (new / "compare.html").write_text("MINE")
    (new / "history.html").write_text("MINE")
    assert main(["compare", str(base), str(new)]) == 2
    assert main(["history", str(base), str(new)]) == 2
    assert "compare.html' exists and was not written by benchinit" in capsys.readouterr().err
    assert (new / "compare.html").read_text() == (new / "history.html").read_text() == "MINE"
    assert main(["compare", str(base), str(new), "--out", str(tmp_path / "c.html")]) == 0


def test_a_name_near_the_file_system_s_limit_is_written(tmp_path):
    base, new = pair(tmp_path)
    name = "r" * 240 + ".json"
    assert main(["compare", str(base), str(new), "--json", str(tmp_path / name)]) == 0
    assert json.loads((tmp_path / name).read_text())["generator"].startswith("benchinit")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- the step summary: appended to under the same rule ---------------------------------


@pytest.mark.parametrize(
    ("command", "victim"),
    [("compare", "meta.json"), ("history", "study.toml"), ("history", "index.html")],
)
def test_the_step_summary_is_never_a_results_folder_s_file(
    command, victim, tmp_path, monkeypatch, capsys
):
    base, new = pair(tmp_path)
    (base / "index.html").write_text('<meta name="generator" content="benchinit">report')
    before = snapshot(base)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(base / victim))
    page = tmp_path / "page.html"
    assert main([command, str(base), str(new), "--out", str(page)]) == 2
    err = capsys.readouterr().err
    assert "is part of the results folder" in err and "Traceback" not in err
    assert snapshot(base) == before
    assert not page.exists(), "refused before any work"
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert main(["compare", str(base), str(new), "--out", str(page)]) == 0, "still readable"


def test_the_step_summary_never_breaks_a_page_or_json_file_benchinit_wrote(
    tmp_path, monkeypatch, capsys
):
    base, new = pair(tmp_path)
    page, data = tmp_path / "c.html", tmp_path / "c.json"
    assert main(["compare", str(base), str(new), "--out", str(page), "--json", str(data)]) == 0
    before = page.read_bytes(), data.read_bytes()
    for target in (page, data):
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
        assert main(["compare", str(base), str(new), "--out", str(tmp_path / "d.html")]) == 2
        assert "benchinit wrote, and markdown added to its end would break it" in (
            capsys.readouterr().err
        )
    assert (page.read_bytes(), data.read_bytes()) == before
    json.loads(data.read_text())


def test_the_step_summary_follows_links_and_keeps_what_it_holds(tmp_path, monkeypatch):
    base, new = pair(tmp_path)
    real = tmp_path / "summary.md"
    real.write_text("# an earlier step, no newline at the end")  # not benchinit's: kept
    link = tmp_path / "link.md"
    link.symlink_to(real)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(link))
    out, page = tmp_path / "c.md", tmp_path / "c.html"
    assert main(["compare", str(base), str(new), "--markdown", str(out), "--out", str(page)]) == 0
    assert link.is_symlink()
    assert real.read_text() == "# an earlier step, no newline at the end\n" + out.read_text()


def test_the_step_summary_is_written_into_a_pipe(tmp_path, monkeypatch):
    base, new = pair(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(fifo))
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    out, page = tmp_path / "c.md", tmp_path / "c.html"
    try:
        assert (
            main(["compare", str(base), str(new), "--markdown", str(out), "--out", str(page)]) == 0
        )
        assert reader.communicate(timeout=30)[0].decode() == out.read_text()
    finally:
        reader.kill()
    assert fifo.is_fifo(), "the pipe is still a pipe"


@pytest.fixture
def dev_full():
    """/dev/full, put back as the device it is if a broken version of the code under test
    replaced it (tests run as root)."""
    path = Path("/dev/full")
    assert path.is_char_device()
    try:
        yield path
    finally:
        if not path.is_char_device():
            path.unlink()
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
            path.chmod(0o666)  # mknod's mode passed through the umask


def test_a_full_device_as_step_summary_is_a_write_error(dev_full, tmp_path, monkeypatch, capsys):
    base, new = pair(tmp_path)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(dev_full))
    assert main(["compare", str(base), str(new), "--out", str(tmp_path / "c.html")]) == 2
    err = capsys.readouterr().err
    assert "cannot write '/dev/full': No space left on device" in err and "Traceback" not in err
    assert dev_full.is_char_device(), "the device node is never replaced"


def test_the_step_summary_and_markdown_may_not_name_one_file(tmp_path, monkeypatch, capsys):
    base, new = pair(tmp_path)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "s.md"))
    args = ["compare", str(base), str(new), "--markdown", str(tmp_path / "s.md")]
    assert main(args) == 2
    assert "--markdown and $GITHUB_STEP_SUMMARY name the same file" in capsys.readouterr().err


def test_an_append_that_fails_leaves_the_file_as_it_was(tmp_path):
    """Past the file-size limit (like a full disk) the write fails part way: what was
    appended is cut back off, and the error is exit 2's OutputError."""
    summary = tmp_path / "summary.md"
    summary.write_text("kept\n")
    code = f"""
import resource, signal
from benchinit.errors import OutputError
from benchinit.results.outputs import write_output
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_output({str(summary)!r}, "x" * 100_000, "markdown", append=True)
except OutputError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "File too large" in done.stdout, done.stderr
    assert summary.read_text() == "kept\n"
