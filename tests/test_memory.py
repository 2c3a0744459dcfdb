"""The size check before a run (benchinit.engine.memory): its estimate follows what runs, and a
dataset plugin whose ``size`` is not a size fails its own cells, never the run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from benchinit import load_study, run
from benchinit.engine.execute import plan
from benchinit.engine.memory import estimate

TRAIN = """
[study]
name = "small"
kind = "train"
seeds = 1
[data]
name = "gaussian"
samples = 200
features = 5
[model]
depth = 1
width = 8
[grid]
initializer = ["xavier_normal"]
activation = ["tanh"]
"""


def _estimate(tmp_path: Path, *overrides: str) -> int:
    path = tmp_path / "small.toml"
    path.write_text(TRAIN)
    study = load_study(path, overrides)
    (batch,) = plan(study.cells(), study.registry, device="cpu")
    return estimate(batch)


@pytest.mark.parametrize("key", ["train.batch_size", "train.probe_samples"])
def test_the_estimate_counts_only_the_training_samples_there_are(tmp_path, key):
    # 200 training samples: a batch or a probe never takes more, however many it asks for
    everything = _estimate(tmp_path, f"{key}=200")
    assert _estimate(tmp_path, f"{key}=100000000000") == everything
    assert everything < 10**8


PLUGIN = '''
import math
import torch
from benchinit import Data, Dataset, hookimpl

SIZES = {
    "ok": (30, 10, 4),
    "strings": ("30", "10", "4"),
    "nan": (math.nan, 10, 4),
    "negative": (-30, 10, 4),
    "float": (30.5, 10, 4),
    "bool": (True, 10, 4),
    "two": (30, 10),
    "none": None,
}


def sized(*, how: str = "ok"):
    """Forty Gaussian samples of four features."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return Data(x[:30], y[:30], x[30:], y[30:], "classification", 2)


@hookimpl
def benchinit_datasets():
    return [Dataset("sized", sized, size=lambda *, how: SIZES[how])]
'''

SIGNAL = """
[study]
name = "sized"
kind = "signal"
seeds = 1
plugins = ["sized.py"]
[data]
name = "sized"
how = "{how}"
[model]
depth = 1
width = 4
[grid]
initializer = ["xavier_normal"]
activation = ["tanh"]
"""


@pytest.mark.parametrize("how", ["strings", "nan", "negative", "float", "bool", "two", "none"])
def test_a_dataset_whose_size_is_not_a_size_fails_its_cells(tmp_path, how):
    (tmp_path / "sized.py").write_text(textwrap.dedent(PLUGIN))
    path = tmp_path / "study.toml"
    path.write_text(SIGNAL.format(how=how))
    outcome = run(load_study(path), tmp_path / "out", report=False, progress=False)
    (row,) = outcome.results.runs.to_dict("records")
    assert row["status"] == "failed"
    assert "size() must return" in row["error"], row["error"]
    assert "sized.py" in row["error"], "the error names the plugin"


def test_a_dataset_with_a_right_size_runs(tmp_path):
    (tmp_path / "sized.py").write_text(textwrap.dedent(PLUGIN))
    path = tmp_path / "study.toml"
    path.write_text(SIGNAL.format(how="ok"))
    outcome = run(load_study(path), tmp_path / "out", report=False, progress=False)
    assert outcome.results.runs["status"].tolist() == ["ok"]


def test_planning_and_the_estimate_load_no_data_when_the_dataset_gives_its_size(tmp_path):
    """A user's number sizes the data (``samples``): it is counted from ``size()`` before
    the plugin is asked to make anything (a train stack's size on a CPU depends on it)."""
    from benchinit import Data, Dataset, hookimpl
    from benchinit.plugins.registry import Registry

    made: list[int] = []

    def counted(*, samples: int = 40) -> Data:
        """Gaussian data that records each time it is made (test plugin)."""
        made.append(samples)
        n = min(samples, 40)  # what it would make, small: the test must never allocate it
        x, y = torch.randn(n + 10, 5), torch.arange(n + 10) % 2
        return Data(x[:n], y[:n], x[n:], y[n:], "classification", 2)

    class Plugin:
        @hookimpl
        def benchinit_datasets(self) -> list[Dataset]:
            return [Dataset("counted", counted, size=lambda samples: (samples, 10, 5))]

    path = tmp_path / "small.toml"
    path.write_text(
        TRAIN.replace('name = "gaussian"', 'name = "counted"').replace("features = 5\n", "")
    )
    registry = Registry(autoload=False, objects=[(Plugin(), "counted")])
    study = load_study(path, ["data.samples=2000000000"], registry=registry)
    (batch,) = plan(study.cells(), study.registry, device="cpu")
    assert estimate(batch) > 2_000_000_000 * 5 * 4, "the data counted in full"
    assert made == [], "and never made"
