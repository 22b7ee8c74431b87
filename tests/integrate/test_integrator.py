"""NeuralIntegrator: unbiased integrals, honest errors, events, checkpoints, errors."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from hepflows import CheckpointError, ConfigError
from hepflows.integrate import IntegrandError, NeuralIntegrator, camel, gaussian, polynomial, signed
from hepflows.integrate.losses import get_loss


@pytest.fixture(scope="module")
def trained_camel():
    f = camel(4)
    integ = NeuralIntegrator(f, 4, seed=1, hidden=(32, 32), vegas=False)
    history = integ.train(calls=40_000, progress=False)
    return f, integ, history


def test_training_reduces_the_variance(trained_camel):
    f, integ, history = trained_camel
    assert history.calls == integ.calls >= 39_000
    first, last = history.relative_error[0], np.median(history.relative_error[-5:])
    assert last < first / 3  # camel: a uniform q is a poor proposal
    r = integ.integrate(calls=50_000)
    plain = camel(4)(
        torch.rand(50_000, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    )  # noqa: E501
    plain_rel = plain.std().item() / plain.mean().item() / math.sqrt(50_000)
    assert r.relative_error < plain_rel / 3
    assert abs(r.value - f.exact) < 4 * r.error
    assert r.calls == 50_000 and r.total_calls == integ.calls
    assert 0 < r.unweighting_efficiency <= r.unweighting_efficiency_quantile <= 1
    assert 0 < r.ess <= r.calls
    assert "pull" in r.summary()


def test_pulls_are_honest(trained_camel):
    """30 independent estimates: pulls have |mean| <= 0.5 and std in [0.7, 1.4]."""
    f, integ, _ = trained_camel
    pulls = np.array([integ.integrate(calls=5_000).pull for _ in range(30)])
    assert abs(pulls.mean()) <= 0.5, pulls
    assert 0.7 <= pulls.std(ddof=1) <= 1.4, pulls


@pytest.mark.parametrize(
    "make, loss",
    [(gaussian, "kl"), (polynomial, "variance"), (camel, "rkl"), (camel, "moment3")],
)
def test_known_integrals_within_4_sigma(make, loss):
    f = make(3)
    integ = NeuralIntegrator(f, 3, seed=2, loss=loss, hidden=(32, 32))
    integ.train(calls=15_000, progress=False)
    r = integ.integrate(calls=40_000)
    assert abs(r.value - f.exact) < 4 * r.error, r.summary()


def test_signed_integrand():
    f = signed(2)
    integ = NeuralIntegrator(f, 2, seed=0, hidden=(32, 32))
    integ.train(calls=10_000, progress=False)
    r = integ.integrate(calls=100_000)
    assert abs(r.value - f.exact) < 4 * r.error
    ev = integ.generate(2000, progress=False)
    assert (ev.weights < 0).any() and (ev.weights > 0).any()


def test_vegas_warm_start_counts_its_calls():
    f = camel(2)
    integ = NeuralIntegrator(f, 2, seed=0, vegas=True, hidden=(32, 32))
    h = integ.train(calls=20_000, progress=False)
    assert integ.maps[0] is not None
    assert 18_000 <= h.calls <= 21_000
    r = integ.integrate(calls=50_000)
    assert abs(r.value - f.exact) < 4 * r.error
    assert r.sigma_sqrt_n < 0.3


def _camel_marginal_cdf(x, s):
    n = stats.norm
    return n.cdf(x, 1 / 3, s) + n.cdf(x, 2 / 3, s)


def test_unweighted_events_follow_the_integrand(trained_camel):
    f, integ, _ = trained_camel
    ev = integ.generate(20_000, rule="quantile", quantile=0.999, progress=False)
    assert len(ev) == 20_000 and ev.x.shape == (20_000, 4)
    assert 0 < ev.efficiency <= 1 and ev.calls > 20_000
    assert abs(ev.sigma - f.exact) < 4 * ev.sigma_error
    s = 0.2 / math.sqrt(2)
    edges = np.linspace(0, 1, 21)
    cdf = _camel_marginal_cdf(edges, s)
    probs = np.diff(cdf) / (cdf[-1] - cdf[0])
    for dim in range(4):
        counts = np.histogram(ev.x[:, dim].numpy(), bins=edges, weights=ev.weights.numpy())[0]
        expected = probs * counts.sum()
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert stats.chi2.sf(chi2, len(probs) - 1) > 1e-3, (dim, chi2)


def test_checkpoint_round_trip_and_resume(tmp_path):
    f = camel(2)
    path = tmp_path / "integ.safetensors"
    a = NeuralIntegrator(f, 2, seed=5, hidden=(16, 16), batch_size=1000)
    a.train(calls=6_000, progress=False, checkpoint=path, checkpoint_every=2)
    b = NeuralIntegrator.load(path, f)
    x = torch.rand(100, 2)
    assert torch.equal(a.flow.log_prob(x), b.flow.log_prob(x))
    assert b.calls == a.calls

    # A run killed after 4 of 6 iterations resumes where it stopped and ends like an
    # uninterrupted one.
    full = NeuralIntegrator(f, 2, seed=7, hidden=(16, 16), batch_size=1000)
    full.train(calls=6_000, progress=False)
    killed = NeuralIntegrator(f, 2, seed=7, hidden=(16, 16), batch_size=1000)
    ckpt = tmp_path / "run.safetensors"

    calls_seen = []

    def dying(x):
        calls_seen.append(len(x))
        if len(calls_seen) > 4:
            raise KeyboardInterrupt
        return f(x)

    killed.f = dying
    with pytest.raises(KeyboardInterrupt):
        killed.train(calls=6_000, progress=False, checkpoint=ckpt, checkpoint_every=2)
    resumed = NeuralIntegrator(f, 2, seed=7, hidden=(16, 16), batch_size=1000)
    resumed.train(calls=6_000, progress=False, checkpoint=ckpt)
    assert resumed.calls == full.calls
    torch.testing.assert_close(resumed.flow.log_prob(x), full.flow.log_prob(x))


def test_checkpoint_of_other_configuration(tmp_path):
    f = camel(2)
    path = tmp_path / "c.safetensors"
    NeuralIntegrator(f, 2, seed=1, hidden=(16, 16)).save(path)
    other = NeuralIntegrator(f, 2, seed=1, hidden=(8, 8))
    with pytest.raises(CheckpointError, match="another configuration"):
        other.train(calls=1000, progress=False, checkpoint=path)
    with pytest.raises(CheckpointError, match="no saved integrator"):
        NeuralIntegrator.load(tmp_path / "missing", f)


def test_bad_integrands_and_options():
    with pytest.raises(IntegrandError, match="NaN or inf"):
        NeuralIntegrator(lambda x: torch.log(x[:, 0] - 0.5), 2, seed=0).train(2000, progress=False)
    integ = NeuralIntegrator(
        lambda x: torch.log(x[:, 0] - 0.5).clamp_min(-5), 2, seed=0, drop_nonfinite=True
    )  # noqa: E128
    integ.train(calls=2000, progress=False)
    with pytest.raises(ConfigError, match="unknown loss"):
        NeuralIntegrator(camel(2), 2, loss="chi")
    with pytest.raises(ConfigError, match="dims must be"):
        NeuralIntegrator(camel(2), 0)
    with pytest.raises(ConfigError, match="callable"):
        NeuralIntegrator(3.0, 2)


@pytest.mark.parametrize("name", ["variance", "moment3", "moment32", "kl"])
def test_losses_are_minimised_by_q_proportional_to_f(name):
    """f = e^{-3x} on [0, 1]; q_t = t e^{-tx} / (1 - e^{-t}); each loss, estimated from
    uniform points (log q_s = 0), is smallest at t = 3."""
    x = (torch.arange(20_000, dtype=torch.float64) + 0.5) / 20_000
    f = torch.exp(-3 * x)
    zeros = torch.zeros_like(x)
    loss_fn = get_loss(name)

    def loss(t: float) -> float:
        log_q = math.log(t / (1 - math.exp(-t))) - t * x
        return loss_fn(f, zeros, log_q).item()

    ts = np.linspace(1.0, 5.0, 81)
    assert ts[np.argmin([loss(t) for t in ts])] == pytest.approx(3.0, abs=0.05)


def test_moment_loss_is_the_log_of_the_moment_and_does_not_overflow():
    from hepflows.integrate.losses import moment

    gen = torch.Generator().manual_seed(0)
    f = torch.rand(1000, dtype=torch.float64, generator=gen) + 0.1
    log_qs = torch.randn(1000, dtype=torch.float64, generator=gen) * 0.1
    log_q = (log_qs + 0.05 * torch.randn(1000, dtype=torch.float64, generator=gen))
    log_q.requires_grad_(True)
    for p in (2, 3, 8):
        w = f / log_qs.exp()
        direct = ((w / w.mean()) ** p * torch.exp((p - 1) * (log_qs - log_q))).mean()
        got = moment(p)(f, log_qs, log_q)
        torch.testing.assert_close(got, torch.log(direct) / p)
    # a stored point the flow now gives 1e-30 of its old density: (q_s/q)^47 ~ 1e1410
    far = log_q.detach().clone()
    far[0] -= 69.0
    value = moment(48)(f, log_qs, far.requires_grad_(True))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(far.grad).all()
    for bad in ("moment1", "moment", "momentx"):
        with pytest.raises(ConfigError, match="unknown loss"):
            get_loss(bad)
