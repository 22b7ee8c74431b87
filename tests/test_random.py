"""Randomness without side effects: objects own their generators, the caller's RNG is untouched,
and the same seed gives bitwise the same result on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hepflows.calo import CaloFlow, ToySimulator
from hepflows.flows import CouplingFlow
from hepflows.flows.training import fit
from hepflows.integrate import FABIntegrator, NeuralIntegrator, camel
from hepflows.random import seeded
from hepflows.toys import sampler


def _global_state() -> tuple[torch.Tensor, tuple]:
    return torch.get_rng_state().clone(), np.random.get_state()


def _assert_untouched(before) -> None:
    t, n = before
    assert torch.equal(torch.get_rng_state(), t), "the global torch RNG changed"
    after = np.random.get_state()
    assert after[0] == n[0] and np.array_equal(after[1], n[1]) and after[2:] == n[2:], (
        "the global numpy RNG changed"
    )


def _integrator_run(seed, **kw):
    integ = NeuralIntegrator(camel(2), 2, seed=seed, hidden=(8, 8), batch_size=256,
                             buffered_steps=1, **kw)  # fmt: skip
    integ.train(calls=2_000, progress=False)
    result = integ.integrate(calls=2_000)
    events = integ.generate(50, calls=2_000, progress=False)
    return integ, result, events


@pytest.mark.parametrize("vegas", [False, True])
def test_integrator_leaves_the_global_rng_alone_and_repeats_bitwise(vegas):
    torch.manual_seed(123)
    np.random.seed(7)
    before = _global_state()
    _, r1, e1 = _integrator_run(5, vegas=vegas)
    _assert_untouched(before)
    _, r2, e2 = _integrator_run(5, vegas=vegas)
    assert (r1.value, r1.error) == (r2.value, r2.error)
    assert torch.equal(e1.x, e2.x) and e1.sigma == e2.sigma
    _, r3, _ = _integrator_run(6, vegas=vegas)
    assert r3.value != r1.value  # the seed matters


def test_unseeded_integrators_differ_and_leave_the_global_rng_alone():
    before = _global_state()
    a = NeuralIntegrator(camel(2), 2, hidden=(8, 8))
    b = NeuralIntegrator(camel(2), 2, hidden=(8, 8))
    _assert_untouched(before)
    pa = next(a.flow.parameters())
    pb = next(b.flow.parameters())
    assert not torch.equal(pa, pb)


def test_fab_leaves_the_global_rng_alone_and_repeats_bitwise():
    def bump(x):
        return torch.exp(-((x - 0.4) ** 2).sum(1) / 0.05)

    before = _global_state()
    runs = []
    for _ in range(2):
        fab = FABIntegrator(bump, 2, seed=2, batch_size=32, replay_steps=2, hidden=(8, 8))
        fab.train(calls=600, progress=False)
        runs.append(fab.integrate(calls=1_000).value)
    _assert_untouched(before)
    assert runs[0] == runs[1]


def test_flow_fit_repeats_bitwise_from_the_same_seed():
    draw = sampler("two-moons")
    before = _global_state()
    losses, weights = [], []
    for _ in range(2):
        with seeded(3):
            flow = CouplingFlow(2, transforms=2, hidden=(16,))
        losses.append(fit(flow, draw, steps=20, batch_size=64, seed=4))
        weights.append(torch.cat([p.detach().flatten() for p in flow.parameters()]))
    _assert_untouched(before)
    assert losses[0] == losses[1] and torch.equal(weights[0], weights[1])


def test_simulator_and_caloflow_are_seeded_objects():
    before = _global_state()
    a = ToySimulator("calogan", seed=3, max_spots=200).simulate(20)
    b = ToySimulator("calogan", seed=3, max_spots=200).simulate(20)
    m1, m2 = CaloFlow("calogan", seed=1), CaloFlow("calogan", seed=1)
    _assert_untouched(before)
    assert np.array_equal(a.voxels, b.voxels) and np.array_equal(a.energy, b.energy)
    for (k, v), w in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_generation_repeats_bitwise_and_leaves_the_global_rng_alone(tmp_path):
    from hepflows.generate import generate_decay
    from hepflows.physics.decays import pi1800

    before = _global_state()
    runs = [
        generate_decay(pi1800(), 200, out=tmp_path / f"{k}.lhe", method="variance",
                       train_calls=3_000, calls=3_000, seed=9, progress=False)  # fmt: skip
        for k in range(2)
    ]
    _assert_untouched(before)
    assert runs[0].result.value == runs[1].result.value
    assert torch.equal(runs[0].events.x, runs[1].events.x)
    strip = [p.read_text() for p in (tmp_path / "0.lhe", tmp_path / "1.lhe")]
    assert strip[0] == strip[1]
