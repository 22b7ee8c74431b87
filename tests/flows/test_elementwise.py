"""Element-wise maps (hepflows.flows.elementwise): SplineMap, AffineMap and make_map.

Inputs are laid out (F, N), parameters (P, F, N), as the conditioners emit them.
"""

from __future__ import annotations

import math

import pytest
import torch

from hepflows.flows import AffineMap, ElementwiseMap, SplineMap
from hepflows.flows.elementwise import make_map

F64 = torch.float64
F, N = 3, 40


def params(m: ElementwiseMap, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(m.params_per_feature, F, N, generator=g, dtype=F64)


def inputs(m: ElementwiseMap, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if isinstance(m, SplineMap) and m.domain == "unit":
        x = torch.rand(F, N, generator=g, dtype=F64)
        x[:, :2] = torch.tensor([0.0, 1.0], dtype=F64)  # the faces of the interval
        return x
    return 3.0 * torch.randn(F, N, generator=g, dtype=F64)  # reaches past bound 5 at times


MAPS = {
    "rqs-real": lambda: SplineMap(bins=5, bound=5.0),
    "rqs-unit": lambda: SplineMap(bins=5, domain="unit"),
    "affine": lambda: AffineMap(max_log_scale=2.0),
}


@pytest.mark.parametrize("kind", list(MAPS))
def test_round_trip_and_opposite_log_derivatives(kind):
    m = MAPS[kind]()
    p, x = params(m), inputs(m)
    y, ladj = m(x, p)
    assert y.shape == x.shape == ladj.shape
    back, ladj_back = m(y, p, inverse=True)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(ladj_back, -ladj, rtol=0, atol=1e-10)
    assert not torch.allclose(y, x)


@pytest.mark.parametrize("kind", list(MAPS))
@pytest.mark.parametrize("inverse", [False, True])
def test_log_derivative_matches_autograd(kind, inverse):
    """Each output depends on its own input only, so d sum(y) / dx is the derivative."""
    m = MAPS[kind]()
    p = params(m)
    x = inputs(m).clamp(1e-9, 1 - 1e-9) if kind == "rqs-unit" else inputs(m)
    x.requires_grad_(True)
    y, ladj = m(x, p, inverse=inverse)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(ladj, grad.log(), rtol=0, atol=1e-9)
    jac = torch.autograd.functional.jacobian(
        lambda u: m(u, p[..., :4], inverse=inverse)[0], x[:, :4]
    )
    diag = torch.einsum("ijij->ij", jac)
    assert torch.equal(jac.abs().sum((2, 3)), diag.abs())  # nothing off the diagonal


@pytest.mark.parametrize("kind", list(MAPS))
def test_zero_parameters_give_the_identity(kind):
    """A zero-initialised conditioner starts every map as the identity."""
    m = MAPS[kind]()
    x = inputs(m)
    y, ladj = m(x, torch.zeros(m.params_per_feature, F, N, dtype=F64))
    torch.testing.assert_close(y, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(ladj, torch.zeros_like(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", list(MAPS))
def test_maps_are_increasing(kind):
    m = MAPS[kind]()
    grid = (
        torch.linspace(0, 1, 501, dtype=F64)
        if kind == "rqs-unit"
        else torch.linspace(-8, 8, 501, dtype=F64)
    )
    x = grid.expand(F, -1)
    p = params(m, scale=2.0)[:, :, :1].expand(-1, -1, len(grid))  # one map per feature
    y, _ = m(x, p)
    assert (y.diff(dim=1) > 0).all()


def test_parameter_counts():
    assert SplineMap(bins=8).params_per_feature == 3 * 8 - 1  # widths, heights, K-1 derivatives
    assert SplineMap(bins=8, domain="unit").params_per_feature == 3 * 8 + 1  # all K+1
    assert AffineMap().params_per_feature == 2
    with pytest.raises(ValueError, match="K - 1 = 3 or K \\+ 1 = 5"):
        SplineMap(bins=4)(torch.zeros(F, N), torch.zeros(3 * 4 - 2, F, N))


def test_real_spline_is_the_identity_outside_its_bound_and_c1_at_it():
    m = SplineMap(bins=6, bound=2.0)
    p = params(m, scale=2.0)
    x = torch.tensor([-50.0, -2.5, -2.0, 2.0, 2.5, 50.0], dtype=F64).repeat(F, N // 6 + 1)[:, :N]
    y, ladj = m(x, p)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-12)  # the bounds themselves are knots
    outside = x.abs() > 2.0
    assert (ladj[outside] == 0).all()
    knots = m.knots(p)  # (3, K + 1, F, N): abscissae, ordinates, derivatives
    assert knots.shape == (3, 7, F, N)
    assert torch.equal(knots[0, 0], torch.full((F, N), -2.0, dtype=F64))
    assert torch.equal(knots[0, -1], torch.full((F, N), 2.0, dtype=F64))
    torch.testing.assert_close(knots[2, 0], torch.ones(F, N, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(knots[2, -1], torch.ones(F, N, dtype=F64), rtol=0, atol=1e-12)


def test_unit_spline_maps_the_interval_onto_itself():
    m = SplineMap(bins=6, domain="unit")
    p = params(m, scale=2.0)
    ends = torch.tensor([0.0, 1.0], dtype=F64).repeat(F, N // 2)
    y, _ = m(ends, p)
    assert torch.equal(y, ends)
    x = inputs(m)
    y, _ = m(x, p)
    assert ((y >= 0) & (y <= 1)).all()
    # learned boundary derivatives: the log-derivative at the faces is that of the end knots
    _, ladj = m(ends, p)
    d = m.knots(p)[2]  # (K + 1, F, N) knot derivatives
    torch.testing.assert_close(ladj[:, 0::2], d[0, :, 0::2].log(), rtol=0, atol=1e-12)
    torch.testing.assert_close(ladj[:, 1::2], d[-1, :, 1::2].log(), rtol=0, atol=1e-12)
    assert (ladj.abs() > 1e-6).all()  # not fixed to 1 as on the real line


def test_affine_values_by_hand_and_the_soft_clamp():
    m = AffineMap(max_log_scale=3.0)
    x = torch.tensor([[1.0, -2.0, 0.5]], dtype=F64)
    shift = torch.tensor([[0.5, 1.0, -1.0]], dtype=F64)
    raw = torch.tensor([[0.0, 1.5, 300.0]], dtype=F64)
    y, ladj = m(x, torch.stack((shift, raw)))
    s = torch.tensor([[0.0, 3 * math.tanh(0.5), 3 * math.tanh(100.0)]], dtype=F64)
    torch.testing.assert_close(ladj, s, rtol=0, atol=1e-15)
    torch.testing.assert_close(y, x * s.exp() + shift, rtol=0, atol=1e-14)
    # |log scale| < max_log_scale whatever the conditioner says
    huge = torch.stack((torch.zeros(1, 2, dtype=F64), torch.tensor([[1e6, -1e6]], dtype=F64)))
    _, ladj = m(torch.ones(1, 2, dtype=F64), huge)
    assert (ladj.abs() <= 3.0).all() and torch.isfinite(ladj).all()
    torch.testing.assert_close(ladj.abs(), torch.full((1, 2), 3.0, dtype=F64))
    # inverse by hand
    xi, ladj_i = m(y, torch.stack((shift, raw)), inverse=True)
    torch.testing.assert_close(xi, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(ladj_i, -s, rtol=0, atol=1e-15)


def test_make_map_by_name():
    rqs = make_map("rqs", bins=7, bound=4.0, domain="real")
    assert isinstance(rqs, SplineMap) and rqs.interval == (-4.0, 4.0) and rqs.bins == 7
    unit = make_map("rqs", bins=7, bound=4.0, domain="unit")
    assert unit.interval == (0.0, 1.0) and unit.params_per_feature == 22
    assert isinstance(make_map("affine", bins=7, bound=4.0, domain="real"), AffineMap)
    with pytest.raises(ValueError, match="unit cube.*kind='rqs'"):
        make_map("affine", bins=7, bound=4.0, domain="unit")
    with pytest.raises(ValueError, match="unknown element-wise map 'spline'.*'rqs'.*'affine'"):
        make_map("spline", bins=7, bound=4.0, domain="real")


def test_bad_spline_settings_are_refused():
    with pytest.raises(ValueError, match="at least 2 bins, got 1"):
        SplineMap(bins=1)
    with pytest.raises(ValueError, match="'real' or 'unit', got 'box'"):
        SplineMap(domain="box")


def test_the_interface_has_no_map():
    with pytest.raises(NotImplementedError):
        ElementwiseMap()(torch.zeros(1, 1), torch.zeros(1, 1, 1))
