"""The report off the happy path (issue 9): grid axes pandas would rename, studies where
nothing varies or nothing finished, stored plugin sections that are hostile or damaged,
huge plugin tables, and a fuzz of damaged result folders. Every input ends in a page or
in exit status 2 with one paragraph naming the file; never a traceback."""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from htmlcheck import Page, assert_no_live_markup
from reportdata import write_results

from benchinit.cli import main
from benchinit.plugins.descriptors import ReportSection
from benchinit.report.page import render_report
from benchinit.report.plugin_sections import MAX_ROWS, fresh

# Every kind of name pandas' itertuples() renames: dots, spaces, leading digits, keywords,
# hyphens, unicode, a leading underscore, and names of tuple methods.
MANGLED = ["model.depth", "a b", "1st", "class", "x-y", "ünï", "_private", "count", "index"]
HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def _report(folder: Path, capsys) -> tuple[int, str]:
    status = main(["report", str(folder)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return status, err


def test_every_axis_name_pandas_would_mangle(tmp_path, capsys):
    varying = ["model.depth", "ünï"]  # facets and heatmap axes among them
    axes = {n: [f"{n}-1", f"{n}-2"][: 2 if n in varying else 1] for n in MANGLED if n != "count"}
    axes["initializer"] = ["kaiming_normal", "xavier_normal"]
    folder = write_results(tmp_path / "mangled", axes, seeds=2)
    status, err = _report(folder, capsys)
    assert status == 0, err
    page = Page((folder / "index.html").read_text())
    table = page.text("leaderboard-table")
    for name, values in axes.items():
        assert name in table and all(v in table for v in values)
    selects = [a for t, a in page.elements if t == "select"]
    assert len(selects) == 3, "every varying grid column can filter the leaderboard"
    assert {"results", "curves", "signal", "histograms"} <= page.ids()


def test_a_grid_axis_named_like_a_report_column_is_bad_input(tmp_path, capsys):
    folder = write_results(tmp_path / "count", {"initializer": ["a", "b"], "count": [1, 2]})
    status, err = _report(folder, capsys)
    assert status == 2 and "meta.json" in err and "count" in err


def test_dotted_axis_of_a_real_run(tmp_path, write_study, capsys):
    study = write_study("""
        [study]
        name = "dotted"
        kind = "train"
        seeds = 1
        [data]
        name = "digits"
        [model]
        width = 16
        [train]
        epochs = 1
        [grid]
        initializer = ["kaiming_normal", "xavier_normal"]
        activation = "relu"
        "model.depth" = [1, 2]
    """)
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    page = Page((tmp_path / "out" / "index.html").read_text())
    assert "model.depth" in page.text("leaderboard-table")
    status, _ = _report(tmp_path / "out", capsys)
    assert status == 0


ONE_CONFIG = {
    "signal": """
        [study]
        name = "one-signal"
        kind = "signal"
        seeds = 2
        [data]
        samples = 64
        features = 8
        [model]
        depth = 4
        width = 8
        [grid]
        initializer = ["kaiming_normal"]
        activation = ["tanh"]
    """,
    "train": """
        [study]
        name = "one-train"
        kind = "train"
        seeds = 2
        [data]
        name = "blobs"
        samples = 100
        [model]
        depth = 2
        width = 8
        [train]
        epochs = 1
        [grid]
        initializer = ["kaiming_normal"]
        activation = ["relu"]
        loss = ["cross_entropy"]
    """,
}


@pytest.mark.parametrize("kind", ["signal", "train"])
def test_one_configuration_renders_every_section(kind, tmp_path, write_study, capsys):
    study = write_study(ONE_CONFIG[kind])
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    page = Page((tmp_path / "out" / "index.html").read_text())
    sections = {"summary", "leaderboard", "signal", "histograms", "reproducibility"}
    assert sections | ({"curves"} if kind == "train" else set()) <= page.ids()
    assert "results" not in page.ids(), "one configuration: nothing to compare"
    assert len(page.tags("img")) >= 4


@pytest.mark.parametrize(
    "setup",
    [
        {"records": False},
        {"status": lambda config, seed: "failed"},
        {"status": lambda config, seed: "diverged"},
    ],
    ids=["no-records", "all-failed", "all-diverged"],
)
def test_zero_finished_cells_still_render(setup, tmp_path, capsys):
    folder = write_results(tmp_path / "none", {"initializer": ["a", "b"]}, **setup)
    status, err = _report(folder, capsys)
    assert status == 0, err
    page = Page((folder / "index.html").read_text())
    assert {"summary", "reproducibility"} <= page.ids()
    assert not {"results", "curves"} & page.ids(), "no figure of what did not finish"
    if "leaderboard-table" in page.ids():  # configurations with their failed/diverged counts
        assert "–" in page.text("leaderboard-table")


def _write_sections(folder: Path, sections: object) -> None:
    (folder / "sections.json").write_text(json.dumps(sections))


def test_stored_sections_are_checked_like_fresh_ones(tmp_path, capsys):
    folder = write_results(tmp_path / "stored", {"initializer": ["a", "b"]})
    sections = [
        {"title": "script figure", "source": "x", "text": "", "figure": "javascript:alert(1)"},
        {"title": "remote figure", "source": "x", "figure": "http://example.com/a.png"},
        {"title": "html figure", "figure": "data:text/html;base64,PHNjcmlwdD4="},
        {
            "title": "remote image in text",
            "text": "![pixel](https://example.com/p.gif) [ok](https://e.org)",
        },
        {"title": f"hostile {HOSTILE}", "text": f"[x](javascript:alert(1)) {HOSTILE}"},
    ]
    _write_sections(folder, sections)
    status, err = _report(folder, capsys)
    assert status == 0, err
    html = (folder / "index.html").read_text()
    page = Page(html)
    assert_no_live_markup(page)
    assert "example.com" not in " ".join(a.get("src") or "" for a in page.tags("img"))
    assert html.count("the figure was left out") == 3
    assert '<a href="https://e.org"' in html, "a web link stays a link (followed, never fetched)"
    assert "[image not loaded: pixel]" in html


@pytest.mark.parametrize(
    "content",
    [
        b"{}",
        b'[{"title": 1}]',
        b'[{"title": "t", "table": 5}]',
        b'[{"title": "t", "table": {"columns": ["a"], "rows": [1, 2]}}]',
        b'[{"title": "t", "figure": ["not", "a", "string"]}]',
        b'[{"title": "t", "text": {"a": 1}}]',
        b'[{"title": "t", "notes": "one"}]',
        b'[{"title": ',
        b"\xff\xfe not utf-8",
    ],
)
def test_a_damaged_sections_file_is_bad_input_naming_it(content, tmp_path, capsys):
    folder = write_results(tmp_path / "damaged", {"initializer": ["a", "b"]}, layers=1)
    (folder / "sections.json").write_bytes(content)
    status, err = _report(folder, capsys)
    assert status == 2 and "sections.json" in err, err


def test_a_huge_plugin_table_is_capped_and_says_so(tmp_path, capsys):
    folder = write_results(tmp_path / "huge", {"initializer": ["a", "b"]}, layers=1)
    big = pd.DataFrame({"i": range(300_000), "x": [-0.0] * 300_000, "s": ["y" * 40] * 300_000})
    _write_sections(folder, [fresh(ReportSection("huge", table=big), "plugin 'huge'")])
    assert (folder / "sections.json").stat().st_size < 200_000
    status, err = _report(folder, capsys)
    assert status == 0, err
    html = (folder / "index.html").read_text()
    assert f"showing the first {MAX_ROWS:,} of 300,000 rows" in html
    assert len(html) < 2_000_000
    assert "<td>-0</td>" not in html and "<td>0</td>" in html


# --- fuzz: generated damaged and hostile result folders -------------------------------

Case = Callable[[Path], Path]


def _tables(edit: Callable[[dict[str, pd.DataFrame]], None], kind: str = "signal") -> Case:
    return lambda folder: write_results(folder, {"initializer": ["a", "b"]}, edit=edit, kind=kind)


def _set(table: str, column: str, value: object) -> Callable[[dict[str, pd.DataFrame]], None]:
    def edit(tables: dict[str, pd.DataFrame]) -> None:
        tables[table][column] = value

    return edit


def _meta(change: Callable[[dict], object]) -> Case:
    def make(folder: Path) -> Path:
        write_results(folder, {"initializer": ["a", "b"]}, layers=1, kind="signal")
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps(change(meta)))
        return folder

    return make


def _write(name: str, content: bytes) -> Case:
    def make(folder: Path) -> Path:
        write_results(folder, {"initializer": ["a", "b"]}, layers=1, kind="signal")
        (folder / name).write_bytes(content)
        return folder

    return make


def _corrupt_chunk(folder: Path) -> Path:
    write_results(folder, {"initializer": ["a", "b"]})
    for chunk in (folder / "records").iterdir():
        (chunk / "layers.parquet").write_bytes(b"PAR1 damaged")
    return folder


def _edit_meta_study(**changes: object) -> Case:
    return _meta(lambda m: {**m, "study": {**m["study"], **changes}})


FUZZ: dict[str, Case] = {
    "odd axis names, one value each": lambda f: write_results(
        f, {"initializer": ["a", "b"], **{n: [1] for n in MANGLED if n != "count"}}
    ),
    "odd axis names, varying": lambda f: write_results(
        f, {"initializer": ["a"], "1st": [1, 2], "x-y": ["p", "q"]}, kind="signal"
    ),
    "hostile strings everywhere": lambda f: write_results(
        f,
        {"initializer": [HOSTILE, "b"], "activation": ["![x](http://e.com/x.png)", "relu"]},
        title=HOSTILE,
        description=f"{HOSTILE} ![img](http://e.com/i.png) [js](javascript:alert(1))",
        status=lambda c, s: "failed" if s == 1 else "ok",
        meta={"environment": {"device": HOSTILE}, "overrides": [HOSTILE]},
    ),
    "NaN main metric": lambda f: write_results(
        f, {"initializer": ["a", "b"]}, value=lambda c, s: math.nan
    ),
    "infinite main metric": lambda f: write_results(
        f, {"initializer": ["a", "b"]}, value=lambda c, s: math.inf
    ),
    "negative zero": lambda f: write_results(
        f, {"initializer": ["a", "b"]}, value=lambda c, s: -0.0
    ),
    "huge values": lambda f: write_results(
        f, {"initializer": ["a", "b"]}, value=lambda c, s: 1e308
    ),
    "NaN layers": _tables(_set("layers", "value", math.nan)),
    "infinite curves": _tables(_set("curves", "value", math.inf), "train"),
    "negative grad norms": _tables(_set("layers", "value", -1.0)),
    "NaN histogram edges": _tables(_set("histograms", "left", math.nan)),
    "zero histogram counts": _tables(_set("histograms", "count", 0)),
    "empty curves": _tables(lambda t: t.update(curves=t["curves"].iloc[:0]), "train"),
    "one layer": lambda f: write_results(f, {"initializer": ["a", "b"]}, layers=1),
    "one seed": lambda f: write_results(f, {"initializer": ["a", "b"]}, seeds=1),
    "mixed-type axis": lambda f: write_results(
        f, {"initializer": ["a", "b"], "model.depth": [1, 2.5, -0.0]}
    ),
    "meta is a list": _meta(lambda m: []),
    "meta lacks study": _meta(lambda m: {k: v for k, v in m.items() if k != "study"}),
    "meta names no axes": _edit_meta_study(axes=[]),
    "meta axis not recorded": _edit_meta_study(axes=["initializer", "nowhere"]),
    "meta axis is a column": _edit_meta_study(axes=["initializer", "seed"]),
    "meta values not lists": _edit_meta_study(values={"initializer": 5}),
    "meta unknown kind": _edit_meta_study(kind="poetry"),
    "meta.json not UTF-8": _write("meta.json", b"\xff\xfe\x00"),
    "study.toml not UTF-8": _write("study.toml", b"\xff\xfe\x00"),
    "huge sections.json table": _write(
        "sections.json",
        json.dumps(
            [{"title": "t", "table": {"columns": ["a"], "rows": [[i] for i in range(20_000)]}}]
        ).encode(),
    ),
    "corrupt chunk": _corrupt_chunk,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FUZZ))
def test_fuzz_every_damaged_input_renders_or_is_bad_input(name, tmp_path, capsys):
    folder = FUZZ[name](tmp_path / "case")
    status, err = _report(folder, capsys)
    assert status in (0, 2), err
    if status == 2:
        assert err.startswith("benchinit: error: ") and err.count("\n") == 1, err
        return
    html = (folder / "index.html").read_text()
    assert_no_live_markup(Page(html))
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]
    assert not [c for c in cells if re.search(r"(?<![\w.])-0(\.0*)?(?![\w.])", c)], "no -0"
    assert "<script>alert" not in html and "http://e.com" not in " ".join(
        a.get("src") or "" for a in Page(html).tags("img")
    )


def test_the_fuzz_is_big_enough():
    assert len(FUZZ) >= 20  # besides the nine damaged sections.json files above


def test_report_writes_where_it_is_told_and_says_why_not(tmp_path, capsys):
    folder = write_results(tmp_path / "w", {"initializer": ["a", "b"]}, records=False)
    assert main(["report", str(folder), "--out", str(tmp_path / "missing" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(folder), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    page = render_report(folder, out=tmp_path / "elsewhere.html")
    assert page.is_file() and textwrap.dedent(page.read_text()).startswith("<!DOCTYPE html>")
