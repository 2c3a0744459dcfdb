"""Stacked MLPs with residual and normalized layers: a stack is exactly G separate models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchinit.engine.models import StackedMLP

F64 = torch.float64
G, B, SIZES = 4, 16, [5, 8, 8, 8, 3]  # 3 hidden layers of 8, a head of 3
VARIANTS = {
    "plain": {},
    "residual": {"residual": 0.5},
    "layer": {"norm": "layer"},
    "batch": {"norm": "batch"},
    "residual-batch": {"residual": 1 / math.sqrt(3), "norm": "batch"},
}


def stacked(members: int = G, seed: int = 0, **kwargs) -> StackedMLP:
    """A float64 stack with random weights, biases, gains and shifts (away from 1 and 0)."""
    model = StackedMLP(members, SIZES, head=True, bias=True, dtype=F64, **kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) / math.sqrt(p.shape[-1]))
        for gain in model.gains or []:
            gain.add_(1.0)
    return model


def alone(model: StackedMLP, g: int) -> StackedMLP:
    """Member g as a model of its own (parameters and running statistics copied)."""
    single = StackedMLP(
        1, SIZES, head=True, bias=True, residual=model.residual, norm=model.norm, dtype=F64
    )
    single.load_state_dict({k: v[g : g + 1].clone() for k, v in model.state_dict().items()})
    single.train(model.training)
    return single


def inputs(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("shared", [True, False], ids=["shared-inputs", "per-member-inputs"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_stacked_equals_alone_forward_and_gradients(variant, shared):
    model = stacked(**VARIANTS[variant])
    singles = [alone(model, g) for g in range(G)]
    x = inputs((B, 5) if shared else (G, B, 5))
    r = inputs((G, B, 3), seed=2)  # a fixed random read-out: loss_g = mean_b r_gb . out_gb
    trace: list = []
    out = model(x, torch.tanh, trace)
    (out * r).sum(2).mean(1).sum().backward()
    for g, single in enumerate(singles):
        single_trace: list = []
        own = single(x if shared else x[g : g + 1], torch.tanh, single_trace)
        (own * r[g : g + 1]).sum(2).mean(1).sum().backward()
        assert torch.allclose(out[g], own[0], rtol=0, atol=1e-13)
        for (pre, act), (own_pre, own_act) in zip(trace, single_trace, strict=True):
            assert torch.allclose(pre[g], own_pre[0], atol=1e-13)
            assert torch.allclose(act[g], own_act[0], atol=1e-13)
        for p, q in zip(model.parameters(), single.parameters(), strict=True):
            assert torch.allclose(p.grad[g], q.grad[0], rtol=0, atol=1e-13)
        for b, c in zip(model.buffers(), single.buffers(), strict=True):
            assert torch.allclose(b[g], c[0], rtol=0, atol=1e-13)


def train(model: StackedMLP, optimizer: str, batches: torch.Tensor, targets: torch.Tensor) -> None:
    """A few steps on per-member minibatches ``[steps, G, B, in]``; losses summed over members."""
    params = list(model.parameters())
    opt = (
        torch.optim.SGD(params, lr=0.1, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.Adam(params, lr=0.01)
    )
    for x, y in zip(batches, targets, strict=True):
        opt.zero_grad()
        F.mse_loss(model(x, torch.tanh), y, reduction="none").mean((1, 2)).sum().backward()
        opt.step()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_training_stacked_equals_training_alone(variant, optimizer):
    model = stacked(**VARIANTS[variant])
    singles = [alone(model, g) for g in range(G)]
    x, y = inputs((6, G, B, 5), seed=3), inputs((6, G, B, 3), seed=4)
    train(model, optimizer, x, y)
    for g, single in enumerate(singles):
        train(single, optimizer, x[:, g : g + 1], y[:, g : g + 1])
        for p, q in zip(model.state_dict().values(), single.state_dict().values(), strict=True):
            assert torch.allclose(p[g], q[0], rtol=0, atol=1e-10)
    moved = stacked(**VARIANTS[variant])
    assert not torch.allclose(moved.kernels[1], model.kernels[1])  # it did train


def test_norms_are_torchs():
    """Layer norm is F.layer_norm; batch norm is BatchNorm1d, running statistics included."""
    x = inputs((B, 5))
    layer = stacked(1, norm="layer")
    z = layer.affine(0, x)[0]
    expected = F.layer_norm(z, (8,), layer.gains[0][0], layer.shifts[0][0], eps=1e-5)
    trace: list = []
    layer(x, torch.tanh, trace)
    assert torch.allclose(trace[0][0][0], expected)

    batch = stacked(1, norm="batch")
    torch_bn = torch.nn.BatchNorm1d(8, dtype=F64)
    with torch.no_grad():
        torch_bn.weight.copy_(batch.gains[0][0])
        torch_bn.bias.copy_(batch.shifts[0][0])
    for seed in range(3):  # three training-mode passes move the running statistics
        x = inputs((B, 5), seed=seed)
        trace = []
        batch(x, torch.tanh, trace)
        assert torch.allclose(trace[0][0][0], torch_bn(batch.affine(0, x)[0]))
    mean, var = batch.running(0)
    assert torch.allclose(mean[0], torch_bn.running_mean)
    assert torch.allclose(var[0], torch_bn.running_var)
    batch.eval(), torch_bn.eval()
    trace = []
    batch(x, torch.tanh, trace)
    assert torch.allclose(trace[0][0][0], torch_bn(batch.affine(0, x)[0]))


def test_batch_norm_uses_the_batch_in_training_and_running_statistics_in_eval():
    model = stacked(norm="batch")
    x, other = inputs((B, 5)), inputs((B, 5), seed=7)
    mixed = torch.cat([x[:1], other[1:]])  # the first sample, in another batch
    before = [b.clone() for b in model.buffers()]
    assert not torch.allclose(model(x, torch.tanh)[:, 0], model(mixed, torch.tanh)[:, 0])
    assert not all(torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))
    model.eval()
    frozen = [b.clone() for b in model.buffers()]
    assert torch.allclose(model(x, torch.tanh)[:, 0], model(mixed, torch.tanh)[:, 0])
    assert torch.allclose(model(x[:1], torch.tanh)[:, 0], model(x, torch.tanh)[:, 0])  # batch of 1
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.buffers(), strict=True))
    model.train()
    with pytest.raises(ValueError, match="batches of 2 or more"):
        model(x[:1], torch.tanh)


def test_residual_layers_add_their_input_and_layer_1_stays_plain():
    model = stacked(residual=0.3)
    x = inputs((B, 5))
    trace: list = []
    model(x, torch.tanh, trace)
    (pre1, out1), *rest = trace
    assert torch.allclose(out1, torch.tanh(pre1))  # inputs -> width: plain
    assert torch.allclose(pre1, model.affine(0, x))
    previous = out1
    for layer, (pre, out) in enumerate(rest, start=1):
        assert torch.allclose(pre, model.affine(layer, previous))
        assert torch.allclose(out, previous + 0.3 * torch.tanh(pre))
        previous = out


def test_plain_forward_is_the_textbook_mlp():
    model = stacked()
    x = inputs((B, 5))
    out = model(x, torch.relu)
    for g in range(G):
        h = x
        for layer, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
            z = h @ w[g].T + b[g]
            h = torch.relu(z) if layer < model.hidden else z
        assert torch.allclose(out[g], h)


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_view_preactivation_honours_residual_and_norm(variant):
    """What the LSUV plugin sees: phi's argument per hidden layer, the output at the head."""
    model = stacked(**VARIANTS[variant])
    x = inputs((B, 5))
    trace: list = []
    with torch.no_grad():
        out = model(x, torch.tanh, trace)
    running = [b.clone() for b in model.buffers()]
    for g in range(G):
        view = model.member(g, torch.tanh)
        for layer, (pre, _) in enumerate(trace):
            assert torch.allclose(view.preactivation(layer, x), pre[g], atol=1e-13)
        assert torch.allclose(view.preactivation(model.hidden, x), out[g], atol=1e-13)
        with pytest.raises(IndexError):
            view.preactivation(model.layers, x)
    assert all(torch.equal(a, b) for a, b in zip(running, model.buffers(), strict=True))


def test_keep_drops_members_with_their_norms_and_statistics():
    model = stacked(residual=0.5, norm="batch")
    x = inputs((B, 5))
    model(x, torch.tanh)  # running statistics that differ per member
    model.eval()
    before = model(x, torch.tanh)
    model.keep([3, 1])
    assert model.members == 2
    assert torch.allclose(model(x, torch.tanh), before[[3, 1]])
    assert all(b.shape[0] == 2 for b in model.buffers())


def test_bad_configurations_are_errors():
    with pytest.raises(ValueError, match="'none', 'layer', 'batch'"):
        StackedMLP(2, [4, 4], head=False, bias=False, norm="group")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"equal input and output widths; layers \[3\]"):
        StackedMLP(2, [4, 6, 6, 5], head=False, bias=False, residual=1.0)
    StackedMLP(2, [4, 6, 6, 6, 2], head=True, bias=False, residual=1.0)  # layer 1 may change width
