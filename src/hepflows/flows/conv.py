"""Convolutional coupling flows on a cylindrical (angle x radius) grid (convolutional L2LFlows).

The F = A x R features are the cells of a grid (A angles, R radii, angle-major as
the CaloChallenge voxels). A :class:`GridCoupling` block transforms one colour of
a checkerboard conditioned on the other: its conditioner is a stack of 3 x 3
convolutions over the grid, **periodic in angle** (circular padding) and
zero-padded in radius, whose input channels are the identity cells (the
transformed cells zeroed), the checkerboard mask itself and any context grids
(e.g. the previous calorimeter layer). Context that is not a grid (energies,
layer index) shifts every channel of the first convolution (a learned bias per
channel, FiLM-style). Consecutive blocks swap the colours. Density and sampling
both take one network pass per block.

The convolution's weights are shared over the grid, so the conditioner's size
does not grow with the number of cells (dataset 3 has 50 x 18 = 900 per layer).
Diefenbacher et al. use U-Net conditioners; this is a plain convolution stack
(receptive field 2L + 1 cells for L convolutions), stated as such.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hepflows.errors import ConfigError
from hepflows.flows.elementwise import ElementwiseMap
from hepflows.flows.flows import ConfiguredFlow
from hepflows.flows.nets import _zero_init, activation
from hepflows.flows.transforms import Transform


class CylinderConv(nn.Module):
    """3 x 3 convolution over an (A, R) grid, periodic in A, zero-padded in R.

    Written as a gather of each cell's 9 neighbours and one matrix product: on CPUs
    this beats ``nn.Conv2d`` on grids of a few hundred cells and thousands of rows.
    Grids are held as (N, F, C) with F = A * R cells.

    Args:
        channels_in: C_in.
        channels_out: C_out.
        grid: (A, R).
    """

    def __init__(self, channels_in: int, channels_out: int, grid: tuple[int, int]) -> None:
        super().__init__()
        a, r = grid
        da = torch.tensor([-1, 0, 1])
        ia = (torch.arange(a)[:, None, None, None] + da[None, None, :, None]) % a  # wraps
        ir = torch.arange(r)[None, :, None, None] + da[None, None, None, :]
        index = torch.where((ir >= 0) & (ir < r), ia * r + ir.clamp(0, r - 1), a * r)
        self.register_buffer("index", index.reshape(-1))  # (F * 9,); a * r: the zero cell
        self.linear = nn.Linear(9 * channels_in, channels_out)

    def forward(self, x: Tensor) -> Tensor:
        """(N, F, C_in) -> (N, F, C_out)."""
        n, f, c = x.shape
        padded = torch.cat([x, x.new_zeros(n, 1, c)], 1)
        return self.linear(padded.index_select(1, self.index).reshape(n, f, 9 * c))


class GridConditioner(nn.Module):
    """Convolution stack emitting (P, F_b, N) parameters for the cells ``out_index``.

    Grids are (N, F, C): the cells of each row, C channels each.

    Args:
        grid: (A, R).
        channels_in: grid input channels.
        context: width of the non-grid context (0 for none).
        params: P, parameters per transformed cell.
        out_index: (F_b,) flat indices (into A x R) of the transformed cells.
        hidden: channels of each convolution (its length is the number of convolutions).
        act: activation name.
    """

    def __init__(
        self,
        grid: tuple[int, int],
        channels_in: int,
        context: int,
        params: int,
        out_index: Tensor,
        hidden: list[int],
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.grid, self.params = grid, params
        self.register_buffer("out_index", out_index)
        convs, width = [], channels_in
        for h in hidden:
            convs.append(CylinderConv(width, h, grid))
            width = h
        self.convs = nn.ModuleList(convs)
        self.acts = nn.ModuleList(activation(act) for _ in hidden)
        self.film = nn.Linear(context, hidden[0]) if context else None
        self.last = nn.Linear(width, params)  # a 1 x 1 convolution
        _zero_init(self.last)  # a fresh flow is the identity

    def forward(self, grids: Tensor, context: Tensor | None) -> Tensor:
        """(N, F, C_in) grids and (N, G) context -> (P, F_b, N) parameters."""
        h = self.convs[0](grids)
        if self.film is not None and context is not None:
            h = h + self.film(context)[:, None, :]
        h = self.acts[0](h)
        for conv, act in zip(self.convs[1:], self.acts[1:], strict=True):
            h = act(conv(h))
        out = self.last(h.index_select(1, self.out_index))  # (N, F_b, P)
        return out.permute(2, 1, 0).contiguous()


class GridCoupling(Transform):
    """Checkerboard coupling on an (A, R) grid with a convolutional conditioner.

    Args:
        grid: (A, R); the features are the A * R cells, angle-major.
        parity: 0 or 1, the colour of the checkerboard that is transformed.
        elementwise: the element-wise map.
        context: C, context width; its last ``grid_context * A * R`` entries are
            ``grid_context`` grids (channels) of the same shape.
        grid_context: number of context grids.
        hidden: convolution channels (one entry per convolution).
        act: activation name.
    """

    def __init__(
        self,
        grid: tuple[int, int],
        parity: int,
        elementwise: ElementwiseMap,
        context: int = 0,
        grid_context: int = 0,
        hidden: list[int] | tuple[int, ...] = (64, 64),
        act: str = "relu",
    ) -> None:
        super().__init__()
        a, r = grid
        cells = a * r
        if context < grid_context * cells:
            raise ConfigError(f"context ({context}) holds fewer than grid_context x A x R = "
                              f"{grid_context * cells} entries")  # fmt: skip
        colour = (torch.arange(a)[:, None] + torch.arange(r)[None, :] + parity) % 2 == 0
        colour = colour.flatten()
        self.grid, self.grid_context = (a, r), grid_context
        self.global_context = context - grid_context * cells
        self.elementwise = elementwise
        self.register_buffer("mask", (~colour).to(torch.float32))  # 1 on identity cells
        self.net = GridConditioner((a, r), 2 + grid_context, self.global_context,
                                   elementwise.params_per_feature,
                                   torch.nonzero(colour).flatten(), list(hidden), act)  # fmt: skip

    @property
    def b_index(self) -> Tensor:
        """(F_b,) flat indices of the transformed cells (held by the conditioner)."""
        return self.net.out_index

    def _params(self, x: Tensor, context: Tensor | None) -> Tensor:
        n, f = x.shape
        mask = self.mask.to(x.dtype)
        grids = [(x * mask)[:, :, None], mask[None, :, None].expand(n, f, 1)]
        glob = None
        if context is not None:
            g = self.global_context
            glob = context[:, :g] if g else None
            if self.grid_context:
                grids.append(context[:, g:].reshape(n, self.grid_context, f).transpose(1, 2))
        return self.net(torch.cat(grids, 2), glob)

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        params = self._params(x, context)
        xb = x[:, self.b_index]
        zb, ladj = self.elementwise(xb.T, params, inverse=inverse)
        out = x.clone()
        out[:, self.b_index] = zb.T
        return out, ladj.sum(0)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(z, context, inverse=True)


class ConvCouplingFlow(ConfiguredFlow):
    """Coupling flow over an (A, R) cylindrical grid with convolutional conditioners.

    Args:
        features: F = A * R.
        context: C; its last ``grid_context * F`` entries are grids (channels).
        transforms: number of coupling blocks (colours alternate; use an even number
            so every cell is transformed equally often).
        bins: spline bins.
        hidden: convolution channels, one entry per convolution of each conditioner.
        domain, bound, kind, act: as :class:`~hepflows.flows.CouplingFlow`.
        grid: (A, R), angles x radii.
        grid_context: number of context grids.

    Example:
        >>> flow = ConvCouplingFlow(features=16 * 9, grid=(16, 9), hidden=(32, 32))
        >>> flow.sample(10).shape
        torch.Size([10, 144])
    """

    min_features = 2

    def __init__(
        self,
        features: int,
        context: int = 0,
        transforms: int = 6,
        bins: int = 8,
        hidden: list[int] | tuple[int, ...] = (64, 64),
        domain: str = "real",
        bound: float = 5.0,
        kind: str = "rqs",
        act: str = "relu",
        grid: tuple[int, int] | list[int] = (1, 1),
        grid_context: int = 0,
    ) -> None:
        grid = tuple(int(g) for g in grid)
        if len(grid) != 2 or grid[0] * grid[1] != features or min(grid) < 1:
            raise ConfigError(f"grid must be (A, R) with A * R = features ({features}), "
                              f"got {grid}")  # fmt: skip
        if max(grid) < 2:
            raise ConfigError("a grid of one cell has no checkerboard: use a larger grid")
        super().__init__(features, context, transforms, bins, hidden, domain, bound, kind, act,
                         grid=list(grid), grid_context=int(grid_context))  # fmt: skip

    def build(self, **c: Any) -> list[Transform]:
        grid = tuple(c["grid"])
        return [
            GridCoupling(grid, i % 2, c["elementwise"], c["context"], c["grid_context"],
                         c["hidden"], c["act"])  # fmt: skip
            for i in range(c["transforms"])
        ]
