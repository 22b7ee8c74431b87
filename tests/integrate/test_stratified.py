"""Stratified sampling of the latent cube: layout, unbiased estimate, honest error."""

import math

import numpy as np
import torch

from hepflows.integrate import NeuralIntegrator, camel
from hepflows.integrate.stratified import (
    hypercube_assignment,
    points_in_cubes,
    strata_per_axis,
    stratified_estimate,
)


def test_strata_per_axis():
    assert strata_per_axis(100_000, 2) == 223  # 2 * 223^2 = 99458 <= 1e5 < 2 * 224^2
    assert strata_per_axis(100_000, 16) == 1
    assert strata_per_axis(3, 1) == 1
    for n, d in [(1000, 3), (10**6, 8), (77, 2)]:
        m = strata_per_axis(n, d)
        assert 2 * m**d <= n < 2 * (m + 1) ** d or m == 1


def test_every_hypercube_gets_two_or_three_points_and_points_stay_inside():
    gen = torch.Generator().manual_seed(0)
    cube, m = hypercube_assignment(1000, 3, gen)
    assert m == 7  # 2 * 7^3 = 686 <= 1000 < 2 * 8^3
    counts = torch.bincount(cube, minlength=m**3)
    assert counts.min() >= 2 and counts.sum() == 1000 and counts.max() - counts.min() <= 1
    x = points_in_cubes(cube, m, 3, gen)
    digits = torch.floor(x * m).to(torch.int64)
    assert torch.equal(digits[:, 0] + m * digits[:, 1] + m * m * digits[:, 2], cube)


def test_stratified_estimate_is_unbiased_with_honest_error():
    """Uniform stratified sampling of x^2 + y: 200 repeats, pulls ~ N(0, 1)."""
    gen = torch.Generator().manual_seed(1)
    pulls, errors = [], []
    for _ in range(200):
        cube, m = hypercube_assignment(500, 2, gen)
        x = points_in_cubes(cube, m, 2, gen)
        value, var, w = stratified_estimate(x[:, 0] ** 2 + x[:, 1], cube)
        assert math.isclose(w.mean().item(), value, rel_tol=1e-12)
        pulls.append((value - (1 / 3 + 1 / 2)) / math.sqrt(var))
        errors.append(math.sqrt(var))
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.25 and 0.8 < pulls.std() < 1.2
    plain = math.sqrt((4 / 45 + 1 / 12) / 500)  # plain MC error of the same estimate
    assert np.median(errors) < plain / 10


def test_one_hypercube_is_plain_sampling():
    w = torch.rand(1000, dtype=torch.float64)
    value, var, weights = stratified_estimate(w, torch.zeros(1000, dtype=torch.int64))
    assert math.isclose(value, w.mean().item())
    assert math.isclose(var, w.var().item() / 1000)
    assert torch.allclose(weights, w)


def test_stratified_integration_beats_plain_sampling_with_the_same_flow():
    f = camel(2)
    integ = NeuralIntegrator(f, 2, seed=0, hidden=(16, 16))
    integ.train(calls=20_000, progress=False)
    strat = [integ.integrate(20_000) for _ in range(5)]
    plain = [integ.integrate(20_000, stratified=False) for _ in range(5)]
    for r in strat + plain:
        assert abs(r.value - f.exact) < 4 * r.error
    assert np.median([r.error for r in strat]) < np.median([r.error for r in plain]) / 1.5
