"""Transforms (hepflows.flows.transforms): Permutation, Logit/Sigmoid, Compose, Inverse."""

from __future__ import annotations

import pytest
import torch

from helpers import per_sample_logdet, randomize
from hepflows.flows import (
    AffineMap,
    Compose,
    Coupling,
    Inverse,
    Logit,
    Permutation,
    Sigmoid,
    SplineMap,
)

F64 = torch.float64


def unit_points(n: int = 64, features: int = 3, seed: int = 0) -> torch.Tensor:
    """Points in the open unit cube, including some very close to the faces."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, features, generator=g, dtype=F64)
    x[0] = 1e-9
    x[1] = 1 - 1e-9
    x[2] = torch.tensor([1e-6, 0.5, 1 - 1e-6], dtype=F64)[:features]
    return x


# ------------------------------------------------------------------ Permutation


def test_permutation_moves_features_and_round_trips():
    perm = torch.tensor([2, 0, 3, 1])
    t = Permutation(perm)
    x = torch.randn(5, 4, dtype=F64)
    z, ladj = t(x)
    # Output feature i is input feature perm[i].
    for i, j in enumerate(perm.tolist()):
        assert torch.equal(z[:, i], x[:, j])
    assert torch.equal(ladj, torch.zeros(5, dtype=F64))
    x2, ladj_inv = t.inverse(z)
    assert torch.equal(x2, x) and torch.equal(ladj_inv, torch.zeros(5, dtype=F64))


def test_permutation_works_on_extra_batch_axes():
    t = Permutation(torch.tensor([1, 2, 0]))
    x = torch.randn(2, 5, 3, dtype=F64)
    z, ladj = t(x)
    assert z.shape == x.shape and ladj.shape == (2, 5)
    assert torch.equal(t.inverse(z)[0], x)


@pytest.mark.parametrize("bad", [[0, 0, 1], [0, 1, 3], [1, 2]])
def test_permutation_rejects_non_permutations(bad):
    with pytest.raises(ValueError, match="not a permutation"):
        Permutation(torch.tensor(bad))


def test_permutation_buffers_follow_the_module():
    """permutation and its inverse are buffers (saved in state_dict, moved with .to)."""
    t = Permutation(torch.tensor([2, 0, 1]))
    state = t.state_dict()
    assert torch.equal(state["permutation"], torch.tensor([2, 0, 1]))
    assert torch.equal(state["inverse_permutation"], torch.tensor([1, 2, 0]))


# ---------------------------------------------------------------- Logit/Sigmoid


@pytest.mark.parametrize("alpha", [0.0, 1e-6, 0.05])
def test_logit_round_trip(alpha):
    """Sigmoid(Logit(x)) = x to 1e-12 in float64, also within 1e-9 of the faces."""
    t = Logit(alpha)
    x = unit_points()
    z, ladj = t(x)
    assert torch.isfinite(z).all() and torch.isfinite(ladj).all()
    x2, ladj_inv = t.inverse(z)
    torch.testing.assert_close(x2, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(ladj_inv, -ladj, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 1e-6, 0.05])
def test_logit_log_det_matches_autograd_jacobian(alpha):
    """Both directions against autograd, up to 1e-6 of the faces.

    (Closer to the faces autograd's own sigmoid backward, s (1 - s), loses
    digits, while the library's logsigmoid form stays exact.)
    """
    t = Logit(alpha)
    x = unit_points(10)[2:]
    z, ladj = t(x)
    torch.testing.assert_close(ladj, per_sample_logdet(lambda u: t(u)[0], x), rtol=1e-12, atol=1e-9)
    _, ladj_inv = t.inverse(z)
    torch.testing.assert_close(
        ladj_inv, per_sample_logdet(lambda u: t.inverse(u)[0], z), rtol=1e-12, atol=1e-9
    )


def test_logit_shrink_keeps_faces_finite():
    """alpha > 0 maps the closed cube (faces included) to finite points; alpha = 0 does not."""
    faces = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0]], dtype=F64)
    z, ladj = Logit(1e-6)(faces)
    assert torch.isfinite(z).all() and torch.isfinite(ladj).all()
    # logit(1e-6) = log(1e-6 / (1 - 1e-6))
    torch.testing.assert_close(z[0, 0], torch.log(torch.tensor(1e-6 / (1 - 1e-6), dtype=F64)))
    torch.testing.assert_close(Logit(1e-6).inverse(z)[0], faces, rtol=0, atol=1e-12)
    z0, _ = Logit(0.0)(faces)
    assert torch.isinf(z0[0, 0]) and z0[0, 0] < 0 and torch.isinf(z0[0, 1]) and z0[0, 1] > 0


def test_sigmoid_is_the_inverse_of_logit():
    z = 4 * torch.randn(16, 3, dtype=F64)
    for alpha in (0.0, 1e-6):
        x, ladj = Sigmoid(alpha)(z)
        x_ref, ladj_ref = Logit(alpha).inverse(z)
        assert torch.equal(x, x_ref) and torch.equal(ladj, ladj_ref)
        assert ((x >= 0) & (x <= 1)).all()
        z2, _ = Sigmoid(alpha).inverse(x)
        torch.testing.assert_close(z2, z, rtol=1e-8, atol=1e-8)


def test_sigmoid_log_det_stable_for_large_inputs():
    """log sigmoid'(z) for |z| ~ 50 is finite (no log(0)) and equals -|z| to 1e-12."""
    z = torch.tensor([[50.0], [-50.0], [700.0]], dtype=F64)
    _, ladj = Sigmoid()(z)
    assert torch.isfinite(ladj).all()
    torch.testing.assert_close(ladj, -z.abs().squeeze(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", [-0.1, 0.5, 0.7])
def test_logit_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        Logit(alpha)


# --------------------------------------------------------------- Compose/Inverse


def random_coupling(features=4, split=2, context=0, kind="rqs", seed=0):
    emap = SplineMap(bins=6, bound=4.0) if kind == "rqs" else AffineMap()
    block = Coupling(features, split, emap, context=context, hidden=(12,)).to(F64)
    return randomize(block, 0.25, seed)


def chain(context=0):
    return [
        random_coupling(context=context, seed=1),
        Permutation(torch.tensor([3, 1, 0, 2])),
        random_coupling(context=context, kind="affine", seed=2),
        Permutation(torch.tensor([1, 2, 3, 0])),
        random_coupling(context=context, seed=3),
    ]


@pytest.mark.parametrize("context", [0, 2])
def test_compose_applies_in_order_and_sums_log_dets(context):
    blocks = chain(context)
    t = Compose(blocks)
    x = 2 * torch.randn(32, 4, dtype=F64)
    c = torch.randn(32, context, dtype=F64) if context else None
    z, ladj = t(x, c)
    # Reference: the same blocks applied by hand, first first.
    h, total = x, torch.zeros(32, dtype=F64)
    for b in blocks:
        h, la = b(h, c)
        total = total + la
    assert torch.equal(z, h)
    torch.testing.assert_close(ladj, total, rtol=0, atol=1e-13)
    # The order matters (the blocks do not commute), so the check above is not vacuous.
    assert not torch.allclose(Compose(blocks[::-1])(x, c)[0], z)
    # Inverse: reversed order, round trip and opposite log-det.
    x2, ladj_inv = t.inverse(z, c)
    torch.testing.assert_close(x2, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(ladj_inv, -ladj, rtol=0, atol=1e-10)
    # And the summed log-det is that of the autograd Jacobian of the composition.
    torch.testing.assert_close(ladj, per_sample_logdet(lambda u: t(u, c)[0], x), rtol=0, atol=1e-9)


def test_compose_context_reaches_every_block():
    """Changing the context changes the output of a composed conditional transform."""
    t = Compose(chain(context=2))
    x = torch.randn(8, 4, dtype=F64)
    c1, c2 = torch.zeros(8, 2, dtype=F64), torch.ones(8, 2, dtype=F64)
    assert not torch.allclose(t(x, c1)[0], t(x, c2)[0])


def test_empty_compose_is_the_identity():
    x = torch.randn(5, 3, dtype=F64)
    z, ladj = Compose([])(x)
    assert torch.equal(z, x) and torch.equal(ladj, torch.zeros(5, dtype=F64))


def test_inverse_swaps_directions():
    block = random_coupling(seed=4)
    inv = Inverse(block)
    x = torch.randn(16, 4, dtype=F64)
    z, ladj = inv(x)
    z_ref, ladj_ref = block.inverse(x)
    assert torch.equal(z, z_ref) and torch.equal(ladj, ladj_ref)
    x2, ladj2 = inv.inverse(z)
    torch.testing.assert_close(x2, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(ladj2, -ladj, rtol=0, atol=1e-10)
    # Inverse of Inverse is the original map.
    assert torch.equal(Inverse(inv)(x)[0], block(x)[0])
    # Its log-det is that of its own Jacobian.
    torch.testing.assert_close(ladj, per_sample_logdet(lambda u: inv(u)[0], x), rtol=0, atol=1e-9)


def test_inverse_inside_compose_round_trips_with_context():
    t = Compose([random_coupling(context=1, seed=5), Inverse(random_coupling(context=1, seed=6))])
    x = torch.randn(16, 4, dtype=F64)
    c = torch.rand(16, 1, dtype=F64)
    z, ladj = t(x, c)
    x2, ladj_inv = t.inverse(z, c)
    torch.testing.assert_close(x2, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(ladj + ladj_inv, torch.zeros(16, dtype=F64), rtol=0, atol=1e-10)
