"""Reference densities for the learning tests, next to the samplers of ``hepflows.toys``.

``hepflows.toys`` provides the 2D samplers (two moons, ring, 8-Gaussian mixture)
and exact log-densities for the ring and the mixture. Here:

* :func:`two_moons_log_prob`: the log-density of ``hepflows.toys.two_moons`` by
  quadrature over the curve parameter (not in closed form);
* :func:`correlated_gaussian`: a seeded D-dimensional Gaussian with a random SPD
  covariance;
* :class:`ConditionalGaussian`: x | c ~ N((c, -c), (0.5 + 0.3 c)^2 I), c ~ U(0, 1).

All of them take an explicit ``torch.Generator`` where they draw.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

#: two_moons convention (hepflows.toys): curves scaled by 2 about (0.5, 0.25), noise 0.1 * 2.
MOONS_NOISE = 0.2


def _moon_nodes(nodes: int) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre nodes on both (scaled, centred) half circles and their log-weights.

    Returns:
        (2 * nodes, 2) points c(t_k) and (2 * nodes,) log of w_k / (2 pi), the weights
        of the average over t ~ U(0, pi) and over the two moons.
    """
    t, w = np.polynomial.legendre.leggauss(nodes)
    t = torch.as_tensor(math.pi * (t + 1) / 2)
    w = torch.as_tensor(w / 2)  # weights of the mean over t ~ U(0, pi): they sum to 1
    upper = torch.stack((torch.cos(t), torch.sin(t)), -1)
    lower = torch.stack((1 - torch.cos(t), 0.5 - torch.sin(t)), -1)
    centre = torch.tensor([0.5, 0.25], dtype=torch.float64)
    points = 2 * (torch.cat((upper, lower)) - centre)
    return points, torch.log(torch.cat((w, w)) / 2)


def two_moons_log_prob(x: Tensor, nodes: int = 200, chunk: int = 4096) -> Tensor:
    """Log-density of ``hepflows.toys.two_moons`` (noise 0.1): (n, 2) -> (n,).

    p(x) = 1/2 sum over both moons of (1/pi) int_0^pi N(x; c(t), 0.2^2 I) dt, the
    t-integral by Gauss-Legendre quadrature with ``nodes`` nodes per moon
    (converged to < 1e-8 in log p at 200 nodes, see tests/test_toys.py).
    """
    points, log_w = _moon_nodes(nodes)
    out = []
    for xs in x.to(torch.float64).split(chunk):
        d2 = ((xs[:, None, :] - points) ** 2).sum(-1)
        log_n = -0.5 * d2 / MOONS_NOISE**2 - math.log(2 * math.pi * MOONS_NOISE**2)
        out.append(torch.logsumexp(log_n + log_w, -1))
    return torch.cat(out).to(x.dtype)


def correlated_gaussian(
    dim: int = 16, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.distributions.MultivariateNormal:
    """N(mu, Sigma) with mu ~ N(0, 1) and a random SPD Sigma = Q diag(lambda) Q^T.

    Q is a random rotation, the variances lambda are log-uniform in [0.1, 2]
    (standard deviations 0.3 to 1.4), so all features are strongly correlated.
    """
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    lam = torch.exp(
        math.log(0.1) + math.log(20) * torch.rand(dim, generator=g, dtype=torch.float64)
    )
    cov = (q * lam) @ q.T
    cov = 0.5 * (cov + cov.T)
    mu = torch.randn(dim, generator=g, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(mu.to(dtype), cov.to(dtype))


class ConditionalGaussian:
    """x | c ~ N(mu(c), sigma(c)^2 I_2), mu(c) = (c, -c), sigma(c) = 0.5 + 0.3 c, c ~ U(0, 1)."""

    @staticmethod
    def mean(c: Tensor) -> Tensor:
        """(n, 1) -> (n, 2)."""
        return torch.cat((c, -c), -1)

    @staticmethod
    def std(c: Tensor) -> Tensor:
        """(n, 1) -> (n, 1)."""
        return 0.5 + 0.3 * c

    @classmethod
    def sample(cls, n: int, generator: torch.Generator, c: Tensor | None = None):
        """Draw (x, c): (n, 2), (n, 1); c ~ U(0, 1) unless given ((n, 1) or (1,))."""
        if c is None:
            c = torch.rand(n, 1, generator=generator)
        c = c.expand(n, 1)
        x = cls.mean(c) + cls.std(c) * torch.randn(n, 2, generator=generator)
        return x, c

    @classmethod
    def log_prob(cls, x: Tensor, c: Tensor) -> Tensor:
        """(n, 2), (n, 1) -> (n,)."""
        s = cls.std(c).squeeze(-1)
        d2 = ((x - cls.mean(c)) ** 2).sum(-1)
        return -0.5 * d2 / s**2 - 2 * torch.log(s) - math.log(2 * math.pi)
