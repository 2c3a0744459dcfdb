"""``os._exit`` (and ``sys.exit``) in plugin code, wherever benchinit calls it in its own
process, is the documented error and never a false success: exit 2 naming the plugin
while plugins load, a failed section in a report, failed cells in a run, a problem found
by the conformance kit (benchinit.plugins.guard).

Each case runs in a forked child: were the exit not refused, it would end the child (the
test then fails saying so), never pytest.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from forked import in_child
from synthetic import runs_frame, write_runs

from benchinit import Initializer, hookimpl
from benchinit.cli import main
from benchinit.errors import PluginError


def command(argv: list[str]) -> Callable[[], tuple[int, str]]:
    def call() -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(argv)
        return status, err.getvalue()

    return call


LOADING = {
    "at import": "import os\nos._exit(0)\n",
    "in a hook": (
        "import os\nfrom benchinit import hookimpl\n\n"
        "@hookimpl\ndef benchinit_initializers():\n    os._exit(0)\n"
    ),
}


@pytest.mark.parametrize("where", sorted(LOADING))
def test_os_exit_while_a_plugin_file_loads_is_exit_2_naming_it(where, tmp_path):
    plugin = tmp_path / "leaving.py"
    plugin.write_text(LOADING[where])
    out = tmp_path / "o"
    status, err = in_child(command(["run", "seed", "--plugin", str(plugin), "--out", str(out)]))
    assert status == 2 and "Traceback" not in err
    assert "leaving.py" in err and "os._exit(0)" in err
    assert not out.exists()


def test_os_exit_in_an_entry_point_is_a_plugin_error_naming_it(tmp_path, monkeypatch):
    (tmp_path / "leaving_dist.py").write_text("import os\nos._exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    point = importlib.metadata.EntryPoint("leaving", "leaving_dist", "benchinit")
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [point] if group == "benchinit" else []
    )

    def load() -> str:
        from benchinit.plugins.registry import Registry

        with pytest.raises(PluginError) as info:
            Registry(autoload=True)
        return str(info.value)

    message = in_child(load)
    assert 'Error importing plugin "leaving"' in message and "os._exit(0)" in message


def test_os_exit_while_a_plugin_registers_is_a_plugin_error_naming_it():
    class Sneaky:
        def __dir__(self) -> Any:  # pluggy lists the plugin's attributes
            os._exit(0)

    def load() -> str:
        from benchinit.plugins.registry import Registry

        with pytest.raises(PluginError) as info:
            Registry(autoload=False, objects=[(Sneaky(), "sneaky")])
        return str(info.value)

    message = in_child(load)
    assert "plugin 'sneaky' failed while registering" in message and "os._exit(0)" in message


def test_os_exit_in_a_report_section_is_a_failed_section_and_the_page_is_written(tmp_path):
    folder = write_runs(tmp_path / "out", runs_frame(np.full((2, 3), 0.9)))
    (tmp_path / "sec.py").write_text(
        "import os\nfrom benchinit import hookimpl\n\n"
        "@hookimpl\ndef benchinit_report_sections(results):\n    os._exit(0)\n"
    )

    def report() -> list[dict[str, Any]]:
        from benchinit.plugins.registry import Registry
        from benchinit.report.page import render_report

        render_report(folder, registry=Registry([tmp_path / "sec.py"], autoload=False))
        return json.loads((folder / "sections.json").read_text())

    (section,) = in_child(report)
    assert section["title"].endswith("section failed") and "os._exit(0)" in section["text"]
    assert "section failed" in (folder / "index.html").read_text()


def test_os_exit_in_a_dataset_s_size_while_the_run_plans_fails_its_cells(tmp_path):
    (tmp_path / "sized.py").write_text(
        "import os\nfrom benchinit import Dataset, hookimpl\n"
        "from benchinit.builtin.datasets import gaussian\n\n"
        "def size(**params):\n    os._exit(0)\n\n"
        "@hookimpl\ndef benchinit_datasets():\n"
        "    return [Dataset('sized', gaussian, size=size)]\n"
    )
    study = tmp_path / "study.toml"
    study.write_text(
        '[study]\nkind = "signal"\nseeds = 1\nplugins = ["sized.py"]\n'
        '[data]\nname = "sized"\nsamples = 40\nfeatures = 4\n[model]\ndepth = 1\nwidth = 4\n'
        '[grid]\ninitializer = "kaiming_normal"\nactivation = "relu"\n'
    )
    out = tmp_path / "o"
    argv = ["run", str(study), "--out", str(out), "--quiet", "--no-report", "--jobs", "1"]
    status, err = in_child(command(argv))
    assert status == 1 and "Traceback" not in err, "its cells failed, the run finished"
    from benchinit import load_results

    runs = load_results(out).runs
    assert (runs["status"] == "failed").all() and runs["error"].str.contains("os._exit").all()


def _leave(weight: Any, generator: Any, activation: Any) -> None:
    """Ends the process (a test initializer)."""
    os._exit(0)


class Leaving:
    @hookimpl
    def benchinit_initializers(self) -> list[Initializer]:
        return [Initializer("leaving", _leave)]


def test_os_exit_in_a_checked_plugin_is_a_problem_the_kit_reports():
    def check() -> str:
        from benchinit.testing import check_plugin

        with pytest.raises(AssertionError) as info:
            check_plugin(Leaving(), smoke=False)
        return str(info.value)

    message = in_child(check)
    assert "initializer 'leaving' raised PluginExit" in message and "os._exit(0)" in message


def test_the_guard_nests_holds_in_any_thread_and_is_lifted_after():
    from benchinit.plugins.guard import PluginExit, plugin_code

    def body() -> list[str]:
        real = os._exit
        caught: list[str] = []

        def thread() -> None:
            with plugin_code(), plugin_code():
                try:
                    os._exit(5)
                except PluginExit as exc:
                    caught.append(str(exc))
            caught.append("inner closed, thread done")

        with plugin_code():
            worker = threading.Thread(target=thread)
            worker.start()
            worker.join()
            try:
                os._exit(6)
            except PluginExit as exc:
                caught.append(str(exc))
        caught.append(f"lifted: {os._exit is real}")
        return caught

    assert in_child(body) == [
        "plugin code called os._exit(5) (the process was kept alive)",
        "inner closed, thread done",
        "plugin code called os._exit(6) (the process was kept alive)",
        "lifted: True",
    ]


def test_an_unguarded_thread_exits_for_real_while_another_is_guarded(tmp_path):
    """The guard refuses only the exits of the code it guards."""
    from benchinit.plugins.guard import plugin_code

    mark = tmp_path / "mark"

    def body() -> str:
        with plugin_code():
            thread = threading.Thread(target=lambda: os._exit(0))
            thread.start()
            thread.join()
            mark.write_text("the process went on")
        return "went on"

    with pytest.raises(AssertionError, match="without an answer"):
        in_child(body)
    assert not mark.exists()
