"""Parametrizations (standard, NTK, muP): the abc-table against Tensor Programs V by hand, a
trained muP stack against a muP MLP written out by hand, the optimizer's lr-scaling hook,
and the coordinate check's claim."""

from __future__ import annotations

import math

import pytest
import torch

from benchinit import load_results, load_study, run
from benchinit.cli import main
from benchinit.engine.stack import build_stack, load_data
from benchinit.engine.train import train_stack
from benchinit.study.parametrization import Scales, layer_scales

# STUDY sets base_width; under "standard" it has no effect, and the study says so
pytestmark = pytest.mark.filterwarnings("ignore:model.base_width has no effect")

STUDY = """
    [study]
    name = "mup"
    kind = "train"
    seeds = [0]
    [data]
    name = "blobs"
    samples = 120
    features = 5
    classes = 3
    [model]
    depth = 2
    width = {width}
    base_width = 8
    dtype = "float64"
    parametrization = "{parametrization}"
    [train]
    epochs = 3
    batch_size = 1000
    [grid]
    initializer = "kaiming_normal"
    activation = "relu"
    optimizer = "{optimizer}"
"""


def scales(parametrization, rule, width=256, base=64, **kw):
    return layer_scales(
        parametrization, layers=4, hidden=3, width=width, base_width=base, rule=rule, **kw
    )


def test_mup_table_is_tensor_programs_v_table_3_by_hand():
    """n = 256 / 64 = 4. TP V Table 3 (effective weights): Adam lr input 1, hidden 1/n,
    output 1/n; SGD lr input n, hidden 1, output 1/n; output init variance 1/n^2 against
    1/n. In MuReadout form the output's multiplier 1/n carries 1/n of the lr and the
    variance, so the stored output weight is drawn x sqrt(n) with Adam lr 1, SGD lr n."""
    n = 4.0
    adam = scales("mup", "adam")
    assert adam[0] == Scales()  # input: as standard
    assert adam[1] == adam[2] == Scales(lr=1 / n)  # hidden: Adam lr / fan_in
    assert adam[3] == Scales(multiplier=1 / n, init=math.sqrt(n), bias_init=math.sqrt(n))
    sgd = scales("mup", "sgd")
    assert sgd[0] == Scales(lr=n, bias_lr=n)  # input weights and biases: lr x fan_out
    assert sgd[1] == Scales(bias_lr=n)  # hidden weights lr x 1; hidden biases lr x n
    assert sgd[3] == Scales(1 / n, math.sqrt(n), n, math.sqrt(n), 1.0)
    # the effective output weight multiplier * W: variance (1/n)^2 * n = 1/n of SP's (1/fan_in
    # -> 1/fan_in^2), and its SGD step multiplier^2 * lr = 1/n of SP's (eta/fan_in)
    out = sgd[3]
    assert out.multiplier**2 * out.init**2 == pytest.approx(1 / n)
    assert out.multiplier**2 * out.lr == pytest.approx(1 / n)
    zero = scales("mup", "adam", output_init="zero")[3]
    assert (zero.init, zero.bias_init, zero.multiplier) == (0.0, 0.0, 1 / n)
    ntk = scales("ntk", "sgd")
    assert ntk[0] == Scales() and ntk[1] == ntk[3] == Scales(multiplier=0.5, init=2.0)
    assert all(s == Scales() for s in scales("standard", "adam") + scales("standard", "sgd"))
    for name in ("ntk", "mup"):  # every parametrization is the standard one at base width
        assert all(s == Scales() for s in scales(name, "adam", width=64))


def _hand_mup(study, optimizer, lr, width, base, draws_only=False):
    """The muP MLP of MuReadout + MuAdam / MuSGD written out: plain tensors, plain torch
    optimizers with the per-tensor rates of microsoft/mup, trained full-batch."""
    standard = study.cells()[0]
    config = {**standard.config, "model": {**standard.config["model"]}}
    config["model"].pop("parametrization")
    from benchinit.study.cells import Cell

    plain = Cell.of(config, standard.labels)
    activation = study.registry.bind("activation", "relu")
    data = load_data(study.registry, config["data"])
    model, _, _ = build_stack(
        [plain],
        study.registry,
        [5, width, width, 3],
        head=True,
        activation=activation,
        device=torch.device("cpu"),
        calibration_x=data.x_train[:8],
    )
    n = width / base
    w = [k.detach()[0].clone() for k in model.kernels]
    b = [p.detach()[0].clone() for p in model.biases]
    if draws_only:  # the standard parametrization's draws, as [in, out] kernels
        return list(zip(w, b, strict=True))
    w[2], b[2] = w[2] * math.sqrt(n), b[2] * math.sqrt(n)  # MuReadout's rescale
    params = [t.requires_grad_() for t in w + b]
    if optimizer == "adam":  # MuAdam: lr / width_mult for matrix-like (hidden) weights
        rates = [lr, lr / n, lr, lr, lr, lr]
        opt = torch.optim.Adam(
            [{"params": [p], "lr": r} for p, r in zip(params, rates, strict=True)]
        )
    else:  # MuSGD: lr x width_mult for vector-like tensors; the output bias is fixed
        rates = [lr * n, lr, lr * n, lr * n, lr * n, lr]
        opt = torch.optim.SGD(
            [{"params": [p], "lr": r} for p, r in zip(params, rates, strict=True)]
        )
    x, y = data.x_train.double(), data.y_train
    for _ in range(3):
        h = torch.relu(x @ w[0] + b[0])
        h = torch.relu(h @ w[1] + b[1])
        logits = (h / n) @ w[2] + b[2]  # MuReadout: Linear(x / width_mult)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(logits, y).backward()
        opt.step()
    return [t.detach() for t in w]


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 0.01), ("sgd", 0.1)])
def test_trained_mup_stack_equals_mup_by_hand(write_study, optimizer, lr):
    text = STUDY.format(width=32, parametrization="mup", optimizer=f"{optimizer}(lr={lr})")
    study = load_study(write_study(text))
    trained = train_stack(study.cells(), study.registry, torch.device("cpu"))
    expected = _hand_mup(study, optimizer, lr, 32, 8)
    for kernel, want in zip(trained.model.kernels, expected, strict=True):
        torch.testing.assert_close(kernel.detach()[0], want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 0.01), ("sgd", 0.1)])
def test_trained_mup_stack_equals_microsoft_mup(write_study, optimizer, lr):
    """The reference implementation itself, where it is installed (it is no dependency):
    MuReadout, set_base_shapes (base width 8) and MuAdam / MuSGD, from the same draws."""
    mup = pytest.importorskip("mup")
    text = STUDY.format(width=32, parametrization="mup", optimizer=f"{optimizer}(lr={lr})")
    study = load_study(write_study(text))
    trained = train_stack(study.cells(), study.registry, torch.device("cpu"))
    standard = _hand_mup(study, optimizer, lr, 32, 8, draws_only=True)

    def mlp(width):
        return torch.nn.Sequential(
            torch.nn.Linear(5, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, width),
            torch.nn.ReLU(),
            mup.MuReadout(width, 3),
        ).double()

    model = mlp(32)
    with torch.no_grad():
        for layer, (w, b) in zip((0, 2, 4), standard, strict=True):
            model[layer].weight.copy_(w.mT)
            model[layer].bias.copy_(b)
    mup.set_base_shapes(model, mlp(8), delta=mlp(16))  # rescales MuReadout's draw
    make = mup.MuAdam if optimizer == "adam" else mup.MuSGD
    opt = make(model.parameters(), lr=lr)
    data = load_data(study.registry, study.cells()[0].config["data"])
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data.x_train.double()), data.y_train)
        loss.backward()
        opt.step()
    for kernel, layer in zip(trained.model.kernels, (0, 2, 4), strict=True):
        torch.testing.assert_close(kernel.detach()[0].mT, model[layer].weight.detach())


def test_mup_at_base_width_trains_as_standard(write_study):
    weights = {}
    for name in ("standard", "mup"):
        text = STUDY.format(width=8, parametrization=name, optimizer="adam(lr=0.01)")
        study = load_study(write_study(text))
        trained = train_stack(study.cells(), study.registry, torch.device("cpu"))
        weights[name] = [w.detach() for w in trained.model.weights]
    for a, b in zip(weights["standard"], weights["mup"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_standard_keeps_cell_ids(write_study):
    """The new keys at their defaults are not in a cell's configuration (nor its id)."""
    text = STUDY.format(width=16, parametrization="standard", optimizer="adam")
    explicit = load_study(write_study(text)).cells()[0]
    implicit = load_study(write_study(text.replace('parametrization = "standard"', ""))).cells()
    assert explicit.id == implicit[0].id
    assert "parametrization" not in explicit.config["model"]
    assert "coord_steps" not in explicit.config["train"]


NO_GROUPS = """
import torch
from benchinit import hookimpl, Optimizer

def plain(params, *, lr: float = 0.1):
    return torch.optim.SGD(list(params), lr=lr)

@hookimpl
def benchinit_optimizers():
    return [Optimizer("plain", plain)]
"""


def test_mup_refuses_an_optimizer_without_lr_scaling(write_study, write_plugin, capsys):
    write_plugin(NO_GROUPS, "plain_opt.py")
    text = STUDY.format(width=16, parametrization="mup", optimizer="plain")
    text = text.replace('name = "mup"', 'name = "mup"\n    plugins = ["plain_opt.py"]')
    path = write_study(text)
    assert main(["run", str(path), "--no-report", "--out", str(path.parent / "o")]) == 2
    err = capsys.readouterr().err
    assert "grid.optimizer" in err and "'plain'" in err and "lr_scaling" in err
    assert "sgd, adam" in err.replace("adamw", "") or "adam" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    # the standard parametrization takes it as before
    load_study(write_study(text.replace('"mup"\n    [train]', '"standard"\n    [train]')))


COORD = """
    [study]
    name = "coord"
    kind = "train"
    seeds = [0]
    [data]
    name = "digits"
    [model]
    depth = 2
    width = 64
    [train]
    epochs = 1
    batch_size = 256
    coord_steps = 3
    probe_samples = 64
    [grid]
    initializer = "kaiming_normal"
    activation = "relu"
    optimizer = "adam(lr=0.01)"
    "model.parametrization" = ["standard", "mup"]
    "model.width" = [64, 1024]
"""


def test_coordinate_check_logits_blow_up_under_standard_only(write_study, tmp_path):
    """After 3 Adam steps, 16x the width: the standard logits and their change grow
    several-fold (about linearly in width); under muP what the steps changed, in every
    layer and in the logits, stays within a factor 2."""
    run(load_study(write_study(COORD)), out=tmp_path / "out", report=False, progress=False)
    curves = load_results(tmp_path / "out").labelled("curves")
    coord = curves[(curves["split"] == "coord") & (curves["epoch"] == 3)]
    table = coord.pivot_table(
        index=["model.parametrization", "metric"], columns="model.width", values="value"
    )
    growth = table[1024] / table[64]
    for metric in ("abs_logits", "delta_logits"):
        assert growth[("standard", metric)] > 4
    for metric in ("delta_h1", "delta_h2", "delta_logits"):
        assert 0.5 < growth[("mup", metric)] < 2
    assert set(coord["metric"]) >= {"abs_h1", "abs_h2", "delta_h1", "delta_h2"}


TRANSFER = """
    [study]
    name = "transfer"
    kind = "train"
    seeds = 1
    [data]
    name = "digits"
    [model]
    depth = 2
    width = 16
    base_width = 16
    [train]
    epochs = 3
    batch_size = {batch}
    probe_samples = 8
    [grid]
    initializer = "kaiming_normal"
    activation = "relu"
    optimizer = "adam"
    "model.parametrization" = ["standard", "mup"]
    "model.width" = [16, 256]
    [tune]
    "optimizer.lr" = [1e-3, 3e-3, 1e-2, 3e-2, 0.1]
    select = "val_loss"
    seeds = 1
    transfer = {{"model.width" = 16}}
"""


def test_best_rate_falls_with_width_under_standard_adam_and_stays_under_mup(write_study, tmp_path):
    """The claim of Tensor Programs V on a shrunk grid (digits, widths 16 and 256, Adam):
    the standard parametrization's best rate falls with width (slope of log(best rate) on
    log(width) near -1), muP's stays within one grid step; the report draws it."""
    from benchinit.analysis.transfer import best_rates, rate_slopes
    from benchinit.report.width import width_jobs

    study = load_study(write_study(TRANSFER.format(batch=64)))
    run(study, out=tmp_path / "o", report=False, progress=False)
    results = load_results(tmp_path / "o")
    by = ["model.parametrization"]
    slopes = rate_slopes(best_rates(results.tuning, by), by).set_index(by[0])
    assert slopes.loc["standard", "slope"] < -0.5
    assert slopes.loc["standard", "steps"] >= 2  # 3e-2 at width 16, 3e-3 at 256
    assert abs(slopes.loc["mup", "slope"]) < 0.45  # one grid step over 16x: 0.43
    assert slopes.loc["mup", "steps"] <= 1
    jobs = width_jobs(results)
    assert [job.name for job in jobs] == ["width-rates-val_loss", "width-transfer-val_loss"]
    assert "standard: -0." in jobs[0].caption
    moved = jobs[1].data.set_index(["model.parametrization", "width"])
    # tune at 16, train at 256: standard's transferred rate costs loss, muP's costs little
    assert moved.loc[("standard", 256), "regret"] > moved.loc[("mup", 256), "regret"]
    # the final runs, on a fresh seed, at width 16's rate (tune.transfer): under muP wider
    # is not worse (measured: test loss 0.13 at 256 against 0.29 at 16)
    final = results.runs.set_index(["model.parametrization", "model.width"])
    assert (
        final.loc[("mup", 256), "tuned.optimizer.lr"]
        == final.loc[("mup", 16), "tuned.optimizer.lr"]
    )
    for metric in ("val_loss", "test_loss"):
        assert final.loc[("mup", 256), metric] <= final.loc[("mup", 16), metric]


def test_a_signal_study_refuses_a_parametrization_axis(write_study, capsys):
    """At initialization the hidden layers are the same under every parametrization (they
    differ in the head and the learning rates): one cell under three labels."""
    path = write_study(
        """
        [study]
        kind = "signal"
        [data]
        name = "gaussian"
        [grid]
        initializer = "kaiming_normal"
        activation = "tanh"
        "model.parametrization" = ["standard", "mup"]
        """
    )
    assert main(["run", str(path), "--no-report", "--out", str(path.parent / "o")]) == 2
    err = capsys.readouterr().err
    assert "grid.model.parametrization" in err and "has no effect in a signal study" in err


def test_sigma_w_is_read_from_the_effective_weights():
    """NTK draws sqrt(n) larger and multiplies by n^-1/2: the recorded sigma_w (the phase
    diagram's x) is the network's, the multiplier applied."""
    import math

    import torch

    from benchinit.engine.models import StackedMLP
    from benchinit.engine.stack import init_scales

    model = StackedMLP(2, [8, 16, 16], head=False, bias=False, multipliers=[0.5, 0.5])
    with torch.no_grad():
        for kernel in model.kernels:
            kernel.fill_(2.0)  # effective weights 1: mean W^2 = 1, times fan-in 8 and 16
    assert init_scales(model)["sigma_w"] == [math.sqrt(12.0)] * 2
