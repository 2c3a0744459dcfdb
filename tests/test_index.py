"""``benchinit index DIR``: one page listing every results folder under DIR, correct for
healthy folders, honest about damaged ones, escaping every study-supplied string."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from htmlcheck import Page, assert_no_live_markup
from reportdata import HOSTILE, write_results, write_runs_tree

from benchinit import load_results
from benchinit.cli import main
from benchinit.gate.index import find_results, write_index


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_runs_tree(root)
    assert main(["index", str(root)]) == 0
    return root


def _rows(page: Page, html: str) -> list[str]:
    body = html[html.index("<tbody>") : html.index("</tbody>")]
    return body.split("<tr>")[1:]


def test_every_results_folder_is_found_and_nothing_else(runs):
    names = sorted(p.relative_to(runs).as_posix() for p in find_results(runs))
    assert names == [
        "course/failing",
        "course/mnist",
        "damaged/binary-meta",
        "damaged/corrupt-records",
        "damaged/list-meta",
        f"odd {HOSTILE[:8]}",
    ]


def test_healthy_sets_are_listed_correctly_newest_first(runs):
    html = (runs / "index.html").read_text()
    rows = _rows(Page(html), html)
    assert len(rows) == 6
    assert "failing" in rows[1] and "mnist-mlp" in rows[2], "newest first"
    mnist = rows[2]
    best = load_results(runs / "course" / "mnist").summary().iloc[0]
    assert "initializer=kaiming_normal" in mnist and f"{best['mean']:.4g}" in mnist
    assert "3 seeds" in mnist and ">9<" in mnist and "2.13.0" in mnist  # 9 cells ok
    assert 'href="course/mnist/index.html"' in mnist
    failing = rows[1]
    assert '<td class="num failed">2</td>' in failing and '<td class="num ok">2</td>' in failing
    assert "(no report)" in failing and "href" not in failing


def test_damaged_folders_are_listed_with_their_problem(runs):
    html = (runs / "index.html").read_text()
    rows = _rows(Page(html), html)
    damaged = rows[3:]
    assert [r.split("</td>")[0].rsplit(">", 1)[-1] for r in damaged] == [
        "damaged/binary-meta",
        "damaged/corrupt-records",
        "damaged/list-meta",
    ]
    assert "not UTF-8" in damaged[0]
    assert "corrupt or unreadable" in damaged[1]
    assert "must be a JSON object, got list" in damaged[2]
    assert "3 damaged" in Page(html).text("summary")


def test_every_study_supplied_string_is_escaped(runs):
    html = (runs / "index.html").read_text()
    page = Page(html)
    assert_no_live_markup(page)
    assert "<script>alert" not in html and "<img src=x" not in html
    for prefix in ("n", "t", "d", "v"):  # study name, title, device, torch
        assert f"{prefix}&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    links = [a["href"] for t, a in page.elements if t == "a" and a.get("href")]
    assert "odd%20%3Cscript%3E/index.html" in links, "a folder name is a relative URL, quoted"


def test_every_link_leads_to_a_report(runs):
    page = Page((runs / "index.html").read_text())
    from urllib.parse import unquote

    links = [
        a["href"] for t, a in page.elements if t == "a" and (a.get("href") or "").endswith(".html")
    ]
    assert len(links) == 2
    for link in links:
        assert (runs / unquote(link)).is_file()


def test_index_elsewhere_links_relative_to_where_it_is(runs, tmp_path):
    out = runs / "course" / "all.html"
    write_index(runs, out=out)
    assert 'href="mnist/index.html"' in out.read_text()


def test_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    write_results(tmp_path / "one", {"initializer": ["a", "b"]})
    (tmp_path / "index.html").write_text("<html>my own page</html>")
    assert main(["index", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "was not written by benchinit's index" in err and "--out" in err
    assert (tmp_path / "index.html").read_text() == "<html>my own page</html>"
    assert main(["index", str(tmp_path / "one")]) == 2, "a results folder's index is its report"
    assert "is a results folder" in capsys.readouterr().err
    assert main(["index", str(tmp_path), "--out", str(tmp_path / "runs.html")]) == 0
    assert main(["index", str(tmp_path), "--out", str(tmp_path / "runs.html")]) == 0, "its own"
    assert main(["index", str(tmp_path / "missing")]) == 2


def test_an_empty_folder_gives_an_empty_index(tmp_path):
    page = write_index(tmp_path)
    assert "0 result sets" in Page(page.read_text()).text("summary")


def test_a_results_folder_meta_file_with_keys_missing(tmp_path):
    folder = write_results(tmp_path / "x", {"initializer": ["a"]})
    meta = json.loads((folder / "meta.json").read_text())
    del meta["study"]["title"]
    (folder / "meta.json").write_text(json.dumps(meta))
    html = write_index(tmp_path).read_text()
    assert "key &#39;study.title&#39; is missing" in html


def test_rows_are_one_line_with_the_main_metric_first_and_no_empty_column(tmp_path):
    write_results(tmp_path / "one", {"initializer": ["a", "b"]})
    html = write_index(tmp_path).read_text()
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    assert "problem" not in headers, "no folder is damaged: no problem column"
    assert headers.index("best (95% CI)") < headers.index("title") < len(headers)
    assert headers[:4] == ["folder", "study", "main metric", "best (95% CI)"]
    assert 'class="sortable one-line"' in html
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    (tmp_path / "two" / "meta.json").write_text("[]")
    damaged = re.findall(r"<th[^>]*>([^<]*)</th>", write_index(tmp_path).read_text())
    assert damaged[-1] == "problem"
