"""Models as plugins: the stacked CNN (exactness, fans, probes), the model setting's checks,
and a third-party model from a plugin file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.nn import init

from benchinit import ModelShape, load_results, load_study
from benchinit.cli import main
from benchinit.engine.convnets import StackedCNN
from benchinit.engine.train import train_stack
from benchinit.plugins.registry import Registry
from benchinit.study.cells import group_key
from benchinit.testing import check_plugin

F64 = torch.float64
G, B = 3, 4
SHAPE = ModelShape(members=G, inputs=(2, 8, 8), outputs=5, depth=3, width=4, dtype="float64")

# The README's ten-line third-party model (the README's models section shows the same code).
LENET = '''
    """LeNet-5's kernel: a CNN of 5x5 convolutions, as a model plugin."""
    from benchinit import Model, ModelShape, hookimpl
    from benchinit.engine.convnets import StackedCNN

    def lenet(shape: ModelShape, *, kernel: int = 5) -> StackedCNN:
        """LeNet-like CNN: k x k convolutions (5x5), two average pools, a linear head."""
        return StackedCNN(shape, kernel=kernel)

    @hookimpl
    def benchinit_models():
        return [Model("lenet", lenet, honours=("depth", "width"), image=True)]
'''


def filled(model: StackedCNN, seed: int = 0) -> StackedCNN:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.4)
    return model


def alone(model: StackedCNN, g: int) -> StackedCNN:
    single = StackedCNN(ModelShape(**{**SHAPE.__dict__, "members": 1}), kernel=model.kernel)
    single.load_state_dict({k: v[g : g + 1].clone() for k, v in model.state_dict().items()})
    return single


@pytest.mark.parametrize("shared", [True, False], ids=["shared-inputs", "per-member-inputs"])
def test_stacked_cnn_equals_each_member_alone_forward_and_gradients(shared):
    model = filled(StackedCNN(SHAPE))
    singles = [alone(model, g) for g in range(G)]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((B, 128) if shared else (G, B, 128), generator=gen, dtype=F64)
    r = torch.randn(G, B, 5, generator=gen, dtype=F64)
    trace: list = []
    out = model(x, torch.relu, trace)
    (out * r).sum(2).mean(1).sum().backward()
    assert len(trace) == 3 and trace[0][0].shape == (G, B, 4 * 8 * 8)
    for g, single in enumerate(singles):
        own_trace: list = []
        own = single(x if shared else x[g : g + 1], torch.relu, own_trace)
        (own * r[g : g + 1]).sum(2).mean(1).sum().backward()
        assert torch.allclose(out[g], own[0], rtol=0, atol=1e-12)
        for (pre, act), (own_pre, own_act) in zip(trace, own_trace, strict=True):
            assert torch.allclose(pre[g], own_pre[0], rtol=0, atol=1e-12)
            assert torch.allclose(act[g], own_act[0], rtol=0, atol=1e-12)
        for p, q in zip(model.parameters(), single.parameters(), strict=True):
            assert torch.allclose(p.grad[g], q.grad[0], rtol=0, atol=1e-12)


def test_the_cnn_is_torchs_conv2d_pool_and_linear():
    """Member 0 of the stack computes what torch.nn's layers compute with its weights."""
    model = filled(StackedCNN(SHAPE))
    x = torch.randn(B, 128, generator=torch.Generator().manual_seed(2), dtype=F64)
    h = x.view(B, 2, 8, 8)
    for layer, (_, _, _, pooled) in enumerate(model.plan):
        h = torch.relu(
            torch.nn.functional.conv2d(
                h, model.kernels[layer][0], model.biases[layer][0], padding=1
            )
        )
        h = torch.nn.functional.avg_pool2d(h, 2) if pooled else h
    expected = h.flatten(1) @ model.kernels[-1][0] + model.biases[-1][0]
    assert torch.allclose(model(x, torch.relu)[0], expected, atol=1e-12)
    assert [spec.name for spec in model.layer_specs()] == ["conv1", "conv2", "conv3", "head"]
    assert model.layer_specs()[1].fan_in == 4 * 9 and model.layer_specs()[0].fan_out == 4 * 9


@pytest.mark.parametrize(
    "name, torch_init",
    [
        ("kaiming_normal", lambda w, g: init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
        (
            "kaiming_uniform",
            lambda w, g: init.kaiming_uniform_(w, nonlinearity="relu", generator=g),
        ),
        ("xavier_normal", lambda w, g: init.xavier_normal_(w, generator=g)),
        ("lecun_normal", lambda w, g: init.normal_(w, 0, 1 / math.sqrt(8 * 9), generator=g)),
    ],
)
def test_builtin_initializers_take_conv_fans_as_torch_does(name, torch_init):
    """One member's [out, in, kh, kw] conv weight: fan_in = in * kh * kw, as torch.nn.init."""
    registry = Registry(autoload=False)
    ours, theirs = torch.empty(16, 8, 3, 3), torch.empty(16, 8, 3, 3)
    registry.bind("initializer", name)(
        ours, torch.Generator().manual_seed(3), registry.bind("activation", "relu")
    )
    torch_init(theirs, torch.Generator().manual_seed(3))
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=0)


CNN_STUDY = """
    [study]
    kind = "{kind}"
    seeds = [0, 1]
    [data]
    name = "digits"
    [model]
    name = "cnn"
    depth = 2
    width = 4
    dtype = "float64"
    {extra}
    {train}
    [grid]
    initializer = ["kaiming_normal", "xavier_uniform"]
    activation = "relu"
    {axes}
"""


TRAIN = "[train]\nepochs = 1\nbatch_size = 128\nprobe_samples = 64"


def study_text(kind="train", extra="", axes='optimizer = "sgd(lr=0.1, momentum=0.9)"'):
    train = TRAIN if kind == "train" else ""
    return CNN_STUDY.format(kind=kind, extra=extra, axes=axes, train=train)


def cnn_study(write_study, kind="train", extra="", axes='optimizer = "sgd(lr=0.1, momentum=0.9)"'):
    return write_study(study_text(kind, extra, axes))


def test_training_a_cnn_stack_is_training_each_member_alone(write_study):
    study = load_study(cnn_study(write_study))
    cells = study.cells()
    assert len({group_key(c) for c in cells}) == 1  # one stack of 4
    weights = {}
    for groups in ([range(4)], [[i] for i in range(4)]):
        for group in groups:
            trained = train_stack([cells[i] for i in group], study.registry, torch.device("cpu"))
            for g, cell in enumerate(trained.members):
                weights.setdefault(cell.id, []).append(
                    [w[g].detach() for w in trained.model.weights]
                )
    for stacked, single in weights.values():
        for a, b in zip(stacked, single, strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["train", "signal"])
def test_the_probes_measure_every_conv_layer_and_skip_the_spectrum(write_study, tmp_path, kind):
    axes = "" if kind == "signal" else 'optimizer = "sgd(lr=0.1, momentum=0.9)"'
    out = tmp_path / "out"
    args = ["run", str(cnn_study(write_study, kind, axes=axes)), "--out", str(out), "--quiet"]
    assert main([*args, "--no-report"]) == 0
    results = load_results(out)
    assert (results.runs["status"] == "ok").all()
    layers = results.layers
    assert sorted(layers["layer"].unique()) == [1, 2]
    for metric in ("act_std", "preact_std", "dead_frac", "saturated_frac", "grad_norm"):
        values = layers[layers["metric"] == metric]["value"]
        assert len(values) and values.notna().all(), metric
    dead = layers[(layers["metric"] == "dead_frac") & (layers["phase"] == "init")]["value"]
    # ReLU after a zero-mean convolution: about half, more on the digits' blank margins
    assert dead.between(0.3, 0.95).all()
    assert not layers["metric"].str.startswith("jac_").any()  # no Jacobian for convolutions
    assert not results.histograms.empty


@pytest.mark.parametrize(
    "extra, axes, key",
    [
        ('norm = "batch"', "", "model.norm"),
        ("", '"model.residual" = [false, 0.5]', "grid.model.residual"),
    ],
)
def test_a_setting_the_model_ignores_is_exit_2(write_study, capsys, extra, axes, key):
    path = cnn_study(write_study, extra=extra, axes='optimizer = "adam"\n' + axes)
    assert main(["run", str(path), "--out", str(path.parent / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert key in err and "model 'cnn' does not use it" in err and "Traceback" not in err


def test_an_unknown_model_is_exit_2_with_did_you_mean(write_study, capsys):
    text = '[data]\nname = "digits"\n[model]\nname = "cn"\n[grid]\ninitializer = "zeros"'
    path = write_study(text + '\nactivation = "relu"')
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cnn" in err and "Traceback" not in err


def test_the_default_model_keeps_every_cell_id(write_study):
    text = '[data]\nname = "blobs"\n[model]\n{}\n[grid]\nactivation = "relu"\ninitializer = "zeros"'
    ids = [
        [c.id for c in load_study(write_study(text.format(line), f"s{i}.toml")).cells()]
        for i, line in enumerate(["", 'name = "mlp"', 'name = "mlp()"', 'name = {name = "mlp"}'])
    ]
    assert ids[0] == ids[1] == ids[2] == ids[3]
    assert all(
        "name" not in c.config["model"] for c in load_study(write_study(text.format(""))).cells()
    )


def test_a_cnn_on_flat_data_fails_its_cells_saying_why(write_study, tmp_path):
    path = write_study(
        study_text(axes='optimizer = "adam"').replace(
            'name = "digits"', 'name = "blobs"\nsamples = 40'
        )
    )
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet", "--no-report"]) == 1
    runs = load_results(tmp_path / "o").runs
    assert (runs["status"] == "failed").all()
    assert runs["error"].str.contains("needs image inputs").all()


def test_the_readme_shows_the_tested_model_plugin():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for line in LENET.strip().splitlines()[1:]:  # every line of code but the docstring
        assert line.strip() in readme, line


def test_a_third_party_model_from_a_plugin_file(write_plugin, write_study, tmp_path, capsys):
    plugin = write_plugin(LENET, "lenet_plugin.py")
    assert main(["list", "models", "--plugin", str(plugin)]) == 0
    listed = capsys.readouterr().out
    assert "lenet(kernel=5)" in listed and "cnn(kernel=3)" in listed and "mlp" in listed
    study = write_study(
        study_text(axes='optimizer = "adam"')
        .replace('name = "cnn"', 'name = "lenet"')
        .replace('dtype = "float64"', "")
        .replace("[study]", f'[study]\nplugins = ["{plugin.name}"]')
    )
    assert main(["run", str(study), "--out", str(tmp_path / "o"), "--quiet", "--no-report"]) == 0
    results = load_results(tmp_path / "o")
    assert (results.runs["status"] == "ok").all()
    loss = results.curves.query("split == 'train' and metric == 'loss'").pivot(
        index="cell", columns="epoch", values="value"
    )
    assert (loss[1] < loss[0]).all()  # it trains
    import importlib.util

    spec = importlib.util.spec_from_file_location("lenet_plugin", plugin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert check_plugin(module, smoke=False) == ["model lenet"]


def test_evaluation_passes_are_sized_by_the_widest_layer(monkeypatch):
    """A CNN's maps are far wider than an MLP's layers: its evaluation passes hold fewer
    samples (EVAL_BYTES), with the same numbers as one pass over everything."""
    from benchinit.engine import evaluation
    from benchinit.plugins.descriptors import Data

    assert evaluation.eval_chunk(12, 256, 4) == evaluation.EVAL_CHUNK  # MLPs unchanged
    assert evaluation.eval_chunk(12, 6 * 28 * 28, 4) == 594
    assert evaluation.eval_chunk(1, 10**12, 8) == 1
    registry = Registry()
    gen = torch.Generator().manual_seed(2)
    n = 37
    data = Data(
        torch.randn(n, 128, generator=gen),
        torch.randint(0, 5, (n,), generator=gen),
        torch.randn(n, 128, generator=gen),
        torch.randint(0, 5, (n,), generator=gen),
        "classification",
        5,
        shape=(2, 8, 8),
    )
    loss = registry.bind("loss", "cross_entropy")
    relu = registry.bind("activation", "relu")
    task = evaluation.Task(data, loss, F64, torch.device("cpu"))
    model = filled(StackedCNN(SHAPE))
    whole = evaluation.evaluate(model, relu, loss, task, "test")
    widest = 4 * 8 * 8  # width-4 channels over the 8x8 map (the first convolution's output)
    monkeypatch.setattr(evaluation, "EVAL_BYTES", 2 * G * widest * 8 * 5)  # 5 samples a pass
    assert evaluation.eval_chunk(G, widest, 8) == 5
    passes = []
    forward = StackedCNN.forward
    monkeypatch.setattr(
        StackedCNN, "forward", lambda self, x, *a: passes.append(len(x)) or forward(self, x, *a)
    )
    chunked = evaluation.evaluate(filled(StackedCNN(SHAPE)), relu, loss, task, "test")
    assert passes == [1, 5, 5, 5, 5, 5, 5, 5, 2]  # the one-sample measuring pass first
    for name in whole:
        torch.testing.assert_close(chunked[name], whole[name], rtol=1e-12, atol=1e-12)
