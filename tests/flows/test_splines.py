"""Rational-quadratic splines (hepflows.flows.splines): exact ends, inverses, derivatives.

Layout reminder: the bin axis comes first, knots are (3, K + 1, *) and inputs (*).
Here every test uses trailing shape (S, P): S different random splines, each
evaluated at the same number P of points (the parameters are expanded along P).
"""

from __future__ import annotations

import math

import pytest
import torch
from nflows.transforms.splines.rational_quadratic import (
    rational_quadratic_spline,
    unconstrained_rational_quadratic_spline,
)
from zuko.transforms import MonotonicRQSTransform

from hepflows.flows.splines import (
    MIN_BIN_HEIGHT,
    MIN_BIN_WIDTH,
    MIN_DERIVATIVE,
    derivative_offset,
    rqs_forward,
    rqs_inverse,
    spline_knots,
    unbounded_rqs,
)

F64 = torch.float64
K = 8  # bins
S = 6  # independent random splines per test
B = 5.0  # tail bound of the unbounded splines
INNER = 64  # random points inside the interval, per spline


def raw_params(bounded: bool, scale: float = 1.0, seed: int = 0, dtype=F64, sign: bool = False):
    """Unconstrained (widths, heights, derivatives), each (n, S, 1)."""
    g = torch.Generator().manual_seed(seed)
    nd = K + 1 if bounded else K - 1

    def draw(n):
        u = torch.randn(n, S, 1, generator=g, dtype=F64)
        return (scale * (u.sign() if sign else u)).to(dtype)

    return draw(K), draw(K), draw(nd)


def knots_for(params, p: int, interval=(-B, B)):
    """Knots (3, K + 1, S, p) of the splines ``params`` on ``interval`` (both axes)."""
    lo, hi = interval
    w, h, d = (t.expand(-1, -1, p) for t in params)
    return spline_knots(w, h, d, left=lo, right=hi, bottom=lo, top=hi)


def points(params, interval, extra=(), seed=1, axis=0):
    """Test points (S, P): every knot (on ``axis``), both ends, random inside, ``extra``.

    Returns ``(x, knots)`` with knots matching x's shape.
    """
    lo, hi = interval
    base = knots_for(params, 1, interval)[axis, :, :, 0].T  # (S, K + 1) incl. both ends
    g = torch.Generator().manual_seed(seed)
    dtype = base.dtype
    inside = lo + (hi - lo) * torch.rand(S, INNER, generator=g, dtype=F64).to(dtype)
    tails = torch.tensor(extra, dtype=dtype).expand(S, len(extra))
    x = torch.cat((base, inside, tails), dim=1)
    return x, knots_for(params, x.shape[1], interval)


TAILS = (-1e3, -50.0, -B - 1e-9, B + 1e-9, 7.5, 1e3)


# ----------------------------------------------------------------------- knots


@pytest.mark.parametrize("bounded", [False, True])
def test_knots_layout_guards_and_identity_boundary_derivatives(bounded):
    """Knots are (3, K+1, *), strictly increasing with bins >= the minimum, d >= min."""
    interval = (0.0, 1.0) if bounded else (-B, B)
    span = interval[1] - interval[0]
    knots = knots_for(raw_params(bounded, scale=3.0), 4, interval)
    assert knots.shape == (3, K + 1, S, 4)
    xk, yk, dk = knots
    assert (xk.diff(dim=0) >= MIN_BIN_WIDTH * span * (1 - 1e-9)).all()
    assert (yk.diff(dim=0) >= MIN_BIN_HEIGHT * span * (1 - 1e-9)).all()
    assert (dk >= MIN_DERIVATIVE).all()
    if not bounded:
        # K - 1 interior derivatives given: the boundary ones are 1, so the
        # spline joins the identity tails with a continuous derivative.
        torch.testing.assert_close(dk[[0, -1]], torch.ones_like(dk[[0, -1]]), rtol=0, atol=1e-15)


@pytest.mark.parametrize("interval", [(0.0, 1.0), (-B, B), (-3.0, 3.0)])
def test_knots_hit_interval_ends_exactly(interval):
    """First/last knots are exactly left/right and bottom/top (documented contract)."""
    lo, hi = interval
    knots = knots_for(raw_params(True, scale=3.0), 1, interval)
    assert (knots[:2, 0] == lo).all() and (knots[:2, -1] == hi).all()


@pytest.mark.parametrize("interval", [(0.1, 0.7), (-1.3, 2.9)])
def test_knots_hit_ends_exactly_on_asymmetric_intervals(interval):
    """The docstring promises the last knot is *exactly* ``right``/``top`` for any interval.

    ``low + (high - low)`` is not ``high`` in floating point for every pair
    (e.g. -1.3 + 4.2 = 2.9000000000000004), so this holds only if the last knot
    is set to ``high`` itself.
    """
    lo, hi = interval
    knots = knots_for(raw_params(True), 1, interval)
    assert (knots[0, -1] == hi).all() and (knots[1, -1] == hi).all()
    y, _ = rqs_forward(torch.full((S, 1), hi, dtype=F64), knots)
    assert (y == hi).all()


def test_zero_parameters_give_the_identity():
    """Zero unconstrained parameters: uniform bins, unit derivatives, so y = x, ladj = 0."""
    zeros = (torch.zeros(K, S, 1, dtype=F64),) * 2 + (torch.zeros(K - 1, S, 1, dtype=F64),)
    x, knots = points(zeros, (-B, B), TAILS)
    y, ladj = unbounded_rqs(x, knots, B)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(ladj, torch.zeros_like(x), rtol=0, atol=1e-12)


def test_derivative_offset_maps_zero_to_one():
    for m in (1e-3, 1e-2, 0.3):
        assert m + math.log1p(math.exp(derivative_offset(m))) == pytest.approx(1.0, abs=1e-15)


def test_bad_parameter_shapes_raise():
    w = torch.zeros(K, 2, dtype=F64)
    with pytest.raises(ValueError, match="K - 1 = 7 or K \\+ 1 = 9"):
        spline_knots(w, w, torch.zeros(K, 2, dtype=F64), left=0, right=1, bottom=0, top=1)
    with pytest.raises(ValueError, match="too large"):
        spline_knots(w, w, w[1:], left=0, right=1, bottom=0, top=1, min_width=0.2)


# ---------------------------------------------------------------- invertibility


@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_bounded_spline_maps_unit_interval_onto_itself_exactly(scale):
    """[0, 1] -> [0, 1]: 0 -> 0 and 1 -> 1 exactly, and no output ever leaves [0, 1].

    Checked on 20 000 random splines per scale. An output of 1 + 1 ulp is not
    harmless: in a unit-domain flow the uniform base gives it log-density -inf.
    """
    n = 20_000
    g = torch.Generator().manual_seed(int(scale))
    w, h, d = (scale * torch.randn(m, n, generator=g, dtype=F64) for m in (K, K, K + 1))
    knots = spline_knots(w, h, d, left=0.0, right=1.0, bottom=0.0, top=1.0)
    ends = torch.tensor([0.0, 1.0], dtype=F64)[:, None].expand(2, n)
    knots2 = knots[:, :, None, :].expand(3, K + 1, 2, n)
    y, _ = rqs_forward(ends, knots2)
    x, _ = rqs_inverse(ends, knots2)
    # The inverse goes through the quadratic formula: endpoints within 1e-10, inside [0, 1].
    torch.testing.assert_close(x, ends, rtol=0, atol=1e-10)
    assert ((x >= 0) & (x <= 1)).all()
    inside = torch.rand(n, generator=g, dtype=F64)
    for out in (rqs_forward(inside, knots)[0], rqs_inverse(inside, knots)[0]):
        assert ((out >= 0) & (out <= 1)).all()
    n_out = int(((y < 0) | (y > 1)).sum())
    assert n_out == 0, f"{n_out} of {2 * n} endpoint images lie outside [0, 1], e.g. {y.max()!r}"
    assert torch.equal(y, ends), f"{int((y != ends).sum())} of {2 * n} endpoints move"


def test_bounded_spline_right_end_minimal_reproduction():
    """Minimal case of the above: one 2-bin spline whose right end maps to 1 + 2**-52.

    ``y0 + h * num / den`` evaluates ``(h * s) / s`` at t = 1, which is not h.
    """
    knots = torch.tensor(
        [[0.0, 0.913331690762053, 1.0],
         [0.0, 0.1572795574527977, 1.0],
         [1.0, 0.34546022661192405, 2.646113081600061]], dtype=F64,
    )  # fmt: skip
    y, _ = rqs_forward(torch.tensor(1.0, dtype=F64), knots)
    assert y.item() == 1.0, repr(y.item())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounded_round_trip_at_knots_ends_and_inside(seed):
    """inverse(forward(x)) = x and ladj_inv = -ladj_fwd (float64, <= 1e-10), incl. at knots."""
    params = raw_params(True, scale=1.5, seed=seed)
    x, knots = points(params, (0.0, 1.0), seed=seed)
    y, ladj = rqs_forward(x, knots)
    x2, ladj_inv = rqs_inverse(y, knots)
    torch.testing.assert_close(x2, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(ladj_inv, -ladj, rtol=0, atol=1e-10)
    # The knots map onto each other: x_k -> y_k exactly up to rounding.
    torch.testing.assert_close(y[:, : K + 1], knots[1, :, :, 0].T, rtol=0, atol=1e-14)
    # And the other way round, starting from y at the knot ordinates.
    y, knots = points(params, (0.0, 1.0), seed=seed, axis=1)
    x, ladj_inv = rqs_inverse(y, knots)
    y2, ladj = rqs_forward(x, knots)
    torch.testing.assert_close(y2, y, rtol=0, atol=1e-10)
    torch.testing.assert_close(ladj, -ladj_inv, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unbounded_round_trip_including_far_tails(seed):
    """Unbounded spline: round trip <= 1e-10 at knots, ±B, inside and at ±1e3."""
    params = raw_params(False, scale=1.5, seed=seed)
    x, knots = points(params, (-B, B), TAILS, seed=seed)
    y, ladj = unbounded_rqs(x, knots, B)
    x2, ladj_inv = unbounded_rqs(y, knots, B, inverse=True)
    torch.testing.assert_close(x2, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(ladj + ladj_inv, torch.zeros_like(x), rtol=0, atol=1e-10)
    # Identity tails: exactly x and log-derivative 0 outside [-B, B].
    out = x.abs() > B
    assert torch.equal(y[out], x[out]) and (ladj[out] == 0).all()
    # [-B, B] maps onto itself: the bounds are fixed points.
    edge = torch.tensor([-B, B], dtype=F64).expand(S, 2)
    y_edge, _ = unbounded_rqs(edge, knots_for(params, 2), B)
    torch.testing.assert_close(y_edge, edge, rtol=0, atol=1e-14)


@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_float32_round_trip(scale):
    """float32 round trip: <= 1e-5 (design target) where the map is well conditioned.

    Where the slope dy/dx is small the inverse amplifies float32 rounding of y
    by 1/slope, so the bound is 1e-5 * max(1, 1/slope) (1/slope = exp(-ladj)).
    """
    for bounded, interval, extra in ((False, (-B, B), TAILS), (True, (0.0, 1.0), ())):
        params = raw_params(bounded, scale=scale, dtype=torch.float32)
        x, knots = points(params, interval, extra)
        assert knots.dtype == torch.float32
        if bounded:
            y, ladj = rqs_forward(x, knots)
            x2, ladj_inv = rqs_inverse(y, knots)
        else:
            y, ladj = unbounded_rqs(x, knots, B)
            x2, ladj_inv = unbounded_rqs(y, knots, B, inverse=True)
        bound = 1e-5 * torch.exp(-ladj.double()).clamp_min(1.0)
        assert ((x2 - x).abs().double() <= bound).all()
        if scale < 1:
            torch.testing.assert_close(x2, x, rtol=0, atol=1e-5)
            torch.testing.assert_close(ladj_inv, -ladj, rtol=0, atol=1e-4)


# ------------------------------------------------------------------ derivatives


def autograd_derivative(fn, x):
    x = x.clone().requires_grad_(True)
    y, ladj = fn(x)
    (dydx,) = torch.autograd.grad(y.sum(), x)
    return dydx, ladj


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("inverse", [False, True])
def test_log_derivative_matches_autograd(bounded, inverse):
    """ladj = log(dy/dx) from autograd (float64, 1e-10), inside and at the interior knots."""
    interval = (0.0, 1.0) if bounded else (-B, B)
    params = raw_params(bounded, scale=1.5)
    x, knots = points(params, interval, (-50.0, 7.5) if not bounded else (), axis=int(inverse))
    # The two interval ends are checked in the next test.
    keep = torch.ones(x.shape[1], dtype=torch.bool)
    keep[[0, K]] = False
    x, knots = x[:, keep], knots[..., keep]
    if bounded:
        fn = (lambda t: rqs_inverse(t, knots)) if inverse else (lambda t: rqs_forward(t, knots))
    else:
        fn = lambda t: unbounded_rqs(t, knots, B, inverse=inverse)  # noqa: E731
    dydx, ladj = autograd_derivative(fn, x)
    torch.testing.assert_close(ladj, torch.log(dydx), rtol=0, atol=1e-10)


@pytest.mark.parametrize("bounded", [False, True])
def test_autograd_derivative_at_interval_ends(bounded):
    """At the interval ends (faces of the unit cube, ±B) autograd must give exp(ladj) too.

    Points exactly on the faces are common in unit-domain data. The inputs are
    clamped with ``torch.maximum``/``torch.minimum``, whose backward splits the
    gradient in half when the input equals the bound, so autograd sees half the
    true slope there.
    """
    lo, hi = (0.0, 1.0) if bounded else (-B, B)
    params = raw_params(bounded, scale=1.5)
    x = torch.tensor([lo, hi], dtype=F64).expand(S, 2)
    knots = knots_for(params, 2, (lo, hi))
    if bounded:
        fn = lambda t: rqs_forward(t, knots)  # noqa: E731
    else:
        fn = lambda t: unbounded_rqs(t, knots, B)  # noqa: E731
    dydx, ladj = autograd_derivative(fn, x)
    torch.testing.assert_close(torch.log(dydx), ladj, rtol=0, atol=1e-10)


def test_log_derivative_at_knots_equals_knot_derivative():
    """C¹ spline: the slope at knot k is d_k, so ladj(x_k) = log d_k."""
    params = raw_params(True, scale=1.5)
    x, knots = points(params, (0.0, 1.0))
    _, ladj = rqs_forward(x[:, : K + 1], knots[..., : K + 1])
    torch.testing.assert_close(ladj, knots[2, :, :, 0].T.log(), rtol=0, atol=1e-12)


def test_parameter_gradients_finite_everywhere():
    """Training needs finite gradients w.r.t. the spline parameters at knots, ends and tails."""
    for bounded, interval, extra in ((False, (-B, B), TAILS), (True, (0.0, 1.0), ())):
        params = [p.clone().requires_grad_(True) for p in raw_params(bounded, scale=2.0)]
        x, knots = points(params, interval, extra)
        for inverse in (False, True):
            if bounded:
                y, ladj = (rqs_inverse if inverse else rqs_forward)(x, knots)
            else:
                y, ladj = unbounded_rqs(x, knots, B, inverse=inverse)
            grads = torch.autograd.grad((y + ladj).sum(), params, retain_graph=True)
            assert all(torch.isfinite(g).all() for g in grads)
            assert all(g.abs().sum() > 0 for g in grads)


# ----------------------------------------------------------------- monotonicity


@pytest.mark.parametrize("bounded", [False, True])
def test_monotonic_on_a_dense_grid(bounded):
    """y is strictly increasing on a dense grid across all bins and tails; slopes > 0."""
    lo, hi = (0.0, 1.0) if bounded else (-B - 2, B + 2)
    grid = torch.linspace(lo, hi, 20_001, dtype=F64).expand(S, -1)
    interval = (0.0, 1.0) if bounded else (-B, B)
    knots = knots_for(raw_params(bounded, scale=2.0), grid.shape[1], interval)
    y, ladj = rqs_forward(grid, knots) if bounded else unbounded_rqs(grid, knots, B)
    assert (y.diff(dim=1) > 0).all()
    assert torch.isfinite(ladj).all()
    # Inverse is monotonic as well.
    x, _ = rqs_inverse(grid, knots) if bounded else unbounded_rqs(grid, knots, B, True)
    assert (x.diff(dim=1) > 0).all()


# ------------------------------------------------------------- extreme parameters


@pytest.mark.parametrize("sign", [True, False])
@pytest.mark.parametrize("bounded", [False, True])
def test_extreme_parameters_stay_invertible_and_finite(bounded, sign):
    """Parameters of magnitude 50: the min width/height/derivative guards keep it a bijection."""
    interval = (0.0, 1.0) if bounded else (-B, B)
    params = raw_params(bounded, scale=50.0, seed=3, sign=sign)
    x, knots = points(params, interval, () if bounded else TAILS)
    xk, yk, dk = knots
    span = interval[1] - interval[0]
    assert (xk.diff(dim=0) >= MIN_BIN_WIDTH * span * (1 - 1e-9)).all()
    assert (yk.diff(dim=0) >= MIN_BIN_HEIGHT * span * (1 - 1e-9)).all()
    assert (dk >= MIN_DERIVATIVE).all() and torch.isfinite(dk).all()
    if bounded:
        y, ladj = rqs_forward(x, knots)
        x2, ladj_inv = rqs_inverse(y, knots)
    else:
        y, ladj = unbounded_rqs(x, knots, B)
        x2, ladj_inv = unbounded_rqs(y, knots, B, inverse=True)
    assert all(torch.isfinite(t).all() for t in (y, ladj, x2, ladj_inv))
    # Round trip to 1e-10 in y units: |x2 - x| <= 1e-10 * max(1, 1/slope).
    assert ((x2 - x).abs() <= 1e-10 * torch.exp(-ladj).clamp_min(1.0)).all()
    torch.testing.assert_close(ladj_inv, -ladj, rtol=0, atol=1e-6)
    grid = torch.linspace(*interval, 20_001, dtype=F64).expand(S, -1)
    knots = knots_for(params, grid.shape[1], interval)
    y, _ = rqs_forward(grid, knots)
    assert (y.diff(dim=1) >= 0).all()


# ----------------------------------------------------------- reference: zuko, nflows


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_to_zuko_monotonic_rqs(seed):
    """zuko's knots through unbounded_rqs reproduce zuko's outputs, inverses and log-dets."""
    g = torch.Generator().manual_seed(seed)
    p = len(points(raw_params(False), (-B, B), TAILS)[0][0])
    w, h = (2 * torch.randn(S, p, K, generator=g, dtype=F64) for _ in range(2))
    d = 2 * torch.randn(S, p, K - 1, generator=g, dtype=F64)
    zt = MonotonicRQSTransform(w, h, d, bound=B)
    knots = torch.stack((zt.horizontal, zt.vertical, zt.derivatives)).movedim(-1, 1)
    assert knots.shape == (3, K + 1, S, p)
    # Points: zuko's own knots, random inside, tails.
    inside = -B + 2 * B * torch.rand(S, INNER, generator=g, dtype=F64)
    tails = torch.tensor(TAILS, dtype=F64).expand(S, -1)
    x = torch.cat((zt.horizontal[:, 0, :], inside, tails), dim=1)
    assert x.shape == (S, p)

    y_ref, ladj_ref = zt.call_and_ladj(x)
    y, ladj = unbounded_rqs(x, knots, B)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(ladj, ladj_ref, rtol=0, atol=1e-10)

    x_ref = zt.inv(y_ref)
    x_inv, ladj_inv = unbounded_rqs(y_ref, knots, B, inverse=True)
    torch.testing.assert_close(x_inv, x_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(ladj_inv, -ladj_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("bounded", [False, True])
def test_equal_to_nflows_including_parametrisation(bounded):
    """spline_knots + rqs equal nflows' RQS from the same unconstrained parameters.

    nflows uses d = min + softplus(u); hepflows shifts u by ``derivative_offset``
    so that u = 0 gives d = 1, hence u_hepflows = u_nflows - offset.
    """
    g = torch.Generator().manual_seed(7)
    interval = (0.0, 1.0) if bounded else (-B, B)
    n = 300
    nd = K + 1 if bounded else K - 1
    w, h = (1.5 * torch.randn(n, K, generator=g, dtype=F64) for _ in range(2))
    u = 1.5 * torch.randn(n, nd, generator=g, dtype=F64)
    lo, hi = interval
    x = torch.cat((lo + (hi - lo) * torch.rand(n - 12, generator=g, dtype=F64),
                   torch.tensor(TAILS[:6] if not bounded else (0.0, 1.0) * 3, dtype=F64),
                   torch.tensor([lo, hi, lo, hi, lo, hi], dtype=F64)))  # fmt: skip
    knots = spline_knots(w.T, h.T, u.T - derivative_offset(), left=lo, right=hi, bottom=lo, top=hi)
    for inverse in (False, True):
        if bounded:
            ref = rational_quadratic_spline(x, w, h, u, inverse=inverse)
            out = (rqs_inverse if inverse else rqs_forward)(x, knots)
        else:
            ref = unconstrained_rational_quadratic_spline(
                x, w, h, u, inverse=inverse, tails="linear", tail_bound=B
            )
            out = unbounded_rqs(x, knots, B, inverse=inverse)
        torch.testing.assert_close(out[0], ref[0], rtol=0, atol=1e-10)
        torch.testing.assert_close(out[1], ref[1], rtol=0, atol=1e-10)
