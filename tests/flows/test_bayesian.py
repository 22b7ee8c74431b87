"""Variational Bayesian linear layers (hepflows.flows.bayesian.VBLinear)."""

from __future__ import annotations

import math

import torch

from hepflows.flows import VBLinear

F64 = torch.float64


def test_kl_matches_the_closed_form_gaussian_kl():
    """KL(N(mu, s^2) || N(0, 1/prec)) summed over weights, against torch.distributions."""
    layer = VBLinear(5, 3, prior_prec=2.0).to(F64)
    with torch.no_grad():
        layer.logsig2_w.uniform_(-6, 1)
    q = torch.distributions.Normal(layer.mu_w, layer.logsig2_w.exp().sqrt())
    p = torch.distributions.Normal(0.0, 1 / math.sqrt(2.0))
    ref = torch.distributions.kl_divergence(q, p).sum()
    torch.testing.assert_close(layer.kl(), ref)


def test_eval_uses_means_and_training_samples_with_the_right_variance():
    torch.manual_seed(0)
    layer = VBLinear(4, 2).to(F64)
    with torch.no_grad():
        layer.logsig2_w.fill_(math.log(0.3))
    x = torch.tensor([[1.0, -2.0, 0.5, 0.0]], dtype=F64)
    mean = x @ layer.mu_w.T + layer.bias
    layer.eval()
    assert torch.equal(layer(x), mean)
    layer.sample_in_eval = True
    assert not torch.equal(layer(x), layer(x))
    # Local reparametrisation: output variance = sum_j x_j^2 sigma_j^2.
    layer.train()
    draws = layer(x.expand(20_000, 4))  # independent noise per row
    torch.testing.assert_close(draws.mean(0), mean[0], rtol=0, atol=0.03)
    var = (x**2).sum() * 0.3
    torch.testing.assert_close(draws.var(0), var.expand(2), rtol=0.05, atol=0)


def test_gradients_reach_means_and_variances():
    layer = VBLinear(3, 2)
    layer.train()
    (layer(torch.randn(8, 3)) ** 2).sum().add(layer.kl()).backward()
    assert layer.mu_w.grad.abs().sum() > 0 and layer.logsig2_w.grad.abs().sum() > 0
