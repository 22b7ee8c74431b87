"""Variational Bayesian linear layers (BINN, Bellagente et al. 2104.04543).

Each weight has a Gaussian posterior N(mu, sigma^2); a forward pass in
training mode samples the pre-activations with the local reparametrisation
trick, and :meth:`VBLinear.kl` gives the KL divergence to the prior N(0, 1)
that enters the ELBO. In evaluation mode the layer uses its means, unless
:attr:`VBLinear.sample_in_eval` is set (to sample an ensemble of flows).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class VBLinear(nn.Module):
    """Bayesian linear layer with a factorised Gaussian weight posterior.

    Args:
        in_features: input width.
        out_features: output width.
        prior_prec: precision of the Gaussian prior on the weights.
    """

    def __init__(self, in_features: int, out_features: int, prior_prec: float = 1.0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.prior_prec = prior_prec
        self.sample_in_eval = False
        #: the weight noise's stream (None: torch's global one)
        self.generator: torch.Generator | None = None
        self.mu_w = nn.Parameter(torch.empty(out_features, in_features))
        self.logsig2_w = nn.Parameter(torch.full((out_features, in_features), -9.0))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.normal_(self.mu_w, 0.0, 1.0 / math.sqrt(in_features))

    def forward(self, x: Tensor) -> Tensor:
        """(N, in) -> (N, out); sampled in training mode."""
        mu = nn.functional.linear(x, self.mu_w, self.bias)
        if not (self.training or self.sample_in_eval):
            return mu
        var = nn.functional.linear(x * x, self.logsig2_w.clamp(-11, 11).exp())
        noise = torch.randn(mu.shape, generator=self.generator, dtype=mu.dtype, device=mu.device)
        return mu + var.clamp_min(1e-16).sqrt() * noise

    def kl(self) -> Tensor:
        """KL(q(w) || N(0, 1/prior_prec)) summed over the weights: a scalar."""
        logsig2 = self.logsig2_w.clamp(-11, 11)
        return 0.5 * (
            self.prior_prec * (self.mu_w**2 + logsig2.exp())
            - logsig2
            - 1
            - math.log(self.prior_prec)
        ).sum()
