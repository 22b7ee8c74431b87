"""Masked autoregressive blocks (MAF 1705.07057, IAF 1606.04934).

:class:`MaskedAutoregressive` conditions the map of feature i on the
features before it through a MADE network. In the normalising direction
(data -> latent) it takes one network pass and is the MAF block; its inverse
needs F passes. :class:`InverseAutoregressive` is the IAF block: one pass for
sampling, F passes for the density. It mirrors a MAF block parameter for
parameter (its sampling pass applies the *inverse* element-wise map, as the
MAF block's density pass inverts the forward one), so that a student IAF can
learn a teacher MAF's conditioner outputs block by block (CaloFlow II,
2110.11377).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hepflows.flows.elementwise import ElementwiseMap
from hepflows.flows.nets import MADE
from hepflows.flows.transforms import Transform


class MaskedAutoregressive(Transform):
    """Autoregressive block ``z_i = g(x_i; made(x_<i, c))``.

    Args:
        features: F.
        elementwise: the element-wise map g.
        context: C, context width.
        hidden: MADE hidden widths.
        order: (F,) autoregressive order; default 0..F-1.
        act: activation name.
    """

    def __init__(
        self,
        features: int,
        elementwise: ElementwiseMap,
        context: int = 0,
        hidden: Sequence[int] = (128, 128),
        order: Tensor | None = None,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.features = features
        self.elementwise = elementwise
        self.made = MADE(
            features, elementwise.params_per_feature, context, hidden, order=order, act=act
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, ladj = self.elementwise(x.T, self.made(x, context))
        return z.T, ladj.sum(0)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._sequential(z, context, inverse=True)

    def _sequential(
        self, y: Tensor, context: Tensor | None, inverse: bool
    ) -> tuple[Tensor, Tensor]:
        """Solve ``out_i = g^(-1 if inverse)(y_i; made(out_<i))`` one feature per pass.

        Pass k computes only feature k of the order (its conditioner row and
        its element-wise map); a final full pass gives the log-determinant.
        (N, F) -> (N, F), (N,).
        """
        out = y.new_zeros(y.shape)
        columns = torch.arange(self.features, device=y.device)
        for i in self.made.order.argsort().tolist():  # features in autoregressive order
            oi, _ = self.elementwise(y[:, i], self.made.feature(out, context, i), inverse=inverse)
            out = torch.where(columns == i, oi[:, None], out)
        ot, ladj = self.elementwise(y.T, self.made(out, context), inverse=inverse)
        return ot.T, ladj.sum(0)


class InverseAutoregressive(MaskedAutoregressive):
    """IAF block ``x_i = g^-1(z_i; made(z_<i, c))``: sampling in one network pass.

    The same arguments as :class:`MaskedAutoregressive`. An ideal IAF copy of a
    MAF block ``z_i = g(x_i; made_T(x_<i))`` has ``made(z_<i) = made_T(x_<i)``:
    the conditioners of teacher and student can be compared directly.
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # z_i = g(x_i; made(z_<i)): F passes, one feature each.
        return self._sequential(x, context, inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, ladj = self.elementwise(z.T, self.made(z, context), inverse=True)
        return x.T, ladj.sum(0)
