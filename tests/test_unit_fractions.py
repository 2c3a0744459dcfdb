"""Dead and saturated units (issue 24 item 5): the share of a layer's units, neurons of a
dense layer and channels of a convolution, that are 0 (or saturated) on every probe sample
and position, beside the entry fractions that count samples x units."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from benchinit import ModelShape, load_results, load_study, run
from benchinit.engine.convnets import StackedCNN
from benchinit.engine.models import StackedMLP
from benchinit.engine.probes import layer_channels, layer_statistics
from benchinit.plugins.registry import Registry
from benchinit.report.signal_figures import signal_jobs

REGISTRY = Registry(autoload=False)
RELU = REGISTRY.bind("activation", "relu")
TANH = REGISTRY.bind("activation", "tanh")
F64 = torch.float64


def positive(*shape: int, seed: int = 0) -> torch.Tensor:
    """Pre-activations in [0.5, 1.5): nothing dead, nothing saturated until edited."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=F64) + 0.5


def stats(pre: torch.Tensor, activation=RELU, channels: int | None = None) -> dict:
    return {
        k: v.tolist()
        for k, v in layer_statistics(pre, activation(pre), activation, channels)[0].items()
    }


def test_a_dense_neuron_is_dead_only_when_0_on_every_sample():
    pre = positive(1, 6, 5)
    pre[0, :, 1] = -1.0  # neuron 1: 0 on every sample
    pre[0, :, 3] = -1.0
    pre[0, 2, 3] = 1.0  # neuron 3: 0 on all samples but one
    found = stats(pre)
    assert found["dead_unit_frac"] == pytest.approx([1 / 5])
    assert found["saturated_unit_frac"] == pytest.approx([1 / 5])  # ReLU: the same units
    assert found["dead_frac"] == pytest.approx([11 / 30])  # the entries, as before


def test_a_channel_is_dead_only_when_0_at_every_sample_and_position():
    c, h, w = 3, 4, 4
    pre = positive(1, 5, c * h * w).view(1, 5, c, h, w)
    pre[0, :, 0] = -1.0  # channel 0: 0 everywhere
    pre[0, :, 2] = -1.0
    pre[0, 3, 2, 1, 2] = 1.0  # channel 2: 0 except at one position of one sample
    found = stats(pre.reshape(1, 5, -1), channels=c)
    assert found["dead_unit_frac"] == pytest.approx([1 / c])
    # as dense units (positions), channel 0's 16 and channel 2's other 15 entries are dead
    assert stats(pre.reshape(1, 5, -1))["dead_unit_frac"] == pytest.approx([31 / 48])


def test_members_count_their_own_units():
    pre = positive(2, 4, 2 * 3 * 3).view(2, 4, 2, 9)
    pre[0, :, 1] = -1.0  # member 0: one dead channel of 2
    pre[1, :, :] = -1.0  # member 1: both
    found = stats(pre.reshape(2, 4, -1), channels=2)
    assert found["dead_unit_frac"] == pytest.approx([0.5, 1.0])


def test_a_tanh_unit_is_saturated_only_when_saturated_on_every_sample():
    pre = positive(1, 4, 4) * 0.1  # tanh's linear middle: not saturated
    pre[0, :, 0] = 5.0  # tanh'(5) = 2e-4 < 0.1: saturated on every sample
    pre[0, :, 2] = -6.0
    pre[0, 1, 2] = 0.0  # unit 2: saturated on all samples but one
    found = stats(pre, TANH)
    assert found["saturated_unit_frac"] == pytest.approx([1 / 4])
    assert found["dead_unit_frac"] == [0.0]  # tanh(0) = 0 on one sample is no dead unit
    assert found["saturated_frac"] == pytest.approx([7 / 16])


def test_channels_that_do_not_divide_the_units_are_an_error():
    with pytest.raises(ValueError, match="not 5 channels"):
        stats(positive(1, 2, 12), channels=5)


def test_a_cnn_declares_its_channels_and_the_probes_count_them():
    """layer_channels reads the declared conv layers; a channel killed by its bias is dead
    in the flattened (C, H, W) trace exactly as in torch's own conv2d of that member."""
    shape = ModelShape(members=2, inputs=(2, 8, 8), outputs=5, depth=2, width=4, dtype="float64")
    model = StackedCNN(shape)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.4)
        model.biases[0][0, 1] = -100.0  # member 0: channel 1 of layer 1 dead
        model.biases[0][1, [0, 2]] = -100.0  # member 1: channels 0 and 2
    x = torch.randn(6, 128, generator=gen, dtype=F64)
    trace: list = []
    model(x, RELU, trace)
    channels = layer_channels(model, len(trace))
    assert channels == [4, 4]
    pre, act = trace[0]
    found = layer_statistics(pre, act, RELU, channels[0])[0]["dead_unit_frac"]
    images = x.view(6, 2, 8, 8)
    by_hand = [
        (F.relu(F.conv2d(images, model.kernels[0][g], model.biases[0][g], padding=1)) == 0)
        .all(3)
        .all(2)
        .all(0)
        .double()
        .mean()
        for g in range(2)
    ]
    assert found.tolist() == pytest.approx([float(v) for v in by_hand])
    assert found.tolist() == pytest.approx([0.25, 0.5])


def test_the_mlp_declares_dense_layers_and_a_model_without_specs_gets_none():
    bare = SimpleNamespace(kernels=[torch.zeros(1, 3, 4, 3, 3)])  # no layer_specs
    assert layer_channels(bare, 2) == [None, None]
    mlp = StackedMLP(2, [4, 5, 5, 3], head=True, bias=True)
    assert layer_channels(mlp, 2) == [None, None]


CNN_SIGNAL = """
    [study]
    kind = "signal"
    seeds = [0]
    [data]
    name = "digits"
    [model]
    name = "cnn"
    depth = 2
    width = 4
    [grid]
    initializer = ["zeros", "kaiming_normal"]
    activation = "relu"
"""


def unit_rows(results, metric: str):
    layers = results.labelled("layers")
    return layers[layers["metric"] == metric].set_index(["initializer", "layer"])["value"]


def drawn(results) -> set[str]:
    """The statistics the signal section draws (a stack's rows or figures of their own)."""
    from reportdata import statistics

    return set(statistics(signal_jobs(results)))


def test_a_cnn_signal_study_stores_dead_channels(write_study, tmp_path):
    """Zero weights and biases: every ReLU channel is 0 everywhere (all dead); He init
    keeps some alive. ReLU's saturated units are its dead ones, so only one figure."""
    out = tmp_path / "out"
    run(load_study(write_study(CNN_SIGNAL)), out, report=False, progress=False)
    results = load_results(out)
    assert (results.runs["status"] == "ok").all()
    dead = unit_rows(results, "dead_unit_frac")
    assert dead.loc["zeros"].tolist() == [1.0, 1.0]
    assert dead.between(0, 1).all() and (dead.loc["kaiming_normal"] < 1).all()
    saturated = unit_rows(results, "saturated_unit_frac")
    assert saturated.sort_index().tolist() == dead.sort_index().tolist()
    names = drawn(results)
    assert "saturated_unit_frac" in names and "dead_unit_frac" not in names


def test_the_mlp_seed_study_draws_unit_figures_only_where_nonzero(tmp_path):
    """tanh of zero weights is 0 on every sample (dead, not saturated: tanh'(0) is its
    maximum), so the dead-unit figure is drawn; He-initialized tanh has neither."""
    shrink = ["data.samples=200", "model.depth=3", "grid.activation=['tanh']"]
    both = load_study("seed", [*shrink, "grid.initializer=['zeros', 'kaiming_normal']"], seeds=1)
    run(both, tmp_path / "both", report=False, progress=False)
    results = load_results(tmp_path / "both")
    dead = unit_rows(results, "dead_unit_frac")
    assert dead.loc["zeros"].tolist() == [1.0] * 3 and (dead.loc["kaiming_normal"] == 0).all()
    assert (unit_rows(results, "saturated_unit_frac") == 0).all()
    names = drawn(results)
    assert "dead_unit_frac" in names and "saturated_unit_frac" not in names
    alive = load_study("seed", [*shrink, "grid.initializer=['kaiming_normal']"], seeds=1)
    run(alive, tmp_path / "alive", report=False, progress=False)
    names = drawn(load_results(tmp_path / "alive"))
    assert "preact_std" in names
    assert not {"dead_unit_frac", "saturated_unit_frac"} & names


def test_a_folder_without_unit_fractions_still_draws_its_signal_figures(tmp_path):
    from reportdata import write_results

    results = load_results(write_results(tmp_path / "old", {"initializer": ["a", "b"]}))
    assert not results.layers["metric"].str.contains("_unit_").any()
    names = drawn(results)
    assert "act_std" in names and not any("_unit_" in n for n in names)
