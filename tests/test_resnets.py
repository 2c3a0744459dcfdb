"""The stacked ResNet (exactness with and without batch norm) and the initializers that read
its block structure (fixup, skipinit, rezero)."""

from __future__ import annotations

import pytest
import torch

from benchinit import ModelShape, load_study
from benchinit.cli import main
from benchinit.engine.convnets import StackedCNN
from benchinit.engine.resnets import StackedResNet
from benchinit.engine.train import train_stack
from benchinit.plugins.registry import Registry

F64 = torch.float64
G, B = 3, 4


def shape(members: int, norm: str) -> ModelShape:
    return ModelShape(members, (1, 8, 8), 5, depth=8, width=4, norm=norm, dtype="float64")


def alone(model: StackedResNet, g: int, norm: str, shortcut: str = "A") -> StackedResNet:
    single = StackedResNet(shape(1, norm), shortcut=shortcut)
    state = {
        k: v.view(G, -1)[g].clone() if k.startswith("running") else v[g : g + 1].clone()
        for k, v in model.state_dict().items()
    }
    single.load_state_dict(state)
    return single


@pytest.mark.parametrize(("norm", "shortcut"), [("none", "A"), ("batch", "A"), ("batch", "B")])
def test_stacked_resnet_equals_each_member_alone(norm, shortcut):
    model = StackedResNet(shape(G, norm), shortcut=shortcut)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.4)
    singles = [alone(model, g, norm, shortcut) for g in range(G)]
    x = torch.randn(G, B, 64, generator=gen, dtype=F64)
    r = torch.randn(G, B, 5, generator=gen, dtype=F64)
    trace: list = []
    out = model(x, torch.relu, trace)
    (out * r).sum(2).mean(1).sum().backward()
    assert len(trace) == 7  # the stem and 3 blocks of 2 convolutions
    for g, single in enumerate(singles):
        own_trace: list = []
        own = single(x[g : g + 1], torch.relu, own_trace)
        (own * r[g : g + 1]).sum(2).mean(1).sum().backward()
        assert torch.allclose(out[g], own[0], rtol=0, atol=1e-12)
        for (pre, _), (own_pre, _) in zip(trace, own_trace, strict=True):
            assert torch.allclose(pre[g], own_pre[0], rtol=0, atol=1e-12)
        for p, q in zip(model.parameters(), single.parameters(), strict=True):
            assert torch.allclose(p.grad[g], q.grad[0], rtol=0, atol=1e-12)
        for b, c in zip(model.buffers(), single.buffers(), strict=True):  # running statistics
            assert torch.allclose(b.view(G, -1)[g], c, rtol=0, atol=1e-12)


def initialized(name: str, members: int = 2, shortcut: str = "A") -> StackedResNet:
    registry = Registry(autoload=False)
    model = StackedResNet(shape(members, "none"), shortcut=shortcut)
    init, act = registry.bind("initializer", name), registry.bind("activation", "relu")
    zeros = registry.bind("initializer", "zeros")
    for g in range(members):
        model.initialize_member(g, init, zeros, act, torch.Generator().manual_seed(g))
        if init.descriptor.calibrate is not None:
            init.descriptor.calibrate(model.member(g, act), None, None, act)
    return model


def test_fixup_zeroes_each_branch_s_last_layer_and_the_classifier_and_shrinks_the_rest():
    he, fixup = initialized("kaiming_normal"), initialized("fixup")
    shrink = 3**-0.5  # L = 3 branches of m = 2 layers: L^(-1/(2m-2))
    for spec, a, b in zip(fixup.layer_specs(), he.weights, fixup.weights, strict=True):
        if spec.last_in_block or not spec.hidden:
            assert not b.any(), spec.name
        elif spec.block:
            assert torch.allclose(b, a * shrink), spec.name
        else:
            assert torch.equal(b, a), spec.name  # the stem is He's
    assert torch.equal(fixup.scales, torch.ones_like(fixup.scales))


def test_option_b_projects_entering_a_stage_and_fixup_keeps_its_draw():
    """He et al.'s option B: a 1x1 projection of stride 2 entering stages 2 and 3, declared
    after the head, drawn after every other layer (option A's draws are unchanged), counted
    by the size arithmetic; Fixup leaves it at He's draw and still shrinks by L^(-1/2)."""
    from benchinit.engine.resnets import resnet_size

    a, b = initialized("kaiming_normal"), initialized("kaiming_normal", shortcut="B")
    names = [spec.name for spec in b.layer_specs()]
    assert names[-3:] == ["head", "block2.shortcut", "block3.shortcut"]
    assert [tuple(p.shape) for p in b.projections] == [(2, 8, 4, 1, 1), (2, 16, 8, 1, 1)]
    for x, y in zip(a.weights, b.weights, strict=False):  # A's layers, then B's projections
        assert torch.equal(x, y)
    per_member = sum(p[0].numel() for p in b.parameters())
    assert resnet_size(shape(1, "none"), "B")[0] == per_member
    assert resnet_size(shape(1, "none"), "B")[0] - resnet_size(shape(1, "none"))[0] == 32 + 128
    fixup = initialized("fixup", shortcut="B")
    for projection, he in zip(fixup.projections, b.projections, strict=True):
        assert torch.equal(projection, he) and projection.any()
    branch = [w for w, s in zip(fixup.weights, fixup.layer_specs(), strict=True) if s.block]
    specs = [s for s in fixup.layer_specs() if s.block]
    he = [w for w, s in zip(b.weights, b.layer_specs(), strict=True) if s.block]
    for w, h, spec in zip(branch, he, specs, strict=True):
        if spec.hidden and not spec.last_in_block:
            assert torch.allclose(w, h * 3**-0.5), spec.name
    out = b(torch.rand(3, 64, dtype=F64), torch.relu)
    assert out.shape == (2, 3, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["skipinit", "rezero"])
def test_skipinit_and_rezero_start_every_block_at_the_identity(name):
    model, he = initialized(name), initialized("kaiming_normal")
    assert not model.scales.any()
    for a, b in zip(model.weights, he.weights, strict=True):
        assert torch.equal(a, b)
    x = torch.rand(6, 64, generator=torch.Generator().manual_seed(1), dtype=F64)
    trace: list = []
    model(x, torch.relu, trace)
    stem = trace[0][1]
    for layer, spec in enumerate(model.layer_specs()[:7]):
        if spec.last_in_block and spec.block == 1:  # the first block passes its input on
            assert torch.allclose(trace[layer][1], stem)


@pytest.mark.parametrize("name", ["fixup", "skipinit"])
def test_a_structural_initializer_on_a_model_without_blocks_says_why(name):
    registry = Registry(autoload=False)
    cnn = StackedCNN(ModelShape(1, (1, 8, 8), 5, depth=2, width=4))
    init, act = registry.bind("initializer", name), registry.bind("activation", "relu")
    with pytest.raises(ValueError, match="needs a residual model that declares its blocks"):
        init.descriptor.calibrate(cnn.member(0, act), None, None, act)


@pytest.mark.parametrize(
    "setting, key, problem",
    [
        ("depth = 9", "model.depth", "6n + 2"),
        ('depth = 8\nnorm = "layer"', "model.norm", "'batch'"),
    ],
)
def test_a_resnet_it_cannot_build_is_exit_2(write_study, capsys, setting, key, problem):
    text = '[data]\nname = "digits"\n[model]\nname = "resnet"\n{}\n[grid]\ninitializer = "fixup"'
    path = write_study(text.format(setting) + '\nactivation = "relu"')
    assert main(["run", str(path), "--out", str(path.parent / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert key in err and problem in err and "model 'resnet'" in err and "Traceback" not in err


def test_training_a_batch_norm_resnet_stack_is_training_each_member_alone(write_study):
    study = load_study(
        write_study(
            """
            [study]
            seeds = [0]
            [data]
            name = "digits"
            [model]
            name = "resnet"
            depth = 8
            width = 4
            norm = "batch"
            dtype = "float64"
            [train]
            epochs = 1
            batch_size = 128
            [grid]
            initializer = ["kaiming_normal", "fixup"]
            activation = "relu"
            optimizer = "sgd(lr=0.1, momentum=0.9)"
            """
        )
    )
    cells, cpu = study.cells(), torch.device("cpu")
    stacked = train_stack(cells, study.registry, cpu).model
    for g, cell in enumerate(cells):
        single = train_stack([cell], study.registry, cpu).model
        for a, b in zip(stacked.parameters(), single.parameters(), strict=True):
            assert torch.allclose(a[g], b[0], rtol=0, atol=1e-10)
        for a, b in zip(stacked.buffers(), single.buffers(), strict=True):
            assert torch.allclose(a.view(len(cells), -1)[g], b, rtol=0, atol=1e-10)


def test_every_built_in_model_passes_the_kit_and_names_its_layers():
    """mlp, cnn and resnet keep the model contract benchinit.testing checks (members never
    mix, layers declared, each hidden one traced); their hidden layers' names go to
    ``runs.layer_names`` ("" for the MLP: its layers are their numbers)."""
    from benchinit.conformance import Problems, check_model
    from benchinit.engine.models import StackedMLP
    from benchinit.engine.recorder import declared

    registry = Registry(autoload=False)
    for name in ("mlp", "cnn", "resnet"):
        problems = Problems()
        check_model(registry.get("model", name).descriptor, registry, problems)
        assert problems.items == [], name
    assert declared(StackedMLP(1, [6, 4, 4, 3], head=True, bias=True)) == ""
    cnn = StackedCNN(ModelShape(1, (1, 8, 8), 5, depth=2, width=4))
    assert declared(cnn) == "conv1,conv2"
    assert declared(StackedResNet(shape(1, "none"))).split(",")[:3] == [
        "stem",
        "block1.conv1",
        "block1.conv2",
    ]
