"""Folding exact symmetries: same integral, exact invariance checks, events expanded back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from hepflows.errors import ConfigError
from hepflows.physics import DrellYan
from hepflows.physics.symmetry import Folded


def symmetric(u: torch.Tensor) -> torch.Tensor:
    """(1 + u0) (u1 - 1/2)^2 (1 + (u1 - 1/2)(u2 - 1/2)): flat in u3, invariant under
    (u1, u2) -> (1 - u1, 1 - u2), not under u1 -> 1 - u1 alone; integral 1.5 / 12."""
    a, b = u[:, 1] - 0.5, u[:, 2] - 0.5
    return (1 + u[:, 0]) * a**2 * (1 + a * b)


def midpoint_grid(n: int, dims: int) -> torch.Tensor:
    axis = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.cartesian_prod(*[axis] * dims)


def test_folded_integral_equals_the_full_one() -> None:
    f = Folded(symmetric, 4, flat=(3,), mirror=(1, 2), half=1)
    assert f.dims == 3 and f.kept == (0, 1, 2)
    value = f(midpoint_grid(40, 3)).mean().item()  # midpoint rule, error ~1e-4
    assert value == pytest.approx(1.5 / 12, rel=1e-3)
    # The lower half alone (no doubling) would give half of it: the fold really doubles.
    assert symmetric(f._embed(midpoint_grid(40, 3))).mean().item() == pytest.approx(value)


def test_folded_points_are_the_full_integrand_on_the_lower_half() -> None:
    dy = DrellYan()
    f = dy.folded()
    g = torch.Generator().manual_seed(0)
    v = torch.rand(500, 3, generator=g, dtype=torch.float64)
    u = torch.cat([v[:, :1], 0.5 * v[:, 1:2], v[:, 2:], torch.rand(500, 1, generator=g,
                  dtype=torch.float64)], 1)  # fmt: skip
    torch.testing.assert_close(f(v), dy(u), rtol=1e-12, atol=0)
    # The symmetry itself: beam swap and any phi leave dsigma/du unchanged.
    mirrored = u.clone()
    mirrored[:, 1:3] = 1 - mirrored[:, 1:3]
    mirrored[:, 3] = torch.rand(500, generator=g, dtype=torch.float64)
    torch.testing.assert_close(dy(mirrored), dy(u), rtol=1e-10, atol=0)


def test_asymmetric_integrands_are_refused() -> None:
    with pytest.raises(ConfigError, match="reflection"):
        Folded(lambda u: u[:, 1] + u[:, 2], 4, mirror=(1, 2), half=1)  # u1 -> 1 - u1 changes it
    with pytest.raises(ConfigError, match="direction 3"):
        Folded(lambda u: 1 + u[:, 3], 4, flat=(3,))
    with pytest.raises(ConfigError, match="reflection"):
        Folded(symmetric, 4, mirror=(1,), half=1)  # only the pair is a symmetry


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"flat": (4,)}, "directions 0..3"), ({"flat": (1,), "mirror": (1, 2), "half": 1}, "flat"),
     ({"mirror": (1, 2), "half": 3}, "half"), ({"half": 1}, "needs a reflection"),
     ({"flat": (0, 1, 2, 3)}, "nothing is left")],
)  # fmt: skip
def test_bad_folds_name_the_problem(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Folded(lambda u: torch.ones(len(u), dtype=u.dtype), 4, check=0, **kwargs)


def test_expand_restores_the_full_distribution() -> None:
    """Folded points distributed as f_fold expand to points distributed as f: here f = 1,
    so uniform folded points must give uniform full points, mirrored in pairs."""
    f = Folded(lambda u: torch.ones(len(u), dtype=u.dtype), 4, flat=(3,), mirror=(1, 2), half=1)
    v = torch.rand(40_000, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u = f.expand(v, torch.Generator().manual_seed(2))
    for k in range(4):
        assert stats.kstest(u[:, k].numpy(), "uniform").pvalue > 1e-3, k
    upper = u[:, 1] > 0.5
    assert abs(upper.double().mean().item() - 0.5) < 0.01
    torch.testing.assert_close(u[upper, 1], 1 - 0.5 * v[upper, 1])  # mirrored together
    torch.testing.assert_close(u[upper, 2], 1 - v[upper, 2])
    torch.testing.assert_close(u[~upper, 2], v[~upper, 2])
    assert torch.equal(u[:, 0], v[:, 0])


def test_drell_yan_folded_channels_and_cuts() -> None:
    dy = DrellYan(lepton_pt_min=20.0, lepton_eta_max=2.5)  # symmetric cuts fold too
    f = dy.folded()
    assert [c.name for c in f.channels()] == [c.name for c in dy.channels()]
    r = torch.rand(64, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x, jac = f.channels()[1].mapping(r)  # the Z channel maps column 0 only
    assert torch.equal(x[:, 1:], r[:, 1:]) and bool((jac > 0).all())
    assert np.isfinite(f(x).numpy()).all()
