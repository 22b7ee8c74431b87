"""Coupling blocks (hepflows.flows.coupling): round trips, exact log-dets, the coupling property.

Every block is randomly initialised in float64 (``helpers.randomize``): a fresh
block is the identity, which would make the checks vacuous.
"""

from __future__ import annotations

import pytest
import torch

from helpers import per_sample_logdet, randomize
from hepflows import ShapeError
from hepflows.flows import (
    AffineMap,
    Compose,
    Coupling,
    Flow,
    SplineMap,
    StandardNormal,
    UnitUniform,
)

F64 = torch.float64
FEATURES, SPLIT, CONTEXT = 5, 2, 3

MAPS = {
    "rqs-real": lambda: SplineMap(bins=6, bound=3.0),
    "rqs-unit": lambda: SplineMap(bins=6, domain="unit"),
    "affine": AffineMap,
}


def block(kind: str = "rqs-real", context: int = 0, seed: int = 0, split: int = SPLIT) -> Coupling:
    c = Coupling(FEATURES, split, MAPS[kind](), context=context, hidden=(16, 16), act="tanh")
    return randomize(c.to(F64), std=0.3, seed=seed)


def points(kind: str, n: int = 32, seed: int = 0) -> torch.Tensor:
    """Inputs in the block's domain; the real ones reach past the spline bound (tails)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "rqs-unit":
        return torch.rand(n, FEATURES, generator=g, dtype=F64).clamp(1e-6, 1 - 1e-6)
    return 2.0 * torch.randn(n, FEATURES, generator=g, dtype=F64)


def context(n: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, CONTEXT, generator=torch.Generator().manual_seed(seed), dtype=F64)


CASES = [(k, c) for k in MAPS for c in (0, CONTEXT)]
IDS = [f"{k}-c{c}" for k, c in CASES]


@pytest.mark.parametrize(("kind", "ctx"), CASES, ids=IDS)
def test_round_trip_both_ways(kind, ctx):
    t = block(kind, ctx)
    x = points(kind)
    c = context() if ctx else None
    with torch.no_grad():
        z, ladj = t(x, c)
        back, ladj_back = t.inverse(z, c)
        torch.testing.assert_close(back, x, rtol=0, atol=1e-10)
        # log|dx/dz| at z is minus log|dz/dx| at x.
        torch.testing.assert_close(ladj_back, -ladj, rtol=0, atol=1e-10)
        x2, _ = t.inverse(x, c)
        torch.testing.assert_close(t(x2, c)[0], x, rtol=0, atol=1e-10)
    assert not torch.allclose(z, x)  # a random block is not the identity


@pytest.mark.parametrize(("kind", "ctx"), CASES, ids=IDS)
def test_log_det_matches_autograd_jacobian(kind, ctx):
    t = block(kind, ctx)
    x = points(kind, n=6)
    c = context(6) if ctx else None
    _, ladj = t(x, c)
    torch.testing.assert_close(ladj, per_sample_logdet(lambda u: t(u, c)[0], x), rtol=0, atol=1e-9)
    z = points(kind, n=6, seed=2)
    _, ladj_inv = t.inverse(z, c)
    expected = per_sample_logdet(lambda u: t.inverse(u, c)[0], z)
    torch.testing.assert_close(ladj_inv, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", list(MAPS))
def test_conditioning_half_passes_unchanged_and_jacobian_has_coupling_structure(kind):
    """z_a = x_a bit for bit; dz_b/dx_b is diagonal (element-wise map); dz_b/dx_a is not 0."""
    t = block(kind)
    x = points(kind, n=4)
    with torch.no_grad():
        z, _ = t(x)
        xi, _ = t.inverse(x)
    assert torch.equal(z[:, :SPLIT], x[:, :SPLIT])
    assert torch.equal(xi[:, :SPLIT], x[:, :SPLIT])
    jac = torch.autograd.functional.jacobian(lambda u: t(u)[0], x)  # (N, F, N, F)
    for n in range(len(x)):
        j = jac[n, :, n, :]
        torch.testing.assert_close(j[:SPLIT], torch.eye(FEATURES, dtype=F64)[:SPLIT])
        jbb = j[SPLIT:, SPLIT:]
        assert (jbb - torch.diag(jbb.diagonal())).abs().max() == 0  # element-wise
        assert (jbb.diagonal() > 0).all()  # monotonic increasing
    # the transformed half is conditioned on the other half (on some row at least)
    assert jac[:, SPLIT:, :, :SPLIT].abs().sum() > 1e-3


@pytest.mark.parametrize("split", [1, 4])
def test_any_split_round_trips_and_keeps_its_first_features(split):
    t = block("affine", split=split)
    x = points("affine")
    with torch.no_grad():
        z, _ = t(x)
        assert torch.equal(z[:, :split], x[:, :split])
        assert not torch.allclose(z[:, split:], x[:, split:])
        torch.testing.assert_close(t.inverse(z)[0], x, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", list(MAPS))
def test_context_changes_the_transformed_half_only(kind):
    t = block(kind, CONTEXT)
    x = points(kind)
    with torch.no_grad():
        z1, l1 = t(x, context(seed=1))
        z2, l2 = t(x, context(seed=2))
    assert torch.equal(z1[:, :SPLIT], z2[:, :SPLIT])
    moved = (z1[:, SPLIT:] - z2[:, SPLIT:]).abs() > 1e-6
    inside = x[:, SPLIT:].abs() < 3.0  # the real-domain spline is the identity past its bound
    if kind != "rqs-real":
        inside = torch.ones_like(inside)
    assert moved[inside].all() and not moved[~inside].any()
    assert ((l1 - l2).abs() > 1e-9).all()


def test_fresh_block_is_the_identity():
    """The conditioner's last layer starts at zero: every map is the identity."""
    for kind in MAPS:
        t = Coupling(FEATURES, SPLIT, MAPS[kind](), context=CONTEXT, hidden=(8,)).to(F64)
        x = points(kind)
        z, ladj = t(x, context())
        torch.testing.assert_close(z, x, rtol=0, atol=1e-12)
        torch.testing.assert_close(ladj, torch.zeros(len(x), dtype=F64), rtol=0, atol=1e-12)


def test_affine_coupling_values_by_hand():
    """Affine block with a linear conditioner: z_b = x_b exp(s) + t, log-det = sum of s."""
    t = Coupling(2, 1, AffineMap(max_log_scale=3.0), hidden=()).to(F64)
    with torch.no_grad():  # params (shift, raw) = (w0 x_a + b0, w1 x_a + b1)
        t.net.last.weight.copy_(torch.tensor([[0.5], [0.25]], dtype=F64))
        t.net.last.bias.copy_(torch.tensor([1.0, -0.5], dtype=F64))
    x = torch.tensor([[2.0, 3.0], [-1.0, 0.5]], dtype=F64)
    shift = 0.5 * x[:, 0] + 1.0
    s = 3.0 * torch.tanh((0.25 * x[:, 0] - 0.5) / 3.0)
    z, ladj = t(x)
    torch.testing.assert_close(z[:, 1], x[:, 1] * s.exp() + shift, rtol=0, atol=1e-14)
    torch.testing.assert_close(ladj, s, rtol=0, atol=1e-14)


@pytest.mark.parametrize("split", [0, 5, -1, 7])
def test_split_outside_the_features_is_refused(split):
    with pytest.raises(ValueError, match="split"):
        Coupling(FEATURES, split, AffineMap())


def test_a_flow_built_from_coupling_blocks_checks_shapes_and_context():
    """The block itself does no checking; a Flow around it raises hepflows' ShapeError."""
    t = block("rqs-unit", CONTEXT)
    flow = Flow(Compose([t]), UnitUniform(FEATURES), FEATURES, context=CONTEXT, domain="unit")
    flow = flow.to(F64)
    x = points("rqs-unit", n=8)
    c = context(8)
    torch.testing.assert_close(flow.log_prob(x, c), t(x, c)[1])  # uniform base: log q = ladj
    with pytest.raises(ShapeError, match=rf"\(N, {FEATURES}\)"):
        flow.log_prob(x[:, :4], c)
    with pytest.raises(ShapeError, match="conditional"):
        flow.log_prob(x)
    with pytest.raises(ShapeError, match=rf"\(N, {CONTEXT}\)"):
        flow.log_prob(x, c[:, :2])
    real = Flow(Compose([block()]), StandardNormal(FEATURES), FEATURES).to(F64)
    with pytest.raises(ShapeError, match="takes no context"):
        real.log_prob(points("rqs-real"), context(32))
