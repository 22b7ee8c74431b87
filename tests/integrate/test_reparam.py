"""ReparamKLIntegrator: it learns a 2D mixture, counts both kinds of calls, refuses bad input."""

import math

import numpy as np
import pytest
import torch

from hepflows.errors import ConfigError
from hepflows.integrate import IntegrandError, ReparamKLIntegrator

CENTRES = torch.tensor([[0.3, 0.3], [0.7, 0.65]], dtype=torch.float64)
SIGMA = 0.08


def bumps(x):
    d2 = ((x[:, None, :] - CENTRES) ** 2).sum(2)
    return torch.exp(-0.5 * d2 / SIGMA**2).sum(1)


def exact() -> float:
    s = SIGMA * math.sqrt(2)
    one = [SIGMA * math.sqrt(math.pi / 2) * (math.erf((1 - c) / s) + math.erf(c / s))
           for c in CENTRES.flatten().tolist()]  # fmt: skip
    return one[0] * one[1] + one[2] * one[3]


def ess_fraction(integ, n=50_000):
    _, w = integ.sample(n)
    return (w.sum() ** 2 / (w**2).sum() / n).item()


def test_learns_the_mixture_and_counts_calls():
    integ = ReparamKLIntegrator(bumps, 2, seed=2)
    before = ess_fraction(integ)
    calls0 = integ.total_calls
    history = integ.train(calls=40_000, progress=False)
    assert integ.grad_calls == history.calls // 2 and history.calls <= 40_000
    assert integ.calls - calls0 - integ.grad_calls == 0  # one density per gradient in training
    after = ess_fraction(integ)
    # measured: 0.16 untrained; trained 0.83 / 0.62 / 0.82 for seeds 0 / 1 / 2 (reverse KL
    # is mode-seeking: one seed under-covers a bump)
    assert before < 0.25 and after > 0.6 and after > 3 * before
    r = integ.integrate(calls=50_000)
    assert abs(r.value - exact()) < 4 * r.error
    assert r.total_calls == integ.calls + integ.grad_calls


def test_bad_input():
    small = dict(seed=0, batch_size=16, hidden=(8, 8))
    with pytest.raises(ConfigError, match="iteration costs"):
        ReparamKLIntegrator(bumps, 2, **small).train(calls=20, progress=False)
    with pytest.raises(IntegrandError, match="autograd"):
        ReparamKLIntegrator(lambda x: torch.from_numpy(np.asarray(x).sum(1)), 2, **small).train(
            calls=200, progress=False
        )
    with pytest.raises(IntegrandError, match="shape"):
        ReparamKLIntegrator(lambda x: x, 2, **small).train(calls=200, progress=False)
