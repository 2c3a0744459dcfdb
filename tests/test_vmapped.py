"""A plain one-member torch.nn.Module stacked by benchinit.engine.vmapped: stacked equals each
member alone, the conformance kit, a study with it from a plugin file, modules it refuses."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from benchinit import ModelShape, load_results
from benchinit.cli import main
from benchinit.engine.vmapped import VmappedStack, stacked
from benchinit.report.sections import layer_names
from benchinit.testing import check_plugin

F64 = torch.float64
G, B = 3, 4

# The README's plain-module model plugin (its models section shows the same code).
TINYNET = '''
    """TinyNet: a member in plain torch.nn, stacked by benchinit."""
    from torch import nn

    from benchinit import Model, ModelShape, hookimpl
    from benchinit.engine.vmapped import stacked


    class TinyNet(nn.Module):
        """depth 3x3 convolutions of width channels, a 2x2 average pool, a linear head."""

        def __init__(self, shape: ModelShape) -> None:
            super().__init__()
            (c, h, w), n = shape.inputs, shape.width
            self.convs = nn.ModuleList(
                nn.Conv2d(c if i == 0 else n, n, 3, padding=1) for i in range(shape.depth)
            )
            size = n * (h // 2) * (w // 2)  # a signal study asks for no head: 0 outputs
            self.head = nn.Linear(size, shape.outputs) if shape.outputs else nn.Identity()

        def forward(self, x, act):  # x: [B, C, H, W]; act: the study's activation
            for conv in self.convs:
                x = act(conv(x))
            return self.head(nn.functional.avg_pool2d(x, 2).flatten(1))


    @hookimpl
    def benchinit_models():
        return [Model("tinynet", stacked(TinyNet), honours=("depth", "width"), image=True)]
'''


class ConvNet(nn.Module):
    """Two convolutions (the second without a bias), a pool, a linear head."""

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        c, h, w = shape.inputs
        self.conv1 = nn.Conv2d(c, shape.width, 3, padding=1)
        self.conv2 = nn.Conv2d(shape.width, shape.width, 3, padding=1, bias=False)
        self.head = nn.Linear(shape.width * (h // 2) * (w // 2), shape.outputs)

    def forward(self, x: torch.Tensor, act) -> torch.Tensor:
        h = act(self.conv2(act(self.conv1(x))))
        return self.head(nn.functional.avg_pool2d(h, 2).flatten(1))


class Dense(nn.Module):
    """Linear -> LayerNorm (parameters no Linear owns) -> act, Linear -> act, a bias-free head."""

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(shape.inputs[0], shape.width), nn.LayerNorm(shape.width)
        )
        self.mid = nn.Linear(shape.width, shape.width)
        self.head = nn.Linear(shape.width, shape.outputs, bias=False)

    def forward(self, x: torch.Tensor, act) -> torch.Tensor:
        return self.head(act(self.mid(act(self.body(x)))))


SHAPES = {
    ConvNet: ModelShape(members=G, inputs=(2, 6, 6), outputs=5, width=4, dtype="float64"),
    Dense: ModelShape(members=G, inputs=(7,), outputs=3, width=5, dtype="float64"),
}


def traced(act, trace):
    def call(z):
        h = act(z)
        trace.append((z.flatten(1), h.flatten(1)))
        return h

    return call


@pytest.mark.parametrize("net", [ConvNet, Dense], ids=["conv", "dense"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-inputs", "per-member-inputs"])
def test_the_stack_equals_each_member_alone_forward_trace_and_gradients(net, shared):
    shape = SHAPES[net]
    model = stacked(net)(shape)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.4)
    features = math.prod(shape.inputs)
    x = torch.randn((B, features) if shared else (G, B, features), generator=gen, dtype=F64)
    r = torch.randn(G, B, shape.outputs, generator=gen, dtype=F64)
    trace: list = []
    out = model(x, torch.tanh, trace)
    (out * r).sum(2).mean(1).sum().backward()
    assert out.shape == (G, B, shape.outputs) and len(trace) == 2 == model.hidden
    stacked_params = model.stacked_parameters()
    assert len(list(model.parameters())) == len(stacked_params)  # each parameter is the stack's
    for g in range(G):
        single = net(shape).to(F64)
        single.load_state_dict({n: p[g].detach() for n, p in stacked_params.items()})
        own_trace: list = []
        rows = x if shared else x[g]
        own = single(rows.reshape(B, *shape.inputs), traced(torch.tanh, own_trace))
        (own * r[g]).sum(1).mean().backward()
        assert torch.allclose(out[g], own, rtol=0, atol=1e-12)
        assert len(own_trace) == len(trace)
        for (pre, act), (own_pre, own_act) in zip(trace, own_trace, strict=True):
            assert torch.allclose(pre[g], own_pre, rtol=0, atol=1e-12)
            assert torch.allclose(act[g], own_act, rtol=0, atol=1e-12)
        for name, p in stacked_params.items():
            assert torch.allclose(p.grad[g], single.get_parameter(name).grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("net", [ConvNet, Dense], ids=["conv", "dense"])
def test_under_bf16_autocast_the_stack_computes_what_each_member_does(net):
    """The engine's ``bf16``: bfloat16 inputs, float32 weights, CPU autocast (which
    torch.vmap keeps from a convolution: the stack casts as autocast would)."""
    shape = replace(SHAPES[net], dtype="float32")
    model = stacked(net)(shape)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
    x = torch.randn(G, B, math.prod(shape.inputs), generator=gen).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, torch.tanh)
        out.float().sum().backward()
        for g in range(G):
            single = net(shape)
            single.load_state_dict(
                {n: p[g].detach() for n, p in model.stacked_parameters().items()}
            )
            own = single(x[g].reshape(B, *shape.inputs), torch.tanh)
            assert out.dtype == own.dtype == torch.bfloat16
            assert torch.allclose(out[g].float(), own.float(), rtol=2e-2, atol=2e-2)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_layers_kernels_and_biases_follow_the_modules_layers():
    conv = stacked(ConvNet)(SHAPES[ConvNet])
    assert [(s.name, s.kind, s.fan_in, s.fan_out, s.hidden) for s in conv.layer_specs()] == [
        ("conv1", "conv", 2 * 9, 4 * 9, True),
        ("conv2", "conv", 4 * 9, 4 * 9, True),
        ("head", "linear", 4 * 3 * 3, 5, False),
    ]
    assert [tuple(k.shape) for k in conv.kernels] == [(G, 4, 2, 3, 3), (G, 4, 4, 3, 3), (G, 5, 36)]
    assert [tuple(b.shape) for b in conv.biases] == [(G, 4), (G, 5)]  # conv2 has none
    dense = stacked(Dense)(SHAPES[Dense])
    assert [s.name for s in dense.layer_specs()] == ["body.0", "mid", "head"]
    assert [tuple(p.shape) for p in dense.extras] == [(G, 5), (G, 5)]  # LayerNorm's


def test_the_members_keyword_parameters_are_the_plugins():
    from benchinit import Model

    class Sized(nn.Module):
        """One convolution of a chosen kernel, a head."""

        def __init__(self, shape: ModelShape, *, kernel: int = 3) -> None:
            super().__init__()
            self.conv = nn.Conv2d(shape.inputs[0], 4, kernel, padding=kernel // 2)
            self.head = nn.Linear(4 * 36, shape.outputs)

        def forward(self, x: torch.Tensor, act) -> torch.Tensor:
            return self.head(act(self.conv(x)).flatten(1))

    model = Model("sized", stacked(Sized), image=True)
    assert model.doc == "One convolution of a chosen kernel, a head."
    (param,) = model.parameters().values()
    assert (param.name, param.default, param.annotation) == ("kernel", 3, int)
    assert stacked(Sized)(SHAPES[ConvNet], kernel=5).kernels[0].shape == (G, 4, 2, 5, 5)


def test_each_member_draws_its_weights_as_torch_nn_init_would_and_keep_drops():
    from benchinit.plugins.registry import Registry

    registry = Registry(autoload=False)
    init, zeros = (
        registry.bind("initializer", "kaiming_normal"),
        registry.bind("initializer", "zeros"),
    )
    relu = registry.bind("activation", "relu")
    model = stacked(ConvNet)(SHAPES[ConvNet])
    for g in range(G):
        model.initialize_member(g, init, zeros, relu, torch.Generator().manual_seed(g))
    gen = torch.Generator().manual_seed(2)
    for weight in model.kernels:  # member 2's draws, from its own generator, in layer order
        expected = torch.empty(weight.shape[1:], dtype=F64)
        nn.init.kaiming_normal_(expected, nonlinearity="relu", generator=gen)
        assert torch.allclose(weight[2], expected, rtol=0, atol=1e-12)
    assert all((b == 0).all() for b in model.biases)
    view = model.member(2, torch.relu)
    x = torch.randn(B, 72, dtype=F64)
    assert torch.allclose(view.preactivation(2, x), model(x, torch.relu)[2], rtol=0, atol=1e-12)
    view.weights[0].zero_()  # a calibrating initializer changes the stack in place
    assert (model.kernels[0][2] == 0).all() and (model.kernels[0][1] != 0).any()
    model.keep([0, 2])
    assert model.members == 2 and all(p.shape[0] == 2 for p in model.parameters())
    assert (model.kernels[0][1] == 0).all()


def test_train_and_eval_reach_the_member_dropout_and_all():
    class Dropped(nn.Module):
        def __init__(self, shape: ModelShape) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(7, 16), nn.Dropout(0.5), nn.Linear(16, 3))

        def forward(self, x: torch.Tensor, act) -> torch.Tensor:
            return self.net[2](self.net[1](act(self.net[0](x))))

    model, x = stacked(Dropped)(SHAPES[Dense]), torch.randn(B, 7, dtype=F64)
    first, second = model(x, torch.tanh), model(x, torch.tanh)
    assert not torch.equal(first[0], second[0])  # training: each call drops other units
    assert not torch.equal(first[0], first[1])  # and each member its own (randomness)
    model.eval()
    assert torch.equal(model(x, torch.tanh), model(x, torch.tanh))


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_conformance_kit_passes_an_adapted_module(write_plugin):
    module = load(write_plugin(TINYNET, "tinynet_plugin.py"))
    assert check_plugin(module, smoke=False) == ["model tinynet"]


STUDY = """
    [study]
    seeds = [0, 1]
    plugins = ["{plugin}"]
    [data]
    name = "digits"
    [model]
    name = "{model}"
    depth = 2
    width = 4
    [train]
    epochs = 1
    batch_size = 128
    probe_samples = 64
    [grid]
    initializer = ["kaiming_normal", "xavier_uniform"]
    activation = "relu"
    optimizer = "adam"
"""


def test_a_study_trains_an_adapted_module_from_a_plugin_file(write_plugin, write_study, tmp_path):
    plugin = write_plugin(TINYNET, "tinynet_plugin.py")
    out = tmp_path / "o"
    study = write_study(STUDY.format(plugin=plugin.name, model="tinynet"))
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0
    results = load_results(out)
    assert (results.runs["status"] == "ok").all() and len(results.runs) == 4
    assert (results.runs["layer_names"] == "convs.0,convs.1").all()
    loss = results.curves.query("split == 'train' and metric == 'loss'").pivot(
        index="cell", columns="epoch", values="value"
    )
    assert (loss[1] < loss[0]).all()  # it trains
    grads = results.layers.query("metric == 'grad_norm'")
    assert sorted(grads["layer"].unique()) == [1, 2] and grads["value"].notna().all()
    assert layer_names(results) == {1: "convs.0", 2: "convs.1"}  # the report's layer labels
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/") >= 4  # the report rendered, figures and all


SIGNAL = """
    [study]
    kind = "signal"
    seeds = [0, 1]
    plugins = ["{plugin}"]
    [data]
    name = "digits"
    [model]
    name = "tinynet"
    depth = 2
    width = 4
    [grid]
    initializer = ["kaiming_normal", "xavier_uniform"]
    activation = "relu"
"""


def test_a_signal_study_probes_the_adapted_modules_hidden_layers(
    write_plugin, write_study, tmp_path
):
    plugin = write_plugin(TINYNET, "tinynet_plugin.py")
    study = write_study(SIGNAL.format(plugin=plugin.name))
    out = tmp_path / "o"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-report"]) == 0
    results = load_results(out)
    assert (results.runs["status"] == "ok").all()
    assert (results.runs["layer_names"] == "convs.0,convs.1").all()
    for metric in ("preact_std", "act_std", "dead_frac", "grad_norm"):
        values = results.layers.query("metric == @metric")
        assert sorted(values["layer"].unique()) == [1, 2] and values["value"].notna().all()
        if metric == "grad_norm":
            assert (values["value"] > 0).all()  # the readout reaches every hidden layer


BATCHNORM = """
    from torch import nn
    from benchinit import Model, ModelShape, hookimpl
    from benchinit.engine.vmapped import stacked

    class Normed(nn.Module):
        '''A convolution, batch norm, a head.'''

        def __init__(self, shape: ModelShape) -> None:
            super().__init__()
            c, h, w = shape.inputs
            self.conv, self.norm = nn.Conv2d(c, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.head = nn.Linear(4 * h * w, shape.outputs)

        def forward(self, x, act):
            return self.head(act(self.norm(self.conv(x))).flatten(1))

    @hookimpl
    def benchinit_models():
        return [Model("normed", stacked(Normed), honours=("depth", "width"), image=True)]
"""


def test_a_module_with_batch_norm_fails_its_cells_saying_why(write_plugin, write_study, tmp_path):
    with pytest.raises(ValueError, match=r"buffers.*running_mean"):
        VmappedStack(SHAPES[ConvNet], lambda shape: nn.Sequential(nn.BatchNorm1d(3)))
    plugin = write_plugin(BATCHNORM, "normed_plugin.py")
    study = write_study(STUDY.format(plugin=plugin.name, model="normed"))
    out = tmp_path / "o"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-report"]) == 1
    runs = load_results(out).runs
    assert (runs["status"] == "failed").all()
    assert runs["error"].str.contains("batch norm's running statistics do not stack").all()


def test_the_readme_shows_the_tested_plain_module_plugin():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for line in TINYNET.strip().splitlines()[1:]:  # every line of code but the docstring
        assert line.strip() in readme, line


UNTRACED = """
    from torch import nn
    from benchinit import Model, ModelShape, hookimpl
    from benchinit.engine.vmapped import stacked

    class Linear2(nn.Module):
        '''Two linear layers and a head that never call act.'''

        def __init__(self, shape: ModelShape) -> None:
            super().__init__()
            n = shape.width
            self.a, self.b = nn.Linear(shape.inputs[0], n), nn.Linear(n, n)
            self.head = nn.Linear(n, shape.outputs)

        def forward(self, x, act):
            return self.head(self.b(self.a(x)))

    @hookimpl
    def benchinit_models():
        return [Model("untraced", stacked(Linear2), honours=("depth", "width"))]
"""


def test_a_module_that_never_calls_act_fails_its_cells_saying_why(
    write_plugin, write_study, tmp_path
):
    """Its layer statistics would be silently missing (train) or a zip error (signal)."""
    plugin = write_plugin(UNTRACED, "untraced_plugin.py")
    study = write_study(STUDY.format(plugin=plugin.name, model="untraced"))
    out = tmp_path / "o"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-report"]) == 1
    runs = load_results(out).runs
    assert (runs["status"] == "failed").all()
    assert runs["error"].str.contains("traced 0 of its 2 hidden layers").all()
    assert runs["error"].str.contains("call act once per hidden layer").all()


class HeadFirst(nn.Module):
    """Its head registered before the convolution it follows."""

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        c, h, w = shape.inputs
        self.head = nn.Linear(4 * h * w, shape.outputs)
        self.conv = nn.Conv2d(c, 4, 3, padding=1)

    def forward(self, x, act):
        return self.head(act(self.conv(x)).flatten(1))


def test_layers_registered_out_of_running_order_are_refused():
    """Else the head would be taken for a hidden layer: wrong fans, channels and heads."""
    shape = ModelShape(members=2, inputs=(1, 4, 4), outputs=3)
    model = stacked(HeadFirst)(shape)
    with pytest.raises(ValueError, match=r"layer 'head' has 3 outputs.*head last"):
        model(torch.randn(5, 16), torch.relu)
