"""The report in a real headless Chromium: no console errors, no network, images decode,
the leaderboard sorts on a click. Saves a screenshot to tests/artifacts/.

Needs Debian's chromium (/usr/bin/chromium) and playwright (pip; its own browser download is
not used). Skipped where either is missing unless BENCHINIT_REQUIRE_BROWSER=1, which .ci/run
sets so CI can never skip it silently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchinit import load_study, run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or CHROMIUM is None:
        if os.environ.get("BENCHINIT_REQUIRE_BROWSER"):
            pytest.fail("BENCHINIT_REQUIRE_BROWSER is set but chromium or playwright is missing")
        pytest.skip("needs Debian's chromium and the playwright package")
    return sync_playwright


@pytest.fixture(scope="module")
def seed_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seed-report")
    outcome = run(load_study("seed"), out, progress=False, command=["benchinit", "run", "seed"])
    return outcome.report


def test_report_in_headless_chromium(seed_report, artifacts):
    sync_playwright = _playwright()
    url = seed_report.resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")

        page.screenshot(path=str(artifacts / "report.png"), full_page=False)  # as first seen
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])"
        )
        assert len(images) >= 8
        assert all(done and width > 0 for done, width, _ in images), images

        def column(index: int) -> list[str]:
            return page.eval_on_selector_all(
                "#leaderboard-table tbody tr",
                f"rows => rows.map(r => r.cells[{index}].textContent.trim())",
            )

        headers = page.eval_on_selector_all(
            "#leaderboard-table thead th", "hs => hs.map(h => h.textContent.trim())"
        )
        metric = headers.index("act_entropy")
        initializer = headers.index("initializer")
        before = [float(v) for v in column(metric)]
        assert before == sorted(before, reverse=True), "ranked best first"
        page.click(f"#leaderboard-table thead th:nth-child({metric + 1})")
        ascending = [float(v) for v in column(metric)]
        assert ascending == sorted(before)
        page.click(f"#leaderboard-table thead th:nth-child({metric + 1})")
        assert [float(v) for v in column(metric)] == sorted(before, reverse=True)
        page.click(f"#leaderboard-table thead th:nth-child({initializer + 1})")
        names = column(initializer)
        assert names == sorted(names, key=str.lower)

        page.screenshot(path=str(artifacts / "report-full.png"), full_page=True)
        browser.close()
    assert errors == []
    others = [r for r in requests if not (r.startswith("data:") or r == url)]
    assert others == [], f"the report fetched {others}"


@pytest.fixture(scope="module")
def history_page(tmp_path_factory) -> Path:
    """Three synthetic nightly runs (hostile title and labels, a planted regression and a
    torch change in the last), each with a report to link to."""
    from test_history import write_series

    from benchinit.series import history

    root = tmp_path_factory.mktemp("history")
    runs = write_series(root, drop_last=0.05)
    return history(runs, out=root / "history.html").html


def test_history_page_in_headless_chromium(history_page, artifacts):
    sync_playwright = _playwright()
    url = history_page.resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert len(images) == 1 and all(done and width > 0 for done, width in images), images
        assert page.title().startswith("History gate")
        assert "<script>alert(1)</script>" in page.inner_text("h1")  # shown, not run
        assert "the gate fails" in page.inner_text("#last-step")

        def column(index: int) -> list[str]:
            return page.eval_on_selector_all(
                "#history-verdicts tbody tr",
                f"rows => rows.map(r => r.cells[{index}].textContent.trim())",
            )

        headers = page.eval_on_selector_all(
            "#history-verdicts thead th", "hs => hs.map(h => h.textContent.trim())"
        )
        verdict = headers.index("verdict")
        assert column(verdict)[0] == "regressed"  # regressions first
        page.click(f"#history-verdicts thead th:nth-child({headers.index('difference') + 1})")
        diffs = [float(v) for v in column(headers.index("difference"))]
        assert diffs == sorted(diffs)
        page.screenshot(path=str(artifacts / "history-full.png"), full_page=True)
        hrefs = page.eval_on_selector_all("#runs-table a", "links => links.map(a => a.href)")
        assert [h.rsplit("/", 2)[-2] for h in hrefs] == ["night1", "night2", "night3"]
        browser.close()
    assert errors == []
    others = [r for r in requests if not (r.startswith("data:") or r == url)]
    assert others == [], f"the history page fetched {others}"
