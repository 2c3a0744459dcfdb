"""Plugin specs: parsing, binding against signatures, labels."""

from __future__ import annotations

import pytest

from benchinit.plugins.registry import Registry
from benchinit.plugins.specs import SpecError, parse_spec

REGISTRY = Registry(autoload=False)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("relu", ("relu", (), {})),
        ("normal(std=0.01)", ("normal", (), {"std": 0.01})),
        ("uniform(-1, 1)", ("uniform", (-1, 1), {})),
        (
            "sgd(lr=0.1, nesterov=true, momentum=0.9)",
            ("sgd", (), {"lr": 0.1, "nesterov": True, "momentum": 0.9}),
        ),
        ({"name": "sgd", "lr": 0.1}, ("sgd", (), {"lr": 0.1})),
    ],
)
def test_parse(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec, match",
    [
        ("normal(std=)", "cannot parse"),
        ("normal(std=os.system('x'))", "must be literals"),
        ("a.b", "expected name"),
        (42, "expected a spec"),
        ({"lr": 0.1}, "needs a string 'name'"),
        ("normal(std=1, std=2)", "'std' given twice"),
        ("normal(mean=0, std=1, mean=5)", "'mean' given twice"),
    ],
)
def test_parse_errors(spec, match):
    with pytest.raises(SpecError, match=match):
        parse_spec(spec)


def test_binding_fills_defaults_and_widens_ints():
    bound = REGISTRY.bind("initializer", "normal(std=1)")
    assert bound.params == {"mean": 0.0, "std": 1.0}
    assert isinstance(bound.params["std"], float)
    assert bound.label == "normal"  # labels show only what differs from the defaults
    assert REGISTRY.bind("initializer", "uniform(-1, 1)").label == "uniform(a=-1)"
    assert (
        REGISTRY.bind("optimizer", "sgd(lr=0.1, momentum=0.9)").label == "sgd(lr=0.1, momentum=0.9)"
    )
    assert (
        REGISTRY.bind("initializer", "kaiming_normal(mode='fan_out')").label
        == "kaiming_normal(mode='fan_out')"
    )


@pytest.mark.parametrize(
    "spec, match",
    [
        ("normal(sdt=0.1)", r"has no parameter 'sdt'\. Did you mean 'std'\?"),
        ("normal(std='big')", "must be a number, got 'big'"),
        ("kaiming_normal(mode='fan_middle')", "must be one of 'fan_in', 'fan_out'"),
        ("constant", r"needs parameter 'value'"),
        ("sgd(lr=0.1, schedule='linear')", "must be one of 'constant', 'step'"),
        ("train_data(1, 2, 3)", "unknown"),
        ("normal(0, 1, 2)", "takes at most 2 parameters"),
        ("xavier_normal(gain='relu')", r"must be a number or one of 'activation'"),
        ("sgd(nesterov=1)", "must be true or false"),
        ("sgd(schedule='step', step_size=0)", "must be an integer, at least 1, got 0"),
        ("sgd(schedule='step', step_size=-3)", "must be an integer, at least 1, got -3"),
        ("sgd(schedule='cosine', eta_min=-0.1)", "at least 0, got -0.1"),
    ],
)
def test_bind_errors(spec, match):
    kind = "optimizer" if spec.startswith("sgd") else "initializer"
    with pytest.raises(SpecError, match=match):
        REGISTRY.bind(kind, spec)
