"""Built-in plugins behave as their docstrings and papers say."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchinit.analysis.meanfield import second_moment
from benchinit.plugins.registry import Registry

REGISTRY = Registry(autoload=False)
RELU = REGISTRY.bind("activation", "relu")
TANH = REGISTRY.bind("activation", "tanh")
FANS = [(100, 100), (784, 256), (64, 512), (1000, 30)]


def draw(spec: str, fan_out: int, fan_in: int, seed: int = 0, activation=RELU) -> torch.Tensor:
    init = REGISTRY.bind("initializer", spec)
    weight = torch.empty(fan_out, fan_in)
    init(weight, torch.Generator().manual_seed(seed), activation)
    return weight


@pytest.mark.parametrize("fan_in, fan_out", FANS)
@pytest.mark.parametrize(
    "spec, expected_std",
    [
        ("xavier_normal", lambda i, o: math.sqrt(2 / (i + o))),
        ("xavier_uniform", lambda i, o: math.sqrt(2 / (i + o))),
        ("kaiming_normal", lambda i, o: math.sqrt(2 / i)),
        ("kaiming_uniform", lambda i, o: math.sqrt(2 / i)),
        ("kaiming_normal(mode='fan_out')", lambda i, o: math.sqrt(2 / o)),
        ("lecun_normal", lambda i, o: math.sqrt(1 / i)),
        ("normal(std=0.01)", lambda i, o: 0.01),
        ("uniform(a=-1, b=1)", lambda i, o: 1 / math.sqrt(3)),
        ("xavier_normal(gain='activation')", lambda i, o: 5 / 3 * math.sqrt(2 / (i + o))),
    ],
)
def test_empirical_std_matches_the_formula(spec, expected_std, fan_in, fan_out):
    weight = draw(spec, fan_out, fan_in, activation=TANH)
    assert weight.std().item() == pytest.approx(expected_std(fan_in, fan_out), rel=0.05)


def test_square_xavier_is_about_one_over_sqrt_n():
    assert draw("xavier_normal", 100, 100).std().item() == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize("fan_out, fan_in", [(100, 100), (64, 256), (30, 1000)])
def test_orthogonal_rows_are_orthonormal(fan_out, fan_in):
    w = draw("orthogonal", fan_out, fan_in).double()
    assert torch.allclose(w @ w.T, torch.eye(fan_out, dtype=torch.float64), atol=1e-5)


def test_orthogonal_gain_scales():
    w = draw("orthogonal(gain=2)", 50, 50).double()
    assert torch.allclose(w @ w.T, 4 * torch.eye(50, dtype=torch.float64), atol=1e-4)


def test_trunc_normal_stays_in_bounds():
    w = draw("trunc_normal(std=1, a=-0.5, b=0.5)", 200, 200)
    assert w.min() >= -0.5 and w.max() <= 0.5


@pytest.mark.parametrize(
    "spec",
    [
        "normal",
        "xavier_uniform",
        "kaiming_normal",
        "orthogonal",
        "trunc_normal",
        "lecun_normal",
        "uniform",
    ],
)
def test_same_seed_same_weights_and_different_seeds_differ(spec):
    assert torch.equal(draw(spec, 32, 16, seed=3), draw(spec, 32, 16, seed=3))
    assert not torch.equal(draw(spec, 32, 16, seed=3), draw(spec, 32, 16, seed=4))


def test_zeros_and_constant_are_symmetric():
    assert torch.count_nonzero(draw("zeros", 8, 8)) == 0
    assert torch.all(draw("constant(value=0.5)", 8, 8) == 0.5)


def test_bias_vectors_need_a_fan_free_initializer():
    bias = torch.empty(10)
    with pytest.raises(ValueError, match="fan_in and fan_out are undefined"):
        REGISTRY.bind("initializer", "kaiming_normal")(bias, torch.Generator(), RELU)


@pytest.mark.parametrize(
    "name, torch_name, params",
    [
        ("identity", "linear", {}),
        ("sigmoid", "sigmoid", {}),
        ("tanh", "tanh", {}),
        ("relu", "relu", {}),
        ("selu", "selu", {}),
        ("leaky_relu(negative_slope=0.2)", "leaky_relu", {"param": 0.2}),
    ],
)
def test_gains_match_torch_where_defined(name, torch_name, params):
    gain = REGISTRY.bind("activation", name).gain
    assert gain == pytest.approx(torch.nn.init.calculate_gain(torch_name, **params))


@pytest.mark.parametrize("name", ["elu", "gelu", "silu", "softplus", "softsign"])
def test_other_gains_keep_unit_second_moment(name):
    act = REGISTRY.bind("activation", name)
    assert act.gain**2 * second_moment(act, 1.0) == pytest.approx(1.0, rel=1e-6)


def test_unit_gain_of_relu_is_sqrt2():
    assert second_moment(RELU, 1.0) == pytest.approx(0.5, rel=1e-4)
    assert second_moment(RELU, 9.0) == pytest.approx(4.5, rel=1e-4)


def test_histogram_ranges_of_bounded_activations():
    ranges = {
        name: REGISTRY.get("activation", name).descriptor.range_of({})
        for name in ("sigmoid", "tanh", "softsign", "relu")
    }
    assert ranges == {
        "sigmoid": (0.0, 1.0),
        "tanh": (-1.0, 1.0),
        "softsign": (-1.0, 1.0),
        "relu": (0.0, 3.0),
    }


def test_losses_agree_with_torch():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 5, 4, generator=g)
    labels = torch.randint(4, (3, 5), generator=g)
    onehot = F.one_hot(labels, 4).float()
    ce = REGISTRY.bind("loss", "cross_entropy")(pred, labels)
    assert ce.shape == (3, 5)
    assert torch.allclose(
        ce, F.cross_entropy(pred.reshape(-1, 4), labels.reshape(-1), reduction="none").reshape(3, 5)
    )
    assert torch.allclose(
        REGISTRY.bind("loss", "mse")(pred, onehot).mean(), F.mse_loss(pred, onehot)
    )
    assert torch.allclose(REGISTRY.bind("loss", "l1")(pred, onehot).mean(), F.l1_loss(pred, onehot))
    assert torch.allclose(
        REGISTRY.bind("loss", "huber(delta=0.5)")(pred, onehot).mean(),
        F.huber_loss(pred, onehot, delta=0.5),
    )


def test_gaussian_nll_with_unit_variance_is_half_mse():
    g = torch.Generator().manual_seed(1)
    mean, target = torch.randn(2, 7, 3, generator=g), torch.randn(2, 7, 3, generator=g)
    raw_for_unit_var = torch.full_like(mean, math.log(math.e - 1))  # softplus^-1(1)
    nll = REGISTRY.bind("loss", "gaussian_nll(eps=0)")(
        torch.cat([mean, raw_for_unit_var], -1), target
    )
    assert torch.allclose(nll, 0.5 * (mean - target).square().mean(-1), atol=1e-6)


def test_loss_metadata():
    ce = REGISTRY.get("loss", "cross_entropy").descriptor
    nll = REGISTRY.get("loss", "gaussian_nll").descriptor
    mse = REGISTRY.get("loss", "mse").descriptor
    assert (ce.tasks, ce.class_targets) == (("classification",), "index")
    assert (nll.tasks, nll.prediction) == (("regression",), "mean_var")
    assert mse.class_targets == "one_hot" and set(mse.tasks) == {"classification", "regression"}


def test_optimizers_are_elementwise_and_accept_schedules():
    for entry in REGISTRY.entries("optimizer"):
        assert entry.descriptor.elementwise
        assert {"schedule", "step_size", "gamma", "eta_min"} <= set(entry.descriptor.parameters())
    p = torch.zeros(3, requires_grad=True)
    opt = REGISTRY.bind("optimizer", "sgd(lr=0.5, schedule='step', step_size=2)")([p])
    assert opt.param_groups[0]["lr"] == 0.5


@pytest.mark.parametrize(
    "spec, features, classes, task",
    [
        ("gaussian", 100, 10, "classification"),
        ("linear", 1, 1, "regression"),
        ("blobs", 2, 3, "classification"),
        ("spirals", 2, 3, "classification"),
        ("digits", 64, 10, "classification"),
        ("mnist_5k", 784, 10, "classification"),
    ],
)
def test_offline_datasets(spec, features, classes, task):
    bound = REGISTRY.bind("dataset", spec)
    data = bound()
    assert data.task == task == bound.descriptor.task
    assert data.features == features and data.outputs == classes
    assert data.x_train.dtype == torch.float32 and len(data.x_test) > 0
    if task == "classification":
        assert data.y_train.dtype == torch.int64
        assert set(data.y_train.unique().tolist()) == set(range(classes))
    again = bound()
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.y_test, again.y_test)


def test_real_datasets_are_the_real_ones():
    digits = REGISTRY.bind("dataset", "digits")()
    mnist = REGISTRY.bind("dataset", "mnist_5k")()
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert len(mnist.x_train) + len(mnist.x_test) == 5000
    assert float(mnist.x_train.min()) >= 0 and float(mnist.x_train.max()) == 1.0


def test_gaussian_has_unit_inputs_and_linear_knows_its_truth():
    data = REGISTRY.bind("dataset", "gaussian(samples=2000)")()
    assert data.x_train.shape == (2000, 100)
    assert data.x_train.std().item() == pytest.approx(1.0, abs=0.02)
    line = REGISTRY.bind("dataset", "linear(w=3, b=-1, noise=0)")()
    assert dict(line.truth) == {"w": 3.0, "b": -1.0}
    assert torch.allclose(line.y_train, 3 * line.x_train - 1)


def test_full_mnist_offline_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing and download = false"):
        REGISTRY.bind("dataset", f"mnist(root='{tmp_path}', download=false)")()
