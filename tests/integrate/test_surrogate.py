"""Bayesian surrogate (calibrated pulls) and two-stage unweighting (exact distribution,
exact calls only on the first stage's survivors), and the sampler's density without calls."""

import math

import pytest
import torch
from scipy import stats

from hepflows import InputError
from hepflows.integrate import NeuralIntegrator
from hepflows.integrate.integrands import resonances
from hepflows.integrate.surrogate import BayesianRegression, fit_surrogate, pull_width, pulls
from hepflows.integrate.unweighting import choose_wmax, two_stage_unweight, unweight


def _toy(n, seed):
    """y = sin(3 x1) + x2^2 with noise of width 0.05 + 0.1 |x1| (heteroscedastic)."""
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(n, 2, generator=g, dtype=torch.float64) - 1
    sigma = 0.05 + 0.1 * x[:, 0].abs()
    y = torch.sin(3 * x[:, 0]) + x[:, 1] ** 2 + sigma * torch.randn(n, generator=g,
                                                                     dtype=torch.float64)
    return x, y, sigma


@pytest.fixture(scope="module")
def fitted():
    x, y, _ = _toy(6000, 0)
    model = BayesianRegression(2, hidden=(32, 32), seed=1)
    fit = fit_surrogate(model, x, y, epochs=80, batch_size=256, lr=3e-3, seed=2)
    return model, fit


def test_pulls_are_calibrated_and_sigma_follows_the_noise(fitted):
    model, fit = fitted
    assert math.isfinite(fit.val_loss) and fit.epochs_run >= 10
    x, y, sigma = _toy(4000, 5)
    p = pulls(model, x, y)
    assert 0.85 <= pull_width(p) <= 1.15
    assert abs(float(p.median())) < 0.15
    mean, s = model.predict(x)
    assert float((mean - y).abs().median()) < 0.1
    # the predicted uncertainty grows with the noise (|x1|), as the truth's
    wide, narrow = x[:, 0].abs() > 0.7, x[:, 0].abs() < 0.3
    assert float(s[wide].median()) > 1.5 * float(s[narrow].median())


def test_prediction_is_reproducible_and_does_not_touch_the_global_stream(fitted):
    model, _ = fitted
    x, _, _ = _toy(50, 9)
    state = torch.random.get_rng_state()
    model.generator.manual_seed(4)
    a = model.predict(x)
    model.generator.manual_seed(4)
    b = model.predict(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(state, torch.random.get_rng_state())
    m0, s0 = model.predict(x, samples=0)  # the weights' means: deterministic
    assert torch.equal(m0, model.predict(x, samples=0)[0]) and bool((s0 > 0).all())


def test_surrogate_bad_input_names_the_fix():
    model = BayesianRegression(2, hidden=(8,))
    x = torch.zeros(100, 2, dtype=torch.float64)
    with pytest.raises(InputError, match="drop points where f = 0"):
        fit_surrogate(model, x, torch.full((100,), -math.inf, dtype=torch.float64))
    with pytest.raises(InputError, match=r"\(N, F\)"):
        fit_surrogate(model, x, torch.zeros(99, dtype=torch.float64))
    with pytest.raises(InputError, match="too few"):
        fit_surrogate(model, x[:5], torch.zeros(5, dtype=torch.float64))


def _exact(x):
    return 3 * x[:, 0] ** 2


def test_two_stage_events_follow_the_exact_density_and_save_exact_calls():
    """q uniform, f = 3 x^2, a surrogate off by up to +-30 %: the kept events follow x^3
    (not the surrogate), exact f is called once, on the first stage's survivors only."""
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x = torch.rand(n, 1, generator=g, dtype=torch.float64)
    log_q = torch.zeros(n, dtype=torch.float64)
    calls = []

    def exact(points):
        calls.append(len(points))
        return _exact(points)

    def surrogate(points):
        return _exact(points) * (1 + 0.3 * torch.sin(20 * points[:, 0]))

    res = two_stage_unweight(x, log_q, surrogate, exact, rule="max", generator=g)
    assert len(calls) == 1 and calls[0] == res.exact_calls < n
    assert res.surrogate_calls == n and torch.all(res.weights == 1)  # max rule: no overweights
    assert stats.kstest(res.x[:, 0].numpy(), lambda t: t**3).pvalue > 1e-3
    one_stage = len(unweight(x, _exact(x), choose_wmax(_exact(x), "max"), g)[0])
    assert res.exact_calls_per_event < n / one_stage  # fewer exact calls per event
    assert res.efficiency_correction == pytest.approx(len(res.x) / res.exact_calls)


def test_two_stage_overweights_keep_the_distribution():
    """With the 0.99-quantile rule the events above a reference carry weight > 1 and the
    weighted events still follow f."""
    g = torch.Generator().manual_seed(1)
    n = 200_000
    x = torch.rand(n, 1, generator=g, dtype=torch.float64)
    res = two_stage_unweight(x, torch.zeros(n, dtype=torch.float64),
                             lambda p: _exact(p) * (1 + 0.3 * torch.cos(7 * p[:, 0])), _exact,
                             rule="quantile", quantile=0.99, generator=g)  # fmt: skip
    assert 0 < res.overweight_fraction < 0.05 and bool((res.weights >= 1).all())
    mean = float((res.weights * res.x[:, 0]).sum() / res.weights.sum())
    assert mean == pytest.approx(0.75, abs=4 * 0.19 / math.sqrt(len(res.x)))


def test_two_stage_bad_input():
    x = torch.rand(10, 1, dtype=torch.float64)
    zeros = torch.zeros(10, dtype=torch.float64)
    with pytest.raises(InputError, match="surrogate must return"):
        two_stage_unweight(x, zeros, lambda p: -_exact(p), _exact)
    with pytest.raises(InputError, match="exact integrand must return"):
        two_stage_unweight(x, zeros, _exact, lambda p: torch.full((len(p),), math.nan))
    with pytest.raises(InputError, match=r"log q \(n,\)"):
        two_stage_unweight(x, zeros[:5], _exact, _exact)


def test_propose_gives_the_mixture_density_without_integrand_calls():
    f = resonances(2, 0.01)
    integ = NeuralIntegrator(f, 2, seed=3, channels=f.channels, vegas=False, weights="mixture")
    integ.train(calls=10_000, progress=False)
    calls = integ.calls
    x, log_q = integ.propose(20_000)
    assert integ.calls == calls  # no integrand call
    assert x.shape == (20_000, 2) and log_q.shape == (20_000,)
    log_g = torch.logsumexp(torch.log(integ.fractions) + integ.channel_log_densities(x), 1)
    assert torch.allclose(log_q, log_g, atol=1e-4)
    w = f(x) / log_q.exp()  # importance weights of the proposal: their mean is I
    assert float(w.mean()) == pytest.approx(f.exact, rel=5 * float(w.std()) / f.exact / 141)
    single = NeuralIntegrator(f, 2, seed=3, vegas=False)
    xs, lq = single.propose(100)
    assert torch.allclose(lq, single.flow.log_prob(xs.to(single.flow.dtype)).double(), atol=1e-4)


def test_calibration_on_held_out_points_fixes_heavy_tailed_pulls():
    """Noise with heavy tails (90 % of width 0.02, 10 % of width 0.3): the Gaussian fit's
    sigma is set by the tails and the bulk's pulls are too narrow; calibrating on one
    held-out set gives unit width on another."""
    g = torch.Generator().manual_seed(3)
    n = 8000
    x = 2 * torch.rand(n, 1, generator=g, dtype=torch.float64) - 1
    wide = torch.rand(n, generator=g, dtype=torch.float64) < 0.1
    noise = torch.randn(n, generator=g, dtype=torch.float64) * torch.where(wide, 0.3, 0.02)
    y = torch.sin(3 * x[:, 0]) + noise
    model = BayesianRegression(1, hidden=(32, 32), seed=0)
    fit_surrogate(model, x[:5000], y[:5000], epochs=25, batch_size=256, lr=3e-3, seed=1)
    raw = pull_width(pulls(model, x[6500:], y[6500:]))
    factor = model.calibrate(x[5000:6500], y[5000:6500])
    assert factor == pytest.approx(raw, rel=0.15)
    calibrated = pull_width(pulls(model, x[6500:], y[6500:]))
    assert abs(calibrated - 1) < 0.12 and raw < 0.7
    assert float(model.state_dict()["sigma_scale"]) == pytest.approx(factor)  # saved with it


def _factorised(x):
    """A toy integrand's (features, base): base 0 for x1 < -0.9, else 1 + x2^2."""
    return x, torch.where(x[:, 0] < -0.9, 0.0, 1 + x[:, 1] ** 2).double()


def test_surrogate_integrand_is_base_times_the_prediction_raised_by_the_margin(fitted):
    from hepflows.errors import ConfigError
    from hepflows.integrate.surrogate import MARGIN_SIGMA_CAP, SurrogateIntegrand

    model, _ = fitted
    x, _, _ = _toy(500, 11)
    _, base = _factorised(x)
    mean, sigma = model.predict(x[base > 0], samples=0)
    plain = SurrogateIntegrand(_factorised, model)(x)
    raised = SurrogateIntegrand(_factorised, model, margin=2.0)(x)
    assert bool((plain[base == 0] == 0).all()) and bool((raised[base == 0] == 0).all())
    assert torch.allclose(plain[base > 0], base[base > 0] * mean.exp(), rtol=1e-12)
    ratio = raised[base > 0] / plain[base > 0]
    assert torch.allclose(ratio, torch.exp(2 * sigma.clamp(max=MARGIN_SIGMA_CAP)), rtol=1e-12)
    with pytest.raises(ConfigError, match="margin >= 0"):
        SurrogateIntegrand(_factorised, model, margin=-1)


def test_choose_margin_raises_the_bound_where_the_model_is_unsure():
    """Residuals whose width the model knows (heteroscedastic, a few points far off): a
    margin in units of sigma lifts the correction stage's acceptance; the choice is the
    best of the tried margins."""
    from hepflows.integrate.surrogate import choose_margin

    x, y, _ = _toy(8000, 0)
    model = BayesianRegression(2, hidden=(32, 32), seed=1)
    fit_surrogate(model, x, y, epochs=60, batch_size=256, lr=3e-3, seed=2)
    xh, yh, _ = _toy(5000, 7)
    k, acc = choose_margin(model, xh, yh, torch.zeros(len(xh), dtype=torch.float64))
    assert k > 0 and acc[k] == max(acc.values()) and acc[k] > acc[0.0] + 0.02
    assert all(0 < a <= 1 for a in acc.values())
    with pytest.raises(InputError, match="too few"):
        choose_margin(model, xh[:100], yh[:100], torch.zeros(100))
    with pytest.raises(InputError, match="log weights"):
        choose_margin(model, xh, yh, torch.zeros(3))
