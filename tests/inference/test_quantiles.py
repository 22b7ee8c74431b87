"""QuantileMap: exact inverse and Jacobian, standard-normal marginals, bins, bad input."""

from __future__ import annotations

import pytest
import torch

from hepflows.errors import InputError
from hepflows.inference.quantiles import QuantileMap
from hepflows.inference.scaling import Scaler

NAMES = ("m_ll", "y_ll", "cos_cs")


def sample(n: int, seed: int = 0) -> torch.Tensor:
    """Drell-Yan-like values with a narrow peak in m_ll: (n, 3)."""
    g = torch.Generator().manual_seed(seed)
    m = 150 * torch.exp(torch.rand(n, generator=g, dtype=torch.float64) * 2)
    peak = torch.rand(n, generator=g) < 0.1
    m = torch.where(peak, 400 + torch.randn(n, generator=g, dtype=torch.float64), m)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    c = torch.rand(n, generator=g, dtype=torch.float64) * 1.9 - 0.95
    return torch.stack([m, y, c], -1)


@pytest.fixture(scope="module")
def fitted() -> tuple[QuantileMap, torch.Tensor]:
    x = sample(50_000)
    return QuantileMap(Scaler(NAMES).fit(x)).fit(x), x


def test_reference_becomes_standard_normal_and_the_peak_is_widened(fitted) -> None:
    qmap, x = fitted
    u = qmap.forward(x).double()
    assert u.mean(0).abs().max().item() < 0.02
    assert (u.std(0) - 1).abs().max().item() < 0.02
    # the 1 GeV wide peak spans ~ 0.1 unit of u, not ~ 0.01 as after the scaler alone
    at = torch.tensor([[399.0, 0.0, 0.0], [401.0, 0.0, 0.0]], dtype=torch.float64)
    assert (qmap.forward(at)[1, 0] - qmap.forward(at)[0, 0]).item() > 0.08
    z = qmap.scaler.forward(at)
    assert (z[1, 0] - z[0, 0]).item() < 0.02


def test_inverse_and_jacobian_are_exact(fitted) -> None:
    qmap, _ = fitted
    x = sample(2000, seed=1)
    x[:10, 0] = torch.linspace(100, 5000, 10, dtype=torch.float64)  # beyond the outer knots too
    assert torch.allclose(qmap.inverse(qmap.forward(x)), x, rtol=1e-5)
    s = qmap.scaler

    def u_of(v: torch.Tensor) -> torch.Tensor:  # in float64 throughout (forward returns float32)
        return qmap._map((s._mapped(v) - s.shift) / s.scale)[0]

    h = 1e-7
    u = u_of(x)
    numeric = torch.zeros(len(x), dtype=torch.float64)
    for j in range(3):
        step = x.clone()
        step[:, j] += h * x[:, j].abs().clamp_min(1)
        du = u_of(step)[:, j] - u[:, j]
        numeric += (du / (step[:, j] - x[:, j])).log()
    # away from the knots (a step across a knot changes the slope)
    assert (numeric - qmap.log_abs_det(x)).abs().median().item() < 1e-5


def test_bins_cover_every_value(fitted) -> None:
    qmap, x = fitted
    far = torch.tensor([[1e4, 9.0, 0.999], [100.0, -9.0, -0.999]], dtype=torch.float64)
    b = qmap.bins(torch.cat([x, far]), 32)
    assert b.min().item() == 0 and b.max().item() == 33
    assert b[-2].tolist() == [33, 33, 33] and b[-1].tolist() == [0, 0, 0]
    # the reference fills the 32 intervals like a standard normal fills them
    edges = torch.linspace(-qmap.span, qmap.span, 33, dtype=torch.float64)
    normal = torch.distributions.Normal(0.0, 1.0).cdf(edges).diff() * len(x)
    for j in range(3):
        counts = torch.bincount(b[:-2, j], minlength=34)[1:-1].double()
        assert ((counts - normal) / normal.sqrt()).abs().max().item() < 6


def test_bad_input_is_refused() -> None:
    x = sample(100)
    scaler = Scaler(NAMES).fit(x)
    with pytest.raises(InputError, match="not fitted"):
        QuantileMap(scaler).forward(x)
    with pytest.raises(InputError, match="weights"):
        QuantileMap(scaler).fit(x, torch.full((100,), -1.0))
    with pytest.raises(InputError, match="sum to zero"):
        QuantileMap(scaler).fit(x, torch.zeros(100))
    with pytest.raises(InputError, match="single value"):
        QuantileMap(scaler).fit(x.clone().index_fill_(1, torch.tensor([1]), 0.5))
    with pytest.raises(InputError, match="knots"):
        QuantileMap(scaler, knots=2)
