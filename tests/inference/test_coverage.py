"""Coverage checks can fail: the exact posterior of a conjugate Gaussian model passes SBC,
HPD and interval coverage, an over-confident or biased one does not; C2ST tells shifted
normals apart and not equal ones; bad input is refused with a message naming it."""

from __future__ import annotations

import math

import pytest
import torch

from hepflows.errors import ConfigError, HepflowsWarning, InputError
from hepflows.inference.calibration import tarp
from hepflows.inference.coverage import (
    binomial_error,
    c2st,
    coverage_curve,
    expected_coverage,
    hpd_credibility,
    interval_coverage,
    plot_coverage,
    plot_sbc,
    sbc_check,
    sbc_ranks,
)

#: test pairs, posterior samples per pair, parameters
N, S, D = 1000, 500, 2
#: x ~ N(theta, SIGMA^2), theta ~ N(0, 1): posterior N(x / (1 + SIGMA^2), SIGMA^2 / (1 + SIGMA^2))
SIGMA = 0.5
LEVELS = (0.68, 0.95)
PNG = b"\x89PNG\r\n\x1a\n"


def conjugate_toy(width: float = 1.0, shift: float = 0.0, seed: int = 0):
    """N test pairs of the conjugate Gaussian model in D independent coordinates, with a
    posterior whose width is the exact one times ``width`` and whose mean is moved by
    ``shift`` exact standard deviations.

    Returns (samples (S, N, D), truth (N, D), log q of the samples (S, N), log q of the
    truth (N,)), log q being the density of that (possibly wrong) posterior.
    """
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(N, D, generator=g, dtype=torch.float64)
    x = theta + SIGMA * torch.randn(N, D, generator=g, dtype=torch.float64)
    sd = math.sqrt(SIGMA**2 / (1 + SIGMA**2))  # sqrt(0.2)
    q = torch.distributions.Normal(x / (1 + SIGMA**2) + shift * sd, width * sd)
    samples = q.loc + q.scale * torch.randn(S, N, D, generator=g, dtype=torch.float64)
    return samples, theta, q.log_prob(samples).sum(-1), q.log_prob(theta).sum(-1)


@pytest.fixture(scope="module")
def exact():
    return conjugate_toy()


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


# ---------------------------------------------------------------------------------- SBC


def test_sbc_ranks_count_the_samples_below_the_truth():
    samples = torch.tensor([[[0.0, 5.0]], [[1.0, 6.0]], [[2.0, 7.0]], [[3.0, 8.0]]])  # (4, 1, 2)
    truth = torch.tensor([[1.5, 9.0]])
    ranks = sbc_ranks(samples, truth)
    assert ranks.dtype == torch.int64 and ranks.tolist() == [[2, 4]]
    assert sbc_ranks(samples, torch.tensor([[-1.0, 5.0]])).tolist() == [[0, 0]]  # ties: not below


def test_sbc_randomisation_makes_discrete_uniform_ranks_pass():
    """Ranks uniform on {0, ..., 4} are what a calibrated posterior with S = 4 gives: the
    randomised p-values accept them (a KS test of rank / S would reject: p ~ 1e-100)."""
    g = torch.Generator().manual_seed(1)
    ranks = torch.randint(0, 5, (2000, 3), generator=g)
    p = sbc_check(ranks, samples=4, seed=0)
    assert p.shape == (3,) and bool((p > 0.01).all()), p
    assert torch.equal(p, sbc_check(ranks, samples=4, seed=0))  # seeded
    # and ranks piled up at the ends (a posterior far too narrow) are rejected
    ends = torch.where(ranks < 2, 0, 4)
    assert bool((sbc_check(ends, samples=4) < 1e-3).all())


def test_exact_posterior_passes_sbc(exact):
    samples, truth, _, _ = exact
    p = sbc_check(sbc_ranks(samples, truth), S)
    assert p.shape == (D,) and bool((p > 0.01).all()), p


@pytest.mark.parametrize(("width", "shift"), [(0.5, 0.0), (1.0, 1.0)], ids=["narrow", "biased"])
def test_wrong_posterior_fails_sbc(width, shift):
    samples, truth, _, _ = conjugate_toy(width, shift)
    p = sbc_check(sbc_ranks(samples, truth), S)
    assert bool((p < 1e-3).all()), p


def test_sbc_warns_below_100_pairs():
    ranks = torch.randint(0, 11, (50, 1), generator=torch.Generator().manual_seed(0))
    with pytest.warns(HepflowsWarning, match="50 test pairs.*at least 100"):
        sbc_check(ranks, 10)


# ------------------------------------------------------------------------- HPD coverage


def test_hpd_credibility_of_a_gaussian_is_its_chi2_cdf():
    """For a 2-d standard normal q the HPD region through a point at radius r has
    credibility P(chi^2_2 < r^2) = 1 - exp(-r^2 / 2)."""
    g = torch.Generator().manual_seed(2)
    q = torch.distributions.Normal(torch.zeros(2, dtype=torch.float64), 1.0)
    samples = torch.randn(20_000, 6, 2, generator=g, dtype=torch.float64)
    r = torch.tensor([0.0, 0.3, 0.8, 1.2, 2.0, 3.0], dtype=torch.float64)
    truth = torch.stack([r, torch.zeros_like(r)], 1)
    alpha = hpd_credibility(q.log_prob(samples).sum(-1), q.log_prob(truth).sum(-1))
    expected = 1 - torch.exp(-(r**2) / 2)
    assert torch.allclose(alpha, expected, atol=4 * math.sqrt(0.25 / 20_000)), alpha


def test_expected_coverage_counts_credibilities_below_the_level():
    lps = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0], [4.0, 4.0, 4.0]])
    lpt = torch.tensor([5.0, 2.5, -math.inf])  # alpha = 0, 1/2, 1
    assert hpd_credibility(lps, lpt).tolist() == [0.0, 0.5, 1.0]
    coverage = expected_coverage(lps, lpt, [0.0, 0.49, 0.5, 0.99, 1.0])
    assert torch.allclose(coverage, torch.tensor([1, 1, 2, 2, 3], dtype=torch.float64) / 3)


def test_exact_posterior_has_nominal_hpd_coverage(exact):
    _, _, lps, lpt = exact
    coverage = expected_coverage(lps, lpt, LEVELS)
    for level, c in zip(LEVELS, coverage.tolist(), strict=True):
        assert abs(c - level) < 3 * binomial_error(level, N), (level, c)


@pytest.mark.parametrize(("width", "shift"), [(0.5, 0.0), (1.0, 1.0)], ids=["narrow", "biased"])
def test_wrong_posterior_undercovers(width, shift):
    """Analytically (2-d, chi^2_2(68 %) = 2.28): the narrow posterior's 68 % HPD region
    covers P(chi^2_2 < 2.28 / 4) = 0.25, the one biased by 1 sigma in each coordinate
    P(chi^2_2(nc = 2) < 2.28) = 0.39: both more than 10 errors below 0.68."""
    _, _, lps, lpt = conjugate_toy(width, shift)
    coverage = expected_coverage(lps, lpt, LEVELS)
    for level, c in zip(LEVELS, coverage.tolist(), strict=True):
        assert c < level - 10 * binomial_error(level, N), (level, c)


def test_underconfident_posterior_overcovers():
    _, _, lps, lpt = conjugate_toy(width=2.0)
    c68 = float(expected_coverage(lps, lpt, [0.68])[0])
    assert c68 > 0.68 + 10 * binomial_error(0.68, N), c68


def test_coverage_curve_has_101_levels_and_is_monotone(exact):
    _, _, lps, lpt = exact
    levels, coverage = coverage_curve(lps, lpt)
    assert levels.shape == coverage.shape == (101,)
    assert float(levels[0]) == 0.0 and float(levels[-1]) == 1.0
    assert bool((coverage.diff() >= 0).all()) and float(coverage[-1]) == 1.0
    assert float((coverage - levels).abs().max()) < 4 * math.sqrt(0.25 / N)


# -------------------------------------------------------------------- interval coverage


def test_exact_posterior_intervals_have_nominal_coverage(exact):
    samples, truth, _, _ = exact
    coverage = interval_coverage(samples, truth, LEVELS)
    assert list(coverage) == list(LEVELS)
    for level, c in coverage.items():
        assert c.shape == (D,)
        assert bool(((c - level).abs() < 3 * binomial_error(level, N)).all()), (level, c)


@pytest.mark.parametrize(("width", "shift"), [(0.5, 0.0), (1.0, 1.0)], ids=["narrow", "biased"])
def test_wrong_posterior_intervals_undercover(width, shift):
    """Narrow: the 68 % interval covers P(|z| < 0.5) = 0.38; biased: P(|z - 1| < 1) = 0.48."""
    samples, truth, _, _ = conjugate_toy(width, shift)
    for level, c in interval_coverage(samples, truth, LEVELS).items():
        assert bool((c < level - 10 * binomial_error(level, N)).all()), (level, c)


def test_interval_coverage_of_a_known_sample():
    samples = torch.arange(101, dtype=torch.float64)[:, None, None].expand(101, 3, 1)
    truth = torch.tensor([[50.0], [20.0], [10.0]])  # 68 %: [16, 84]; 95 %: [2.5, 97.5]
    coverage = interval_coverage(samples, truth, (0.5, 0.68, 0.95))
    assert coverage[0.5].tolist() == [1 / 3]
    assert coverage[0.68].tolist() == [2 / 3]
    assert coverage[0.95].tolist() == [1.0]


def test_binomial_error():
    assert binomial_error(0.5, 100) == pytest.approx(0.05)
    assert binomial_error(0.0, 10) == 0.0
    err = binomial_error(torch.tensor([0.68, 0.95]), 1000)
    assert isinstance(err, torch.Tensor)
    assert torch.allclose(err, torch.tensor([0.0147513, 0.0068920], dtype=torch.float64))


# --------------------------------------------------------------------------------- C2ST


def test_c2st_tells_shifted_normals_apart_and_equal_ones_not():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    b = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    same = c2st(a, b)
    assert 0.45 < same < 0.55, same
    shifted = b + torch.tensor([1.0, 0.0], dtype=torch.float64)
    accuracy = c2st(a, shifted, seed=1)
    # the Bayes-optimal accuracy for a unit shift is Phi(1/2) = 0.69
    assert 0.6 < accuracy < 0.72, accuracy
    assert c2st(a, shifted, seed=1) == accuracy  # seeded


def test_c2st_equals_sbis():
    """The same classifier, folds and z-scoring as sbi's c2st(classifier="mlp")."""
    from sbi.utils.metrics import c2st as sbi_c2st

    g = torch.Generator().manual_seed(4)
    a = torch.randn(600, 2, generator=g)
    b = 0.8 * torch.randn(600, 2, generator=g) + 0.3
    ours = c2st(a, b, seed=2)
    theirs = float(sbi_c2st(a, b, seed=2, classifier="mlp"))
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert ours > 0.55


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_refused():
    samples, truth = torch.zeros(10, 4, 2), torch.zeros(4, 2)
    with pytest.raises(InputError, match=r"samples must be \(S, n, d\)"):
        sbc_ranks(samples, torch.zeros(4, 3))
    with pytest.raises(InputError, match="NaN"):
        sbc_ranks(samples, torch.full((4, 2), math.nan))
    with pytest.raises(InputError, match=r"ranks must be \(n, d\)"):
        sbc_check(torch.zeros(5, dtype=torch.int64), 10)
    with pytest.raises(InputError, match=r"\[0, samples=10\], got \[0, 11\]"):
        sbc_check(torch.tensor([[0], [11]]), 10)
    with pytest.raises(InputError, match="whole numbers"):
        sbc_check(torch.tensor([[0.5]]), 10)
    with pytest.raises(InputError, match="number S >= 1"):
        sbc_check(torch.tensor([[0]]), 0)
    with pytest.raises(InputError, match=r"\(S, n\) and log_prob_truth \(n,\)"):
        expected_coverage(torch.zeros(10, 4), torch.zeros(5), LEVELS)
    with pytest.raises(InputError, match="log_prob_truth contains NaN"):
        expected_coverage(torch.zeros(10, 4), torch.full((4,), math.nan), LEVELS)
    with pytest.raises(InputError, match=r"levels must lie in \[0, 1\]"):
        expected_coverage(torch.zeros(10, 4), torch.zeros(4), [0.5, 1.5])
    with pytest.raises(InputError, match=r"levels must be a non-empty sequence in \(0, 1\)"):
        interval_coverage(samples, truth, (0.68, 1.0))
    with pytest.raises(InputError, match="n must be a number of pairs"):
        binomial_error(0.5, 0)
    with pytest.raises(InputError, match="p must be a fraction"):
        binomial_error(1.2, 10)


def test_c2st_refuses_bad_input():
    a = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(InputError, match=r"same d >= 1, got \(50, 2\) and \(50, 3\)"):
        c2st(a, torch.zeros(50, 3))
    with pytest.raises(InputError, match=r"same d"):
        c2st(a[:, 0], a[:, 0])
    with pytest.raises(InputError, match="at least folds=5 rows.*got 50 and 3"):
        c2st(a, a[:3])
    b = a.clone()
    b[7, 1] = math.nan
    with pytest.raises(InputError, match="sample b contains NaN"):
        c2st(a, b)
    constant = a.clone()
    constant[:, 1] = 1.0
    with pytest.raises(InputError, match=r"coordinates \[1\] of sample a are constant"):
        c2st(constant, a)
    with pytest.raises(ConfigError, match="folds must be an integer >= 2"):
        c2st(a, a, folds=1)


# -------------------------------------------------------------------------------- plots


def test_plot_sbc_writes_a_png(tmp_path, exact):
    samples, truth, _, _ = exact
    path = tmp_path / "sbc.png"
    plot_sbc(sbc_ranks(samples, truth), S, path, ["$\\theta_1$", "$\\theta_2$"], title="SBC")
    assert_png(path)


def test_plot_coverage_writes_a_png_with_tarp(tmp_path, exact):
    samples, truth, lps, lpt = exact
    levels, coverage = coverage_curve(lps, lpt)
    path = tmp_path / "coverage.png"
    # tarp's default references come from seed 0, the toy's own seed: they would be
    # correlated with the truths and bias the curve, so they get a seed of their own
    curve = tarp(samples, truth, generator=torch.Generator().manual_seed(7))
    plot_coverage(levels, coverage, path, title="coverage", tarp=curve)
    assert_png(path)


def test_plots_refuse_bad_shapes(tmp_path):
    ranks = torch.zeros(200, 2, dtype=torch.int64)
    with pytest.raises(InputError, match="one name per coordinate"):
        plot_sbc(ranks, 10, tmp_path / "s.png", ["a"])
    with pytest.raises(InputError, match=r"bins must be an integer in \[1, S \+ 1 = 11\]"):
        plot_sbc(ranks, 10, tmp_path / "s.png", ["a", "b"], bins=12)
    levels = torch.linspace(0, 1, 11)
    with pytest.raises(InputError, match="levels and coverage"):
        plot_coverage(levels, torch.zeros(10), tmp_path / "c.png")
    with pytest.raises(InputError, match="tarp: alpha and ecp"):
        plot_coverage(levels, levels, tmp_path / "c.png", tarp=(levels, levels[:3], 0.0))
    assert not list(tmp_path.iterdir())
