"""Toy 2D densities for demos and tests: two moons, ring, Gaussian mixture.

Each sampler takes ``n`` and an optional ``torch.Generator`` and returns (n, 2)
float32 samples; where the density is known in closed form a ``*_log_prob``
function gives it, for exact KL estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from hepflows.errors import ConfigError


def two_moons(n: int, generator: torch.Generator | None = None, noise: float = 0.1) -> Tensor:
    """Two interleaved half circles with Gaussian noise, centred near the origin: (n, 2)."""
    half = n // 2
    t = math.pi * torch.rand(n, generator=generator)
    upper = torch.stack((torch.cos(t[:half]), torch.sin(t[:half])), -1)
    lower = torch.stack((1 - torch.cos(t[half:]), 0.5 - torch.sin(t[half:])), -1)
    x = torch.cat((upper, lower)) + noise * torch.randn(n, 2, generator=generator)
    x = (x - torch.tensor([0.5, 0.25])) * 2
    return x[torch.randperm(n, generator=generator)]


RING_RADIUS, RING_WIDTH = 2.0, 0.2


def ring(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Ring: radius ~ N(2, 0.2) (folded to r > 0), uniform angle: (n, 2)."""
    r = (RING_RADIUS + RING_WIDTH * torch.randn(n, generator=generator)).abs()
    phi = 2 * math.pi * torch.rand(n, generator=generator)
    return torch.stack((r * torch.cos(phi), r * torch.sin(phi)), -1)


def ring_log_prob(x: Tensor) -> Tensor:
    """Exact log-density of :func:`ring`: (n, 2) -> (n,)."""
    r = x.norm(dim=-1).clamp_min(1e-12)
    normal = torch.distributions.Normal(RING_RADIUS, RING_WIDTH)
    folded = torch.logaddexp(normal.log_prob(r), normal.log_prob(-r))
    return folded - torch.log(2 * math.pi * r)


MIXTURE_RADIUS, MIXTURE_WIDTH, MIXTURE_MODES = 2.0, 0.2, 8


def _mixture_centres(dtype: torch.dtype = torch.float32) -> Tensor:
    a = 2 * math.pi * torch.arange(MIXTURE_MODES, dtype=dtype) / MIXTURE_MODES
    return MIXTURE_RADIUS * torch.stack((torch.cos(a), torch.sin(a)), -1)


def gaussian_mixture(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Eight Gaussians (sigma 0.2) on a circle of radius 2: (n, 2)."""
    k = torch.randint(MIXTURE_MODES, (n,), generator=generator)
    return _mixture_centres()[k] + MIXTURE_WIDTH * torch.randn(n, 2, generator=generator)


def gaussian_mixture_log_prob(x: Tensor) -> Tensor:
    """Exact log-density of :func:`gaussian_mixture`: (n, 2) -> (n,)."""
    d2 = ((x[:, None, :] - _mixture_centres(x.dtype)) ** 2).sum(-1)
    log_n = -0.5 * d2 / MIXTURE_WIDTH**2 - math.log(2 * math.pi * MIXTURE_WIDTH**2)
    return torch.logsumexp(log_n, -1) - math.log(MIXTURE_MODES)


#: Sampler by name, as used by ``hepflows demo flows --density``.
DENSITIES: dict[str, Callable[..., Tensor]] = {
    "two-moons": two_moons,
    "ring": ring,
    "gaussian-mixture": gaussian_mixture,
}

#: Exact log-densities where known.
LOG_PROBS: dict[str, Callable[[Tensor], Tensor]] = {
    "ring": ring_log_prob,
    "gaussian-mixture": gaussian_mixture_log_prob,
}


def sampler(name: str) -> Callable[..., Tensor]:
    """Toy sampler by name; a clear error lists the known names."""
    try:
        return DENSITIES[name]
    except KeyError:
        known = sorted(DENSITIES)
        raise ConfigError(f"unknown toy density {name!r}: choose from {known}") from None
