"""A plain-module model is sized with no ``size`` from its plugin: ``stacked(factory)``'s
``measure`` runs one member on the meta device (parameters, activation units, multiply-adds,
as counted by hand here), falls back to the MLP's arithmetic when the member cannot run
there, and the memory estimate of a TinyNet study grows with its convolution maps."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch
from torch import nn

from benchinit import Data, Dataset, Model, ModelShape, hookimpl, load_study
from benchinit.engine.execute import plan
from benchinit.engine.memory import estimate
from benchinit.engine.model_plugin import member_size
from benchinit.engine.models import mlp_size
from benchinit.engine.vmapped import stacked
from benchinit.plugins.registry import Registry
from tests.test_vmapped import SHAPES, TINYNET, ConvNet, Dense


def test_a_conv_net_and_a_dense_net_are_sized_as_counted_by_hand():
    # ConvNet on 2x6x6, width 4, 5 outputs: conv1 2->4 3x3 with a bias, conv2 4->4 3x3
    # without, a 2x2 pool, a head of 4 * 3 * 3 = 36 -> 5
    params = (4 * 2 * 9 + 4) + 4 * 4 * 9 + (36 * 5 + 5)
    units = 4 * 36 + 4 * 36 + 5  # two maps of 4 x 6 x 6, then the outputs
    macs = 4 * 36 * 2 * 9 + 4 * 36 * 4 * 9 + 36 * 5
    assert stacked(ConvNet).measure(SHAPES[ConvNet]) == (params, units, macs) == (405, 293, 7956)
    # Dense on 7 features, width 5, 3 outputs: 7->5, LayerNorm(5), 5->5, a bias-free 5->3
    params = (7 * 5 + 5) + 2 * 5 + (5 * 5 + 5) + 5 * 3
    assert stacked(Dense).measure(SHAPES[Dense]) == (params, 5 + 5 + 3, 7 * 5 + 5 * 5 + 5 * 3)


def test_grouped_convolutions_count_their_groups_and_the_shape_its_members_not():
    class Grouped(nn.Module):
        def __init__(self, shape: ModelShape) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 8, 3, groups=2, bias=False)  # 4x4 maps out of 6x6
            self.head = nn.Linear(8 * 16, shape.outputs)

        def forward(self, x, act):
            return self.head(act(self.conv(x)).flatten(1))

    shape = ModelShape(members=12, inputs=(4, 6, 6), outputs=3)
    expected = (8 * 2 * 9 + 128 * 3 + 3, 128 + 3, 128 * 2 * 9 + 128 * 3)
    assert stacked(Grouped).measure(shape) == expected


class MetaShy(nn.Module):
    """Runs on real tensors, not on meta ones (``float()`` reads a value)."""

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.body = nn.Linear(shape.inputs[0], shape.width)
        self.head = nn.Linear(shape.width, shape.outputs)

    def forward(self, x, act):
        return self.head(act(self.body(x)) * float(x.abs().max()))


def broken(shape: ModelShape) -> nn.Module:
    raise RuntimeError("cannot build")


class ShyPlugin:
    @hookimpl
    def benchinit_models(self):
        return [Model("shy", stacked(MetaShy)), Model("broken", stacked(broken))]


MODEL = {"depth": 1, "width": 6, "bias": True, "dtype": "float32"}


def test_a_member_that_cannot_run_on_meta_is_sized_as_an_mlp():
    shape = ModelShape(members=1, inputs=(7,), outputs=3, width=6)
    assert stacked(MetaShy)(shape)(torch.randn(2, 7), torch.tanh).shape == (1, 2, 3)
    assert stacked(MetaShy).measure(shape) is None and stacked(broken).measure(shape) is None
    registry = Registry(autoload=False, objects=[(ShyPlugin(), "shy")])
    weights, biases = mlp_size(7, 6, 1, 3)
    for name in ("shy", "broken"):
        model = {**MODEL, "name": {"name": name, "params": {}}}
        assert member_size(registry, model, 7, None, 3) == (weights + biases, 6 + 3, weights)
    assert member_size(registry, MODEL, 7, None, 3) == (weights + biases, 6 + 3, weights)


def images(*, seed: int = 0) -> Data:
    """Forty 28x28 one-channel images, two classes (test plugin)."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(50, 28 * 28, generator=g), torch.arange(50) % 2
    return Data(x[:40], y[:40], x[40:], y[40:], "classification", 2, shape=(1, 28, 28))


class ImagePlugin:
    @hookimpl
    def benchinit_datasets(self):
        return [Dataset("images", images)]


STUDY = """
    [study]
    name = "tiny"
    kind = "train"
    seeds = 1
    [data]
    name = "images"
    validation = 0
    [model]
    name = "tinynet"
    depth = 2
    width = {width}
    [train]
    batch_size = 40
    probe_samples = 40
    [grid]
    initializer = ["kaiming_normal"]
    activation = ["relu"]
"""


def test_a_tinynet_studys_memory_estimate_grows_with_its_conv_maps(write_plugin, tmp_path):
    plugin = write_plugin(TINYNET, "tinynet_plugin.py")
    registry = Registry([plugin], autoload=False, objects=[(ImagePlugin(), "images")])
    found = {}
    for width in (8, 32):
        path = tmp_path / f"tiny{width}.toml"
        path.write_text(textwrap.dedent(STUDY.format(width=width)))
        study = load_study(Path(path), registry=registry)
        (cell,) = study.cells()
        size = member_size(registry, cell.config["model"], 784, (1, 28, 28), 4)
        assert size[1] == 2 * width * 28 * 28 + 4  # two maps of width x 28 x 28, the outputs
        (batch,) = plan(study.cells(), study.registry, device="cpu")
        found[width] = estimate(batch)
    # the activations (2 x 40 rows x units x 2 x 4 bytes) dominate: 4x the units, about 4x
    # the bytes; an MLP of width 8 or 32 would count 20 or 68 units, a few kB either way
    activations = 2 * 40 * (2 * 24 * 28 * 28) * 2 * 4
    assert found[32] - found[8] >= activations
    assert 3.5 < found[32] / found[8] < 4.5


def test_a_member_is_measured_once_per_shape_and_parameters(monkeypatch):
    """The memory check asks per batch and the stack size per group: one build each."""
    from benchinit.engine import vmapped

    calls = []
    real = vmapped.measure
    monkeypatch.setattr(vmapped, "measure", lambda *a, **k: calls.append(a) or real(*a, **k))
    builder = vmapped.stacked(_Counted)
    shape = ModelShape(members=1, inputs=(5,), outputs=2)
    first = builder.measure(shape)
    assert builder.measure(shape) == first and len(calls) == 1
    assert builder.measure(ModelShape(members=1, inputs=(7,), outputs=2)) != first
    assert len(calls) == 2


class _Counted(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.a, self.head = nn.Linear(shape.inputs[0], 3), nn.Linear(3, shape.outputs)

    def forward(self, x, act):
        return self.head(act(self.a(x)))
