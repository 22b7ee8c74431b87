"""Autoregressive blocks (hepflows.flows.autoregressive): MAF and IAF blocks.

Round trips, log-dets against autograd, the autoregressive property (output i
depends on inputs before i in the order only: a triangular Jacobian), one
network pass in the fast direction, and the context reaching every feature.
Blocks are randomly initialised in float64 with tanh conditioners (no dead units).
"""

from __future__ import annotations

import pytest
import torch

from helpers import per_sample_logdet, randomize
from hepflows.flows import (
    AffineMap,
    InverseAutoregressive,
    MaskedAutoregressive,
    SplineMap,
)

F64 = torch.float64
FEATURES, CONTEXT = 4, 2
BLOCKS = {"maf": MaskedAutoregressive, "iaf": InverseAutoregressive}
MAPS = {"rqs": lambda: SplineMap(bins=6, bound=4.0), "affine": AffineMap}
ORDERS = {"natural": None, "shuffled": [2, 0, 3, 1]}


def block(name="maf", kind="rqs", context=0, order=None, seed=0):
    order = None if order is None else torch.tensor(order)
    b = BLOCKS[name](FEATURES, MAPS[kind](), context=context, hidden=(16, 16), order=order,
                     act="tanh")  # fmt: skip
    return randomize(b.to(F64), std=0.3, seed=seed)


def points(n=32, seed=0, features=FEATURES):
    return 1.5 * torch.randn(n, features, generator=torch.Generator().manual_seed(seed), dtype=F64)


CASES = [(b, k, c) for b in BLOCKS for k in MAPS for c in (0, CONTEXT)]
IDS = [f"{b}-{k}-c{c}" for b, k, c in CASES]


@pytest.mark.parametrize(("name", "kind", "ctx"), CASES, ids=IDS)
def test_round_trip_both_ways(name, kind, ctx):
    t = block(name, kind, ctx, order=ORDERS["shuffled"])
    x = points()
    c = points(seed=5, features=CONTEXT) if ctx else None
    with torch.no_grad():
        z, ladj = t(x, c)
        back, ladj_back = t.inverse(z, c)
        torch.testing.assert_close(back, x, rtol=0, atol=1e-10)
        torch.testing.assert_close(ladj_back, -ladj, rtol=0, atol=1e-10)
        torch.testing.assert_close(t(t.inverse(x, c)[0], c)[0], x, rtol=0, atol=1e-10)
    assert not torch.allclose(z, x)


@pytest.mark.parametrize(("name", "kind", "ctx"), CASES, ids=IDS)
def test_log_det_matches_autograd_jacobian(name, kind, ctx):
    t = block(name, kind, ctx)
    x = points(n=5)
    c = points(n=5, seed=5, features=CONTEXT) if ctx else None
    torch.testing.assert_close(
        t(x, c)[1], per_sample_logdet(lambda u: t(u, c)[0], x), rtol=0, atol=1e-9
    )
    torch.testing.assert_close(
        t.inverse(x, c)[1], per_sample_logdet(lambda u: t.inverse(u, c)[0], x), rtol=0, atol=1e-9
    )


def jacobian(fn, x):
    """(F, F) Jacobian of fn at one point x: (1, F)."""
    return torch.autograd.functional.jacobian(lambda u: fn(u)[0], x)[0, :, 0, :]


@pytest.mark.parametrize("name", list(BLOCKS))
@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_jacobian_is_triangular_in_the_autoregressive_order(name, order, direction):
    """Output i depends on input j only if j comes before i in the order (or j = i)."""
    t = block(name, order=ORDERS[order], context=CONTEXT)
    rank = torch.arange(FEATURES) if ORDERS[order] is None else torch.tensor(ORDERS[order])
    c = points(n=1, seed=7, features=CONTEXT)
    fn = (lambda u: t(u, c)) if direction == "forward" else (lambda u: t.inverse(u, c))
    for seed in range(3):
        jac = jacobian(fn, points(n=1, seed=seed))  # [i, j] = d out_i / d in_j
        later = rank[None, :] > rank[:, None]  # j after i
        assert (jac[later] == 0).all(), jac
        before = rank[None, :] < rank[:, None]
        assert (jac[before].abs() > 1e-8).all(), jac  # and it does depend on the earlier ones
        assert (jac.diagonal() > 0).all()
        # Permuted into the order, the Jacobian is lower triangular.
        perm = rank.argsort()
        assert torch.equal(jac[perm][:, perm], jac[perm][:, perm].tril())


def count_conditioner_passes(t, fn):
    """Number of times the block's MADE runs its hidden layers while fn() runs."""
    calls = []
    handle = t.made.hidden.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            fn()
    finally:
        handle.remove()
    return len(calls)


def test_maf_density_and_iaf_sampling_take_one_pass_their_inverses_one_per_feature():
    x = points()
    maf, iaf = block("maf"), block("iaf")
    assert count_conditioner_passes(maf, lambda: maf(x)) == 1
    assert count_conditioner_passes(iaf, lambda: iaf.inverse(x)) == 1
    # The slow direction solves one feature per pass, then one pass for the log-det.
    assert count_conditioner_passes(maf, lambda: maf.inverse(x)) == FEATURES + 1
    assert count_conditioner_passes(iaf, lambda: iaf(x)) == FEATURES + 1


def test_iaf_block_applies_the_inverse_map_with_parameters_from_its_input():
    """x = g^-1(z; made(z)): the same conditioner as a MAF block, other argument."""
    maf = block("maf", seed=3)
    iaf = block("iaf", seed=3)  # the same weights
    assert all(torch.equal(a, b) for a, b in zip(maf.parameters(), iaf.parameters(), strict=True))
    z = points(seed=2)
    x, ladj = iaf.inverse(z)
    expected, ladj_e = iaf.elementwise(z.T, maf.made(z), inverse=True)
    torch.testing.assert_close(x, expected.T, rtol=0, atol=0)
    torch.testing.assert_close(ladj, ladj_e.sum(0), rtol=0, atol=0)
    # The first feature of the order sees no input: it is the same map in both blocks.
    torch.testing.assert_close(iaf(x)[0][:, 0], maf(x)[0][:, 0], rtol=0, atol=1e-12)
    assert not torch.allclose(iaf(x)[0][:, 1:], maf(x)[0][:, 1:])


@pytest.mark.parametrize("name", list(BLOCKS))
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_context_changes_every_feature(name, direction):
    t = block(name, context=CONTEXT)
    x = points().clamp(-3.5, 3.5)  # inside the spline's bound 4 (identity tails outside)
    c1, c2 = points(seed=11, features=CONTEXT), points(seed=12, features=CONTEXT)
    fn = t if direction == "forward" else t.inverse
    with torch.no_grad():
        (z1, l1), (z2, l2) = fn(x, c1), fn(x, c2)
    assert ((z1 - z2).abs() > 1e-8).all()  # the first feature of the order included
    assert ((l1 - l2).abs() > 1e-8).all()


def test_fresh_block_is_the_identity():
    for name, cls in BLOCKS.items():
        t = cls(FEATURES, SplineMap(bins=4), context=CONTEXT, hidden=(8,)).to(F64)
        x, c = points(), points(seed=3, features=CONTEXT)
        for fn in (t, t.inverse):
            z, ladj = fn(x, c)
            torch.testing.assert_close(z, x, rtol=0, atol=1e-12, msg=name)
            torch.testing.assert_close(ladj, torch.zeros(len(x), dtype=F64), rtol=0, atol=1e-12)


def test_affine_maf_block_by_hand_with_two_features():
    """One linear MADE layer: z_0 = x_0 e^{s_0} + t_0 (constants), z_1 from x_0."""
    t = MaskedAutoregressive(2, AffineMap(max_log_scale=10.0), hidden=()).to(F64)
    with torch.no_grad():  # rows of the (P, F) layout: shift_0, shift_1, raw_0, raw_1
        t.made.last.weight.copy_(torch.tensor([[9.0], [0.5], [9.0], [0.25]], dtype=F64))
        t.made.last.bias.copy_(torch.tensor([1.0, 2.0, 0.3, -0.2], dtype=F64))
    assert t.made.last.mask.tolist() == [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    x = torch.tensor([[0.5, -1.0], [2.0, 3.0]], dtype=F64)
    s0 = 10 * torch.tanh(torch.tensor(0.3 / 10, dtype=F64))
    s1 = 10 * torch.tanh((0.25 * x[:, 0] - 0.2) / 10)
    z, ladj = t(x)
    torch.testing.assert_close(z[:, 0], x[:, 0] * s0.exp() + 1.0, rtol=0, atol=1e-14)
    torch.testing.assert_close(z[:, 1], x[:, 1] * s1.exp() + 0.5 * x[:, 0] + 2.0, rtol=0,
                               atol=1e-14)  # fmt: skip
    torch.testing.assert_close(ladj, s0 + s1, rtol=0, atol=1e-14)
