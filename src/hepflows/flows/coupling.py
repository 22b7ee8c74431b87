"""Coupling blocks (RealNVP 1605.08803, NSF 1906.04032).

The first ``split`` features pass unchanged and, with the context, condition
an element-wise map of the remaining features. Inverse and forward both take
one network pass. Permutations between blocks (see :mod:`hepflows.flows.flows`)
decide which features sit in which half.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.flows.elementwise import ElementwiseMap
from hepflows.flows.nets import MLP
from hepflows.flows.transforms import Transform


class Coupling(Transform):
    """One coupling block: ``z = [x_a, g(x_b; net(x_a, c))]``.

    Args:
        features: F, total number of features.
        split: number of conditioning (unchanged) features, ``0 < split < F``.
        elementwise: the element-wise map g.
        context: C, context width.
        hidden: conditioner hidden widths.
        act: conditioner activation.
        bayesian: Bayesian conditioner layers.
    """

    def __init__(
        self,
        features: int,
        split: int,
        elementwise: ElementwiseMap,
        context: int = 0,
        hidden: Sequence[int] = (128, 128),
        act: str = "relu",
        bayesian: bool = False,
    ) -> None:
        super().__init__()
        if not 0 < split < features:
            raise ConfigError(f"split must lie in (0, {features}), got {split}")
        self.split = split
        self.elementwise = elementwise
        self.net = MLP(
            split + context,
            elementwise.params_per_feature,
            features - split,
            hidden=hidden,
            act=act,
            bayesian=bayesian,
        )

    def _params(self, xa: Tensor, context: Tensor | None) -> Tensor:
        if context is not None:
            xa = torch.cat((xa, context), dim=-1)
        return self.net(xa)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        xa, xb = x[..., : self.split], x[..., self.split :]
        zb, ladj = self.elementwise(xb.T, self._params(xa, context))
        return torch.cat((xa, zb.T), dim=-1), ladj.sum(0)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        za, zb = z[..., : self.split], z[..., self.split :]
        xb, ladj = self.elementwise(zb.T, self._params(za, context), inverse=True)
        return torch.cat((za, xb.T), dim=-1), ladj.sum(0)
