"""benchinit.testing.check_plugin catches the mistakes plugin authors make."""

from __future__ import annotations

import types

import pytest
import torch

from benchinit import Activation, Initializer, Loss, Optimizer, hookimpl
from benchinit.testing import check_plugin


def plugin(**hooks) -> types.SimpleNamespace:
    """An in-memory plugin from hook functions (already marked with hookimpl)."""
    return types.SimpleNamespace(**hooks)


def one(kind_hook: str, descriptor) -> types.SimpleNamespace:
    @hookimpl(specname=kind_hook)
    def hook():
        return [descriptor]

    return plugin(**{kind_hook: hook})


def good_init(weight, generator, activation, *, scale: float = 1.0):
    "A scaled normal."
    with torch.no_grad():
        weight.normal_(0.0, scale / weight.shape[1] ** 0.5, generator=generator)


def test_a_good_plugin_passes_every_check():
    assert check_plugin(one("benchinit_initializers", Initializer("good", good_init))) == [
        "initializer good"
    ]


def global_rng_init(weight, generator, activation):
    "Ignores its generator."
    with torch.no_grad():
        weight.normal_()


def positional_init(weight, generator, activation, scale: float = 1.0):
    "A parameter that is not keyword-only."
    weight.fill_(scale)


def unannotated_init(weight, generator, activation, *, scale=1.0):
    "No annotation."
    weight.fill_(scale)


def bad_default_init(weight, generator, activation, *, scale: int = 0.5):
    "A default that fails its annotation."
    weight.fill_(scale)


def softmax(x):
    "Not elementwise."
    return torch.softmax(x, -1)


def mean_loss(pred, target):
    "One number for the whole batch."
    return (pred - target).square().mean()


def clipped_sgd(params, *, lr: float = 0.1):
    "Normalizes by the global gradient norm: not elementwise."

    class Clipped(torch.optim.SGD):
        def step(self, closure=None):
            grads = [p.grad for g in self.param_groups for p in g["params"]]
            total = torch.sqrt(sum(g.square().sum() for g in grads))
            for g in grads:
                g.div_(total)
            return super().step(closure)

    return Clipped(params, lr=lr)


def flat_sgd(params, *, lr: float = 0.1):
    "Flattens groups into one list: per-group rates are lost."
    flat = [
        p for group in params for p in (group["params"] if isinstance(group, dict) else [group])
    ]
    return torch.optim.SGD(flat, lr=lr)


@pytest.mark.parametrize(
    "hook, descriptor, message",
    [
        ("benchinit_initializers", Initializer("rng", global_rng_init), "is not deterministic"),
        ("benchinit_initializers", Initializer("pos", positional_init), "keyword-only"),
        ("benchinit_initializers", Initializer("noann", unannotated_init), "has no annotation"),
        (
            "benchinit_initializers",
            Initializer("baddef", bad_default_init),
            "the default of 'scale' fails its own annotation",
        ),
        ("benchinit_activations", Activation("softmax", softmax), "is not elementwise"),
        ("benchinit_losses", Loss("mean_loss", mean_loss), "one value per sample"),
        (
            "benchinit_optimizers",
            Optimizer("clipped", clipped_sgd),
            "declares elementwise=True, but stepping two rows together",
        ),
        ("benchinit_initializers", Initializer("xavier_normal", good_init), "does not load"),
        (
            "benchinit_optimizers",
            Optimizer("flat", flat_sgd, lr_scaling="sgd"),
            "declares lr_scaling, but a parameter group at half the rate",
        ),
    ],
)
def test_mistakes_are_caught_and_named(hook, descriptor, message):
    with pytest.raises(AssertionError, match=message):
        check_plugin(one(hook, descriptor))


def test_a_non_elementwise_optimizer_may_say_so():
    assert check_plugin(
        one("benchinit_optimizers", Optimizer("clipped", clipped_sgd, elementwise=False))
    ) == ["optimizer clipped"]


def grouped_sgd(params, *, lr: float = 0.1):
    "SGD over torch parameter groups."
    return torch.optim.SGD(params, lr=lr)


def test_an_optimizer_that_honours_group_rates_may_declare_lr_scaling():
    declared = Optimizer("grouped", grouped_sgd, lr_scaling="sgd")
    assert check_plugin(one("benchinit_optimizers", declared)) == ["optimizer grouped"]


def test_an_uninstalled_distribution_is_named():
    with pytest.raises(AssertionError, match="'benchinit-nothing' is not installed"):
        check_plugin("benchinit-nothing")


def xor_data(*, samples: int = 200, seed: int = 0):
    "Two noisy XOR clusters per class: a dataset plugin."
    from benchinit import Data

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (samples, 2), generator=g).float()
    y = (x[:, 0] != x[:, 1]).long()
    x = x + 0.1 * torch.randn(samples, 2, generator=g)
    cut = samples * 3 // 4
    return Data(x[:cut], y[:cut], x[cut:], y[cut:], "classification", 2)


def noisy_data(*, samples: int = 50):
    "Different data on every call."
    from benchinit import Data

    x = torch.randn(samples, 2)
    y = (x[:, 0] > 0).long()
    return Data(x[:40], y[:40], x[40:], y[40:], "classification", 2)


def test_a_dataset_plugin_conforms_and_trains():
    from benchinit import Dataset

    @hookimpl
    def benchinit_datasets():
        return [Dataset("xor", xor_data)]

    assert check_plugin(plugin(benchinit_datasets=benchinit_datasets)) == ["dataset xor"]


def test_a_random_dataset_is_caught():
    from benchinit import Dataset

    @hookimpl
    def benchinit_datasets():
        return [Dataset("noisy", noisy_data)]

    with pytest.raises(AssertionError, match="dataset 'noisy' is not deterministic"):
        check_plugin(plugin(benchinit_datasets=benchinit_datasets))
