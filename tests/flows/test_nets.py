"""Conditioner networks (hepflows.flows.nets): MADE's autoregressive masks, MLP layout."""

from __future__ import annotations

import pytest
import torch

from helpers import randomize
from hepflows.flows import MADE, MLP, MaskedLinear
from hepflows.flows.nets import activation

F64 = torch.float64


def made_jacobians(made, features, context):
    """d params / d x and d params / d context at one random point: (P, F, F), (P, F, C)."""
    x = torch.randn(1, features, dtype=F64)
    c = torch.randn(1, context, dtype=F64)
    jac_x = torch.autograd.functional.jacobian(lambda u: made(u, c), x)[..., 0, 0, :]
    jac_c = torch.autograd.functional.jacobian(lambda v: made(x, v), c)[..., 0, 0, :]
    return jac_x, jac_c


@pytest.mark.parametrize("order", [None, [2, 0, 3, 1]])
@pytest.mark.parametrize("hidden", [(16, 16), (3,), (2, 7, 5)])
def test_made_is_autoregressive(order, hidden):
    """d params_i / d x_j = 0 unless j comes before i in the order (tanh: no dead units)."""
    features, params, context = 4, 3, 2
    made = MADE(features, params, context, hidden, order=order, act="tanh")
    made = randomize(made.to(F64), 0.5)
    rank = torch.arange(features) if order is None else torch.tensor(order)
    jac, _ = made_jacobians(made, features, context)
    allowed = rank[None, :] < rank[:, None]  # [i, j]: j before i
    assert (jac[:, ~allowed] == 0).all()
    if min(hidden) >= features - 1:  # wide enough to connect every allowed pair
        assert (jac[:, allowed] != 0).all()


@pytest.mark.parametrize("features", [1, 2, 4])
def test_made_every_output_depends_on_the_context(features):
    """The context is not autoregressive: every feature's parameters may depend on it
    (the docstring: "the context, which connects to every hidden unit").

    The output mask ``deg_out > deg_hidden`` leaves the first feature in the order
    with no hidden unit at all, so its parameters are a constant bias and ignore
    the context; with one feature, a conditional MAF/IAF ignores the context
    entirely (see test_flows). zuko's MADE connects the context to every output.
    """
    made = randomize(MADE(features, 3, 2, (16, 16), act="tanh").to(F64), 0.5)
    _, jac_c = made_jacobians(made, features, 2)
    depends = (jac_c != 0).any(-1).any(0)  # per feature
    assert depends.all(), f"features whose parameters ignore the context: {~depends}"


def test_made_output_layout_and_zero_init():
    made = MADE(3, 5, context=1, hidden=(8,))
    out = made(torch.randn(7, 3), torch.randn(7, 1))
    assert out.shape == (5, 3, 7) and out.is_contiguous()
    assert (out == 0).all()  # zero last layer: a fresh flow is the identity


def test_mlp_output_layout_matches_a_plain_linear_layer():
    """MLP emits (P, F, N) with out[p, f, n] = last(h_n)[p * F + f] (parameter axis first)."""
    mlp = randomize(MLP(inputs=4, params=3, features=2, hidden=(8,)).to(F64), 0.5)
    x = torch.randn(5, 4, dtype=F64)
    out = mlp(x)
    ref = mlp.last(mlp.hidden(x))  # (N, P * F)
    assert out.shape == (3, 2, 5)
    torch.testing.assert_close(out, ref.T.reshape(3, 2, 5))


def test_mlp_zero_init_and_kl():
    mlp = MLP(4, 3, 2, hidden=(8,))
    assert (mlp(torch.randn(6, 4)) == 0).all()
    assert mlp.kl().item() == 0


def test_masked_linear_applies_its_mask():
    mask = torch.tensor([[1, 0, 1], [0, 0, 1]])
    layer = randomize(MaskedLinear(mask), 0.5)
    x = torch.randn(4, 3)
    torch.testing.assert_close(layer(x), x @ (layer.weight * mask).T + layer.bias)


def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activation("swish")


def test_made_refuses_an_order_that_is_not_a_permutation():
    from hepflows.errors import ConfigError

    with pytest.raises(ConfigError, match="permutation of range"):
        MADE(3, 2, order=torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="permutation of range"):
        MADE(3, 2, order=torch.tensor([0, 0, 2]))
