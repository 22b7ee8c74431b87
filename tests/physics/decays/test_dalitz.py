"""DalitzPlot: invariants vs explicit four-vectors, Jacobian vs autograd, area, momenta."""

from __future__ import annotations

import math

import pytest
import torch

from decay_helpers import LC_MASSES, four_momenta, minkowski2
from hepflows.errors import ConfigError, ShapeError
from hepflows.physics.decays import DalitzPlot, pi1800


@pytest.mark.parametrize(
    "masses", [LC_MASSES, (1.81, 0.1396, 0.1396, 0.1396), (3.0, 0.5, 1.0, 0.2)]
)
def test_dalitz_invariants_match_four_vectors(masses):
    d = DalitzPlot(*masses)
    u = torch.rand(2000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    s12, s23, _ = d.map(u)
    v1, v2, v3 = four_momenta(d, u)
    torch.testing.assert_close(s12, minkowski2(v1 + v2), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s23, minkowski2(v2 + v3), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(d.s13(s12, s23), minkowski2(v1 + v3), rtol=1e-10, atol=1e-10)
    assert bool(d.contains(s12, s23).all())


@pytest.mark.parametrize("masses", [LC_MASSES, (1.81, 0.1396, 0.1396, 0.1396)])
def test_dalitz_jacobian_matches_autograd_and_inverse(masses):
    d = DalitzPlot(*masses)
    u = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    _, _, jac = d.map(u)
    def invariants(v):
        return torch.stack(d.map(v[None])[:2])[:, 0]

    for i in range(len(u)):
        j = torch.autograd.functional.jacobian(invariants, u[i])
        assert abs(torch.det(j).abs().item() - jac[i].item()) < 1e-9 * jac[i].item()
    s12, s23, _ = d.map(u)
    torch.testing.assert_close(d.inverse(s12, s23), u, rtol=0, atol=1e-12)


def test_dalitz_area_massless_is_half_m4():
    # s12 + s23 <= M^2, s12, s23 >= 0: a triangle of area M^4 / 2
    assert DalitzPlot(2.0, 0.0, 0.0, 0.0).area() == pytest.approx(8.0, rel=1e-10)
    d = DalitzPlot(*LC_MASSES)
    u = torch.rand(400_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    jac = d.map(u)[2]
    assert jac.mean().item() == pytest.approx(d.area(), abs=5 * jac.std().item() / 630)


def test_dalitz_bad_input():
    with pytest.raises(ConfigError, match="closed"):
        DalitzPlot(1.0, 0.5, 0.4, 0.2)
    with pytest.raises(ConfigError, match=">= 0"):
        DalitzPlot(1.0, -0.1, 0.1, 0.1)
    with pytest.raises(ShapeError):
        DalitzPlot(*LC_MASSES).map(torch.rand(4, 3, dtype=torch.float64))
    with pytest.raises(ConfigError, match="pair"):
        DalitzPlot(*LC_MASSES).bounds("11")


def test_momenta_conserve_and_orientation_is_uniform():
    from scipy import stats

    f = pi1800()
    d = f.dalitz
    u = torch.rand(20_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    p = d.momenta(u, torch.Generator().manual_seed(13))
    total = p.sum(1)
    rest = torch.tensor([d.M, 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(total, rest.expand_as(total))
    torch.testing.assert_close(minkowski2(p.reshape(-1, 4)).reshape(-1, 3),
                               torch.tensor([d.m1**2, d.m2**2, d.m3**2],
                                            dtype=torch.float64).expand(len(u), 3),
                               rtol=1e-9, atol=1e-9)  # fmt: skip
    inv = f.invariants(u)
    torch.testing.assert_close(minkowski2(p[:, 0] + p[:, 1]), inv["s12"])
    torch.testing.assert_close(minkowski2(p[:, 1] + p[:, 2]), inv["s23"])
    # unpolarised: the direction of particle 1 is uniform on the sphere
    cos = p[:, 0, 3] / p[:, 0, 1:].norm(dim=1)
    phi = torch.atan2(p[:, 0, 2], p[:, 0, 1])
    assert stats.kstest(cos.numpy(), stats.uniform(-1, 2).cdf).pvalue > 1e-3
    assert stats.kstest(phi.numpy(), stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3
