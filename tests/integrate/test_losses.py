"""Training losses of neural importance sampling (hepflows.integrate.losses).

Hand-computed values on a few points, and the exact picture on a histogram
density: q_theta = K softmax(theta) on K equal bins of [0, 1], "sampled" by one
point per bin drawn from the uniform density (log q_s = 0). Importance-weighted
means over those points are then exact integrals, so every loss equals its
population value, is minimised at q proportional to |f| with a gradient that
vanishes there, and (variance, KL) has the gradient of its closed form.
"""

from __future__ import annotations

import math

import pytest
import torch

from hepflows import ConfigError, HepflowsError
from hepflows.integrate import channel_variance, forward_kl, moment, reverse_kl, variance
from hepflows.integrate.losses import get_loss

F64 = torch.float64
K = 6
F_BINS = torch.tensor([0.5, 2.0, 3.0, 0.25, 1.0, 4.0], dtype=F64)  # f on the bins
ZEROS = torch.zeros(K, dtype=F64)  # log q_s of the uniform density
LOSSES = {
    "variance": variance,
    "kl": forward_kl,
    "rkl": reverse_kl,
    "moment2": moment(2),
    "moment3": moment(3),
    "moment24": moment(24),
}


def log_q(theta: torch.Tensor) -> torch.Tensor:
    """log of the histogram density K softmax(theta) at the bin centres: (K,)."""
    return math.log(K) + torch.log_softmax(theta, 0)


def grad_at(loss, theta: torch.Tensor, f: torch.Tensor = F_BINS) -> torch.Tensor:
    theta = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(f, ZEROS, log_q(theta)), theta)
    return g


def random_theta(seed: int) -> torch.Tensor:
    return torch.randn(K, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ------------------------------------------------------------------ values by hand
def test_variance_by_hand():
    # w = f / q_s = [1, 2], norm = 1.5; q_s / q = [0.5, 2]
    f = torch.tensor([1.0, 4.0], dtype=F64)
    log_qs = torch.log(torch.tensor([1.0, 2.0], dtype=F64))
    log_q_ = torch.log(torch.tensor([2.0, 1.0], dtype=F64))
    # ((1/1.5)^2 * 0.5 + (2/1.5)^2 * 2) / 2 = 17/9
    assert variance(f, log_qs, log_q_).item() == pytest.approx(17 / 9, rel=1e-14)


def test_forward_kl_by_hand():
    # weights w = f / q_s = [1, 2]: -(1 log 2 + 2 log 1) / 3
    f = torch.tensor([1.0, 4.0], dtype=F64)
    log_qs = torch.log(torch.tensor([1.0, 2.0], dtype=F64))
    log_q_ = torch.log(torch.tensor([2.0, 1.0], dtype=F64))
    assert forward_kl(f, log_qs, log_q_).item() == pytest.approx(-math.log(2) / 3, rel=1e-14)


def test_reverse_kl_gradient_by_hand_with_a_zero_of_f():
    """Fresh samples (q = q_s): d loss / d log q_i = (d_i - mean d) / n, d = log q - log p;
    a point with f = 0 takes log p = log(1e-3 x the smallest positive |f|)."""
    f = torch.tensor([0.0, 2.0, -4.0], dtype=F64)
    lq = torch.tensor([0.1, -0.2, 0.3], dtype=F64, requires_grad=True)
    loss = reverse_kl(f, lq.detach(), lq)
    assert loss.item() == pytest.approx(0.0, abs=1e-15)  # the baseline removes the mean
    (g,) = torch.autograd.grad(loss, lq)
    d = lq.detach() - torch.log(torch.tensor([2e-3, 2.0, 4.0], dtype=F64))
    torch.testing.assert_close(g, (d - d.mean()) / 3, rtol=0, atol=1e-15)
    # f = 0 everywhere: log p is one constant, the gradient flattens q (and is finite)
    (g0,) = torch.autograd.grad(reverse_kl(torch.zeros(3, dtype=F64), lq.detach(), lq), lq)
    d0 = lq.detach()
    torch.testing.assert_close(g0, (d0 - d0.mean()) / 3, rtol=0, atol=1e-15)


def test_moment_two_is_half_the_log_of_the_variance_loss():
    g = torch.Generator().manual_seed(0)
    f = torch.rand(50, generator=g, dtype=F64) + 0.1
    log_qs = 0.3 * torch.randn(50, generator=g, dtype=F64)
    lq = log_qs + 0.2 * torch.randn(50, generator=g, dtype=F64)
    torch.testing.assert_close(
        moment(2)(f, log_qs, lq), 0.5 * torch.log(variance(f, log_qs, lq)), rtol=1e-13, atol=0
    )


def test_moment_by_hand_with_zeros_of_f():
    """Points with f = 0 add nothing to the moment but count in the means; no NaN gradient."""
    f = torch.tensor([0.0, 1.0, 3.0, 0.0], dtype=F64)
    log_qs = torch.log(torch.tensor([1.0, 0.5, 2.0, 1.0], dtype=F64))
    lq = torch.log(torch.tensor([2.0, 1.0, 1.0, 0.5], dtype=F64)).requires_grad_(True)
    w = torch.tensor([0.0, 2.0, 1.5, 0.0], dtype=F64)  # f / q_s
    norm = w.mean()  # 0.875
    for p in (2, 3, 5):
        ratio = torch.tensor([0.5, 0.5, 2.0, 2.0], dtype=F64)  # q_s / q
        direct = ((w / norm) ** p * ratio ** (p - 1)).mean().log() / p
        value = moment(p)(f, log_qs, lq)
        torch.testing.assert_close(value, direct, rtol=1e-13, atol=0)
        (g,) = torch.autograd.grad(value, lq)
        assert torch.isfinite(g).all() and g[0] == 0 and g[3] == 0


def test_one_channel_variance_is_the_variance_loss_minus_one():
    """sigma^2 = E[w^2] - I^2 in units of I^2: the variance loss less its minimum 1."""
    g = torch.Generator().manual_seed(1)
    f = torch.rand(40, generator=g, dtype=F64) + 0.1
    log_qs = 0.3 * torch.randn(40, generator=g, dtype=F64)
    lq = log_qs + 0.2 * torch.randn(40, generator=g, dtype=F64)
    one = channel_variance(f, log_qs, lq, torch.zeros(40, dtype=torch.int64), 1)
    torch.testing.assert_close(one, variance(f, log_qs, lq) - 1, rtol=1e-12, atol=0)


def test_channel_variance_by_hand():
    # w = f, norm 2.5, wn = [.4, .8 | 1.2, 1.6]: m1 = [.6, 1.4], m2 = [.4, 2.0], sigma = [.2, .2]
    f = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    ch = torch.tensor([0, 0, 1, 1])
    assert channel_variance(f, ZEROS[:4], ZEROS[:4], ch, 2).item() == pytest.approx(0.16, 1e-13)
    # An empty channel adds only the floor sqrt(1e-12) of its sigma.
    value = channel_variance(f, ZEROS[:4], ZEROS[:4], ch, 3).item()
    assert value == pytest.approx((0.4 + 1e-6) ** 2, rel=1e-12)
    # Each channel its own q: a channel whose q matches f on its points has sigma ~ 0.
    lq = torch.log(torch.tensor([2 / 3, 4 / 3, 1.0, 1.0], dtype=F64))  # channel 0 flat in w/q
    ratio_1 = channel_variance(f, ZEROS[:4], lq, ch, 2).item()
    # channel 0: wn^2 q_s/q = [.24, .48] -> m2 = .36 = m1^2 -> sigma floor 1e-6
    assert ratio_1 == pytest.approx((1e-6 + 0.2) ** 2, rel=1e-9)


def test_losses_depend_on_the_modulus_of_f():
    g = torch.Generator().manual_seed(2)
    f = torch.rand(30, generator=g, dtype=F64) + 0.1
    sign = torch.where(torch.rand(30, generator=g) < 0.5, -1.0, 1.0).to(F64)
    log_qs = 0.3 * torch.randn(30, generator=g, dtype=F64)
    lq = log_qs + 0.2 * torch.randn(30, generator=g, dtype=F64)
    for name, loss in LOSSES.items():
        torch.testing.assert_close(loss(f * sign, log_qs, lq), loss(f, log_qs, lq), msg=name)


# ------------------------------------------------------------------ the histogram family
def test_values_are_the_exact_integrals():
    theta = random_theta(3)
    q = torch.exp(log_q(theta))
    p = F_BINS / F_BINS.sum() * K  # the target density |f| / I on the bins
    # variance: int (f/I)^2 / q;  forward KL: -int p log q;  moment<m>: (1/m) log int p^m / q^(m-1)
    assert variance(F_BINS, ZEROS, log_q(theta)).item() == pytest.approx(
        (p**2 / q).mean().item(), rel=1e-13
    )
    assert forward_kl(F_BINS, ZEROS, log_q(theta)).item() == pytest.approx(
        -(p * q.log()).mean().item(), rel=1e-13
    )
    for m in (3, 24):
        expected = math.log((p**m / q ** (m - 1)).mean().item()) / m
        assert moment(m)(F_BINS, ZEROS, log_q(theta)).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradient_vanishes_at_q_proportional_to_f(name):
    best = F_BINS.log()  # softmax(log f) = f / sum f
    g = grad_at(LOSSES[name], best)
    assert g.abs().max() < 1e-12, g
    # ... and nowhere else on a few random densities
    for seed in range(3):
        assert grad_at(LOSSES[name], random_theta(seed)).abs().max() > 1e-3


@pytest.mark.parametrize("name", list(LOSSES))
def test_minimum_is_at_q_proportional_to_f(name):
    loss = LOSSES[name]
    best = loss(F_BINS, ZEROS, log_q(F_BINS.log())).item()
    if name == "variance":
        assert best == pytest.approx(1.0, rel=1e-13)  # int p^2 / p = 1
    if name.startswith("moment"):
        assert best == pytest.approx(0.0, abs=1e-13)  # (1/m) log int p = 0
    if name == "rkl":
        return  # its value is baseline-subtracted (0 at every q on these points)
    for seed in range(10):
        theta = F_BINS.log() + 0.3 * random_theta(seed)
        assert loss(F_BINS, ZEROS, log_q(theta)).item() > best


def test_reverse_kl_has_the_gradient_of_the_exact_kl():
    """Its score-function gradient, from points of another density, is d KL(q || p) / d theta."""
    p = F_BINS / F_BINS.mean()
    for seed in range(3):
        theta = random_theta(seed).requires_grad_(True)
        q = torch.exp(log_q(theta))
        kl = (q * (q.log() - p.log())).mean()
        (expected,) = torch.autograd.grad(kl, theta)
        torch.testing.assert_close(grad_at(reverse_kl, theta.detach()), expected, rtol=1e-10,
                                   atol=1e-14)  # fmt: skip


def test_gradient_descent_on_the_histogram_reaches_q_proportional_to_f():
    for name in ("variance", "kl", "rkl", "moment3"):
        theta = torch.zeros(K, dtype=F64, requires_grad=True)
        opt = torch.optim.Adam([theta], lr=0.05)
        for _ in range(600):
            opt.zero_grad()
            LOSSES[name](F_BINS, ZEROS, log_q(theta)).backward()
            opt.step()
        q = torch.softmax(theta.detach(), 0)
        torch.testing.assert_close(q, F_BINS / F_BINS.sum(), rtol=0, atol=2e-3, msg=name)


# ------------------------------------------------------------------ names and errors
def test_get_loss_by_name():
    assert get_loss("variance") is variance
    assert get_loss("kl") is forward_kl
    assert get_loss("rkl") is reverse_kl
    for p in (2, 3, 24, 100):
        loss = get_loss(f"moment{p}")
        assert loss.__name__ == f"moment{p}"
        theta = random_theta(p)
        torch.testing.assert_close(
            loss(F_BINS, ZEROS, log_q(theta)), moment(p)(F_BINS, ZEROS, log_q(theta)),
            rtol=0, atol=0,
        )  # fmt: skip
    # distinct orders are distinct losses
    lq = log_q(random_theta(9))
    assert get_loss("moment3")(F_BINS, ZEROS, lq) != get_loss("moment4")(F_BINS, ZEROS, lq)


@pytest.mark.parametrize(
    "name",
    ["moment1", "moment0", "moment", "moment-3", "moment2.5", "Moment3", "moment3 ", "momentx",
     "variance2", "chi2", ""],
)  # fmt: skip
def test_unknown_loss_names_are_config_errors_naming_the_choices(name):
    with pytest.raises(ConfigError, match=r"unknown loss .*'kl', 'rkl', 'variance'.*moment<p>"):
        get_loss(name)


@pytest.mark.parametrize("p", [1, 0, -2])
def test_moment_order_below_two_is_refused(p):
    with pytest.raises(ConfigError, match=f"p >= 2, got {p}"):
        moment(p)
    assert issubclass(ConfigError, HepflowsError)


def test_moment_loss_of_all_zero_weights_is_zero_not_nan():
    """A channel whose few points in a batch all miss the cuts (f = 0) carries no
    information: the moment loss is 0 with a finite gradient, not NaN (-inf - -inf), which
    made the engine skip every step of 78 channels on p p -> 3 jets (docs/multijet.md)."""
    log_q = torch.tensor([-0.3, 0.2], dtype=torch.float64, requires_grad=True)
    loss = moment(32)(torch.zeros(2, dtype=torch.float64), log_q.detach(), log_q)
    loss.backward()
    assert float(loss) == 0.0 and bool(torch.isfinite(log_q.grad).all())
