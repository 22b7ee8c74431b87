"""Base distributions of the flows: standard normal (real domain) and uniform (unit cube)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class BaseDistribution(nn.Module):
    """A fixed distribution on R^F or [0, 1]^F with sampling and log-density.

    Args:
        features: F.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        # A buffer so that .to(device/dtype) moves the distribution with the flow.
        self.register_buffer("_ref", torch.zeros(()))

    def log_prob(self, z: Tensor) -> Tensor:
        """(N, F) -> (N,) log-density."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw (n, F) samples."""
        raise NotImplementedError


class StandardNormal(BaseDistribution):
    """N(0, 1)^F."""

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (z * z).sum(-1) - 0.5 * self.features * math.log(2 * math.pi)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        ref = self._ref
        return torch.randn(
            n, self.features, generator=generator, dtype=ref.dtype, device=ref.device
        )


class UnitUniform(BaseDistribution):
    """Uniform on the unit cube [0, 1]^F (density 1 inside, 0 outside)."""

    def log_prob(self, z: Tensor) -> Tensor:
        inside = ((z >= 0) & (z <= 1)).all(-1)
        return torch.where(inside, 0.0, -math.inf).to(z.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        ref = self._ref
        return torch.rand(n, self.features, generator=generator, dtype=ref.dtype, device=ref.device)
