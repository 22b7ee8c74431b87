"""Invertible transforms: the unit every flow is built from.

A :class:`Transform` maps data ``x`` to latent ``z`` (the normalising
direction) and returns ``(z, log|det dz/dx|)``; ``inverse`` maps back and
returns ``(x, log|det dx/dz|)``. Both take an optional context tensor, so
every transform can be conditional. Shapes: ``x``, ``z``: (N, F);
``context``: (N, C) or ``None``; log-determinants: (N,).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from hepflows.errors import ConfigError


class Transform(nn.Module):
    """Base class of invertible maps with tractable log|det J| in both directions."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map data to latent space.

        Args:
            x: (N, F) inputs.
            context: (N, C) conditioning variables or ``None``.

        Returns:
            ``(z, ladj)`` with z: (N, F) and ladj = log|det dz/dx|: (N,).
        """
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map latent to data space.

        Args:
            z: (N, F) latent points.
            context: (N, C) conditioning variables or ``None``.

        Returns:
            ``(x, ladj)`` with x: (N, F) and ladj = log|det dx/dz|: (N,).
        """
        raise NotImplementedError


class Compose(Transform):
    """Chain of transforms, applied in order in the forward direction.

    Args:
        transforms: the transforms, first applied first.
    """

    def __init__(self, transforms: Iterable[Transform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[:-1])
        for t in self.transforms:
            x, ladj = t(x, context)
            total = total + ladj
        return x, total

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = z.new_zeros(z.shape[:-1])
        for t in reversed(self.transforms):
            z, ladj = t.inverse(z, context)
            total = total + ladj
        return z, total


class Inverse(Transform):
    """The inverse of a transform: swaps ``forward`` and ``inverse``.

    An IAF block is ``Inverse`` of a MAF block: one pass for sampling.
    """

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform(z, context)


class Permutation(Transform):
    """Fixed permutation of the features (volume preserving).

    Args:
        permutation: (F,) a permutation of ``range(F)``; output feature i is
            input feature ``permutation[i]``.
    """

    def __init__(self, permutation: Tensor) -> None:
        super().__init__()
        permutation = torch.as_tensor(permutation, dtype=torch.long)
        if not torch.equal(permutation.sort().values, torch.arange(len(permutation))):
            raise ConfigError(f"not a permutation of range({len(permutation)}): {permutation}")
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[..., self.permutation], x.new_zeros(x.shape[:-1])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z[..., self.inverse_permutation], z.new_zeros(z.shape[:-1])


class Logit(Transform):
    """Logit pre-processing from the unit cube to the real line.

    ``z = logit(alpha + (1 - 2 alpha) x)``: the shrink ``alpha`` keeps points on
    the faces of the cube finite (CaloFlow uses alpha = 1e-6).

    Args:
        alpha: shrink towards the centre, in [0, 0.5).
    """

    def __init__(self, alpha: float = 0.0) -> None:
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ConfigError(f"alpha must lie in [0, 0.5), got {alpha}")
        self.alpha = alpha

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        scale = 1 - 2 * self.alpha
        u = self.alpha + scale * x
        log_u, log_1mu = torch.log(u), torch.log1p(-u)
        log_scale = torch.log(torch.as_tensor(scale, dtype=x.dtype, device=x.device))
        ladj = (log_scale - log_u - log_1mu).sum(-1)
        return log_u - log_1mu, ladj

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        scale = 1 - 2 * self.alpha
        u = torch.sigmoid(z)
        x = (u - self.alpha) / scale
        # d u / d z = u (1 - u) = exp(logsigmoid(z) + logsigmoid(-z))
        ladj = (
            nn.functional.logsigmoid(z)
            + nn.functional.logsigmoid(-z)
            - torch.log(torch.as_tensor(scale, dtype=z.dtype, device=z.device))
        ).sum(-1)
        return x, ladj


class Sigmoid(Inverse):
    """Sigmoid post-processing from the real line to the unit cube (inverse of :class:`Logit`)."""

    def __init__(self, alpha: float = 0.0) -> None:
        super().__init__(Logit(alpha))
