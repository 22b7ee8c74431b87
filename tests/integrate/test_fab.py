"""FABIntegrator: training gain, unbiased integrals, call accounting, checkpoints, errors."""

import math

import numpy as np
import pytest
import torch

from hepflows.errors import CheckpointError, ConfigError
from hepflows.integrate import FABIntegrator, IntegrandError, NeuralIntegrator, camel
from hepflows.integrate.trainers import normalised_ess

#: Two Gaussian bumps inside the unit square.
CENTRES = torch.tensor([[0.3, 0.3], [0.7, 0.65]], dtype=torch.float64)
HEIGHTS = torch.tensor([1.0, 0.6], dtype=torch.float64)
SIGMA = 0.06
BUDGET = 40_000


def bumps(x):
    d2 = ((x[:, None, :] - CENTRES) ** 2).sum(2)
    return (HEIGHTS * torch.exp(-0.5 * d2 / SIGMA**2)).sum(1)


def _bump_integral_1d(c):
    s = SIGMA * math.sqrt(2)
    return SIGMA * math.sqrt(math.pi / 2) * (math.erf((1 - c) / s) + math.erf(c / s))


EXACT = sum(
    h * _bump_integral_1d(cx) * _bump_integral_1d(cy)
    for (cx, cy), h in zip(CENTRES.tolist(), HEIGHTS.tolist(), strict=True)
)


def _target_mean():
    """E_p[x] by the midpoint rule on a 1000 x 1000 grid (error << 1e-6)."""
    t = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
    x = torch.cartesian_prod(t, t)
    w = bumps(x)
    return (w[:, None] * x).sum(0) / w.sum()


def untrained_ess():
    fab = FABIntegrator(bumps, 2, seed=1)
    r = fab.integrate(calls=50_000)
    return r.ess / r.calls


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("fab") / "fab.safetensors"
    fab = FABIntegrator(bumps, 2, seed=1)
    history = fab.train(calls=BUDGET, progress=False, checkpoint=path)
    return fab, history, path


def test_exact_value_by_quadrature():
    """The erf formula is what the midpoint rule gives."""
    t = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
    assert bumps(torch.cartesian_prod(t, t)).mean().item() == pytest.approx(EXACT, rel=1e-6)


def test_training_raises_the_ess(trained):
    fab, history, _ = trained
    before = untrained_ess()
    r = fab.integrate(calls=50_000)
    after = r.ess / r.calls
    # measured with seeds 0, 1, 2: 0.085 before, 0.98 after 40000 calls
    assert before < 0.2
    assert after > 0.9
    assert after > 5 * before
    # the training's own ESS of fresh flow draws rose as well (measured: 0.08 -> 0.98)
    assert history.ess_flow[0] < 0.2 and np.mean(history.ess_flow[-5:]) > 0.9
    assert all(0 <= e <= 1 for e in history.ess_flow + history.ess_ais)


def test_integral_agrees_with_the_exact_value(trained):
    fab, history, _ = trained
    r = fab.integrate(calls=50_000)
    assert abs(r.value - EXACT) < 4 * r.error, (r.value, EXACT, r.error)
    assert r.relative_error < 0.005
    # the batch estimates made during training (p / q at the fresh draws) are unbiased too
    last = np.array(history.integral[-10:])
    err = np.array(history.relative_error[-10:]) * last
    assert abs(last.mean() - EXACT) < 4 * math.sqrt((err**2).sum()) / len(last)


def test_call_accounting(trained):
    fab, history, _ = trained
    iterations = len(history.loss)
    batch = fab.plan["batch"]
    assert batch == 256  # the default for this budget
    per_chain = fab.calls_per_chain()
    assert per_chain == 2 * (1 + 1 * 1)  # intermediate = leapfrog = 1
    assert iterations == BUDGET // (batch * per_chain) == 39
    assert history.density_calls > 0 and history.grad_calls > 0
    assert history.grad_calls == history.density_calls  # every evaluation is value + gradient
    assert history.density_calls + history.grad_calls == iterations * batch * per_chain
    assert history.calls == history.density_calls + history.grad_calls <= BUDGET
    assert fab.grad_calls == history.grad_calls  # integrate() in other tests adds no gradients
    assert fab.total_calls == fab.calls + fab.grad_calls
    assert fab.calls >= history.density_calls  # integrate() in other tests adds density calls
    for name in ("ess_flow", "ess_ais", "accept", "step_size", "integral", "relative_error"):
        assert len(getattr(history, name)) == iterations, name
    assert all(len(a) == 1 and len(s) == 1 for a, s in zip(history.accept, history.step_size,
                                                          strict=True))  # fmt: skip
    # the step size follows the acceptance: s_i = s_{i-1} exp(0.1 (accept_i - 0.65))
    steps = [0.2] + [s[0] for s in history.step_size]
    for i, a in enumerate(history.accept):
        assert steps[i + 1] == pytest.approx(steps[i] * math.exp(0.1 * (a[0] - 0.65)))
    assert fab.step_sizes == history.step_size[-1]


def test_calls_per_chain_counts_the_integrand_evaluations():
    rows = []

    def counted(x):
        rows.append(len(x))
        return bumps(x)

    fab = FABIntegrator(counted, 2, seed=0, batch_size=32, intermediate=2, leapfrog=3,
                        replay_steps=2, hidden=(8, 8))  # fmt: skip
    assert fab.calls_per_chain() == 2 * (1 + 2 * 3)
    history = fab.train(calls=1000, progress=False)
    assert len(history.loss) == 1000 // (32 * 14) == 2
    # 1 + 2 x 3 evaluations of 32 chains per iteration
    assert rows == [32] * (2 * 7)
    assert history.density_calls == fab.calls == sum(rows) == 448
    assert history.grad_calls == fab.grad_calls == 448
    assert all(len(a) == 2 for a in history.accept)


def test_checkpoint_round_trip(trained):
    fab, history, path = trained
    loaded = FABIntegrator.load(path, bumps)
    x = torch.rand(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x.to(fab.flow.dtype)
    with torch.no_grad():
        assert torch.equal(loaded.flow.log_prob(x), fab.flow.log_prob(x))
    assert loaded.grad_calls == fab.grad_calls == history.grad_calls
    assert loaded.calls == history.density_calls  # counters as at the end of training
    assert loaded.step_sizes == history.step_size[-1]
    assert loaded.replay is not None
    assert torch.equal(loaded.replay.log_w, fab.replay.log_w)
    assert torch.equal(loaded.replay.x, fab.replay.x)
    assert (loaded.replay.size, loaded.replay.next) == (fab.replay.size, fab.replay.next)


def test_training_a_finished_checkpoint_again_starts_a_new_plan(tmp_path):
    kw = dict(seed=4, batch_size=64, hidden=(16, 16), replay_steps=4)
    budget = 64 * 4 * 3
    path = tmp_path / "done.safetensors"
    first = FABIntegrator(bumps, 2, **kw).train(calls=budget, progress=False, checkpoint=path)
    again = FABIntegrator.load(path, bumps)
    assert (again.calls, again.grad_calls) == (first.density_calls, first.grad_calls)
    h2 = again.train(calls=budget, progress=False, checkpoint=path)
    assert len(h2.loss) == len(first.loss) == 3
    assert again.calls == again.grad_calls == 2 * first.density_calls
    assert FABIntegrator.load(path, bumps).grad_calls == 2 * first.grad_calls


def test_an_interrupted_training_resumes_where_it_stopped(tmp_path):
    kw = dict(seed=3, batch_size=64, hidden=(16, 16), replay_steps=4)
    budget = 64 * 4 * 6  # 6 iterations of 2 evaluations each
    full = FABIntegrator(bumps, 2, **kw)
    full.train(calls=budget, progress=False)
    ckpt = tmp_path / "run.safetensors"
    killed = FABIntegrator(bumps, 2, **kw)
    seen = []

    def dying(x):
        seen.append(len(x))
        if len(seen) > 9:  # during iteration 5, after the checkpoint of iteration 4
            raise KeyboardInterrupt
        return bumps(x)

    killed.f = dying
    with pytest.raises(KeyboardInterrupt):
        killed.train(calls=budget, progress=False, checkpoint=ckpt, checkpoint_every=2)
    resumed = FABIntegrator(bumps, 2, **kw)
    h = resumed.train(calls=budget, progress=False, checkpoint=ckpt)
    assert len(h.loss) == 2  # only the iterations after the checkpoint ran
    assert (resumed.calls, resumed.grad_calls) == (full.calls, full.grad_calls)
    x = torch.rand(100, 2, generator=torch.Generator().manual_seed(1)).to(full.flow.dtype)
    with torch.no_grad():
        torch.testing.assert_close(resumed.flow.log_prob(x), full.flow.log_prob(x))
    assert resumed.step_sizes == full.step_sizes


def test_a_neural_integrator_checkpoint_is_refused(tmp_path):
    path = tmp_path / "nis.safetensors"
    NeuralIntegrator(camel(2), 2, seed=0, hidden=(8, 8)).save(path)
    with pytest.raises(CheckpointError, match="NeuralIntegrator.load"):
        FABIntegrator.load(path, camel(2))
    with pytest.raises(CheckpointError):
        FABIntegrator.load(tmp_path / "missing.safetensors", camel(2))


def test_bad_integrands():
    small = dict(seed=0, batch_size=16, hidden=(8, 8), replay_steps=1)
    with pytest.raises(IntegrandError, match="negative"):
        FABIntegrator(lambda x: x[:, 0] - 0.5, 2, **small).train(calls=200, progress=False)
    with pytest.raises(IntegrandError, match="torch tensor"):
        FABIntegrator(lambda x: x.detach().numpy().sum(1), 2, **small).train(200, progress=False)
    with pytest.raises(IntegrandError, match="autograd"):  # numpy() on a tensor with grad
        FABIntegrator(lambda x: torch.from_numpy(np.asarray(x).sum(1)), 2, **small).train(
            calls=200, progress=False
        )
    with pytest.raises(IntegrandError, match="shape"):
        FABIntegrator(lambda x: x, 2, **small).train(calls=200, progress=False)
    with pytest.raises(IntegrandError, match="NaN or inf"):
        nan_outside = lambda x: torch.where(x[:, 0] < 0.5, math.nan, 1.0 + x[:, 0])  # noqa: E731
        FABIntegrator(nan_outside, 2, **small).train(calls=200, progress=False)


def test_invalid_options():
    for bad in (dict(intermediate=0), dict(leapfrog=0), dict(intermediate=1.5),
                dict(intermediate=True), dict(replay_steps=0), dict(buffer_batches=0),
                dict(step_size=-1), dict(step_size=0), dict(step_size=math.nan),
                dict(step_size=math.inf), dict(target_accept=1.5), dict(target_accept=0),
                dict(w_adjust_clip=0)):  # fmt: skip
        with pytest.raises(ConfigError):
            FABIntegrator(bumps, 2, **bad)
    fab = FABIntegrator(bumps, 2, seed=0)
    # the default batch of 256 chains costs 256 x 4 calls per iteration
    with pytest.raises(ConfigError, match="a FAB iteration costs 1,024 calls"):
        fab.train(calls=1000, progress=False)
    with pytest.raises(ConfigError, match="calls must be"):
        fab.train(calls=0, progress=False)
    assert fab.calls == fab.grad_calls == 0  # nothing was evaluated


def test_normalised_ess():
    assert normalised_ess(torch.zeros(7)) == pytest.approx(1.0)
    lw = torch.log(torch.tensor([1.0, 3.0, 0.0, 0.0], dtype=torch.float64))
    assert normalised_ess(lw) == pytest.approx(16 / (4 * 10))
    # NaN and +inf count as w = 0, like -inf; no finite weight at all gives 0
    lw = torch.tensor([0.0, math.nan, math.inf, -math.inf], dtype=torch.float64)
    assert normalised_ess(lw) == pytest.approx(0.25)
    assert normalised_ess(torch.full((3,), -math.inf, dtype=torch.float64)) == 0.0
    assert normalised_ess(torch.full((3,), math.nan, dtype=torch.float64)) == 0.0


def test_generated_events_follow_the_target(trained):
    fab, _, _ = trained
    n = 5000
    ev = fab.generate(n, progress=False)
    assert len(ev) == n and ev.x.shape == (n, 2)
    assert ((ev.x > 0) & (ev.x < 1)).all()
    assert abs(ev.sigma - EXACT) < 4 * ev.sigma_error
    w = ev.weights
    mean = (w[:, None] * ev.x).sum(0) / w.sum()
    n_eff = w.sum() ** 2 / (w * w).sum()
    se = torch.sqrt((w[:, None] * (ev.x - mean) ** 2).sum(0) / w.sum() / n_eff)
    assert torch.all((mean - _target_mean()).abs() < 5 * se), (mean, _target_mean(), se)
    # the events do populate both bumps in proportion (heights 1 : 0.6, equal widths)
    near_first = ((ev.x - CENTRES[0]).norm(dim=1) < 0.2).to(torch.float64)
    share = (w * near_first).sum() / w.sum()
    assert share.item() == pytest.approx(1 / 1.6, abs=0.03)
