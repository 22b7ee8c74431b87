"""VEGAS warm start: adapt a grid with the ``vegas`` package, apply it in torch.

``vegas`` (Lepage) adapts a separable, piecewise-linear map y -> x of the unit
cube. hepflows uses it as a fixed change of variables in front of the flow:
the flow then learns the correlations VEGAS cannot represent. The map is
evaluated in torch from the grid ``vegas`` produced (same formula as
``vegas.AdaptiveMap.map``; the tests check both agree).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from hepflows.errors import ConfigError
from hepflows.extras import require
from hepflows.integrate.integrands import Integrand, evaluate


class VegasMap(nn.Module):
    """Piecewise-linear separable map of the unit cube from a VEGAS grid.

    Args:
        grid: (d, max_ninc + 1) increasing knots per dimension from 0 to 1,
            padded at the end where a dimension has fewer increments.
        ninc: (d,) increments per dimension (default: all ``max_ninc``).
    """

    def __init__(self, grid: Tensor | np.ndarray, ninc: Tensor | None = None) -> None:
        super().__init__()
        if isinstance(grid, Tensor):
            grid = grid.to(torch.float64)
        else:
            grid = torch.as_tensor(np.asarray(grid), dtype=torch.float64, device="cpu")
        if grid.ndim != 2 or grid.shape[1] < 2:
            raise ConfigError(f"grid must have shape (d, ninc + 1), got {tuple(grid.shape)}")
        if ninc is None:
            ninc = torch.full((grid.shape[0],), grid.shape[1] - 1, device=grid.device)
        self.register_buffer("grid", grid.contiguous())
        self.register_buffer("ninc", torch.as_tensor(ninc, dtype=torch.long, device=grid.device))

    @classmethod
    def from_vegas(cls, amap: object) -> VegasMap:
        """From a ``vegas.AdaptiveMap`` (its per-axis grids may differ in length)."""
        grids = [np.asarray(g, dtype=np.float64) for g in amap.extract_grid()]
        width = max(len(g) for g in grids)
        padded = np.stack([np.pad(g, (0, width - len(g)), mode="edge") for g in grids])
        return cls(padded, torch.tensor([len(g) - 1 for g in grids], device="cpu"))

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Map y -> x.

        Args:
            y: (n, d) points in [0, 1]^d.

        Returns:
            ``(x, jac)``: (n, d) mapped points (float64) and (n,) the Jacobian dx/dy.
        """
        y = y.to(torch.float64)
        n_inc = self.ninc
        t = y * n_inc
        i = torch.minimum(t.floor().long().clamp_min(0), n_inc - 1)  # (n, d)
        g = self.grid.T  # (ninc + 1, d)
        x0 = g.gather(0, i)
        inc = g.gather(0, i + 1) - x0
        x = x0 + inc * (t - i)
        return x, (inc * n_inc).prod(-1)

    @classmethod
    def uniform(cls, dims: int) -> VegasMap:
        """The identity map."""
        return cls(torch.linspace(0, 1, 2, dtype=torch.float64, device="cpu").expand(dims, 2))


def adapt_vegas(
    f: Integrand,
    dims: int,
    calls: int,
    iterations: int = 10,
    seed: int | None = None,
) -> tuple[VegasMap, int]:
    """Adapt a VEGAS grid to |f| with about ``calls`` evaluations.

    Args:
        f: integrand on [0, 1]^d (batched torch callable).
        dims: d.
        calls: evaluation budget (split over ``iterations``).
        iterations: adaptation iterations.
        seed: seed of vegas' random numbers.

    Returns:
        The adapted map and the number of integrand calls made.
    """
    vegas = require("vegas", "physics", "The VEGAS warm start")

    calls_made = 0

    @vegas.lbatchintegrand
    def batch_f(x: np.ndarray) -> np.ndarray:
        nonlocal calls_made
        calls_made += len(x)
        values, _ = evaluate(f, torch.from_numpy(np.ascontiguousarray(x)))
        return values.cpu().numpy()

    settings = {} if seed is None else {"ran_array_generator": np.random.default_rng(seed).random}
    integ = vegas.Integrator(dims * [[0.0, 1.0]], **settings)
    integ(batch_f, nitn=iterations, neval=max(calls // iterations, 100))
    return VegasMap.from_vegas(integ.map), calls_made
