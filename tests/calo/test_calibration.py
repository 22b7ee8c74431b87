"""Energy calibration by flow likelihood: the scan finds a known maximum, a trained flow I
recovers the incident energy with calibrated uncertainties, and the regression baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hepflows.calo.calibration as cal
from hepflows.calo import CaloFlow, ToySimulator
from hepflows.calo.training import TrainingPlan, train
from hepflows.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def trained() -> tuple[CaloFlow, object]:
    sim = ToySimulator("calogan", energy_range_mev=(5e3, 5e4), seed=3, max_spots=300)
    showers = sim.simulate(4000)
    model = CaloFlow("calogan", student=False, moments=0, seed=0)
    plan = TrainingPlan(epochs={"flow1": 25, "teacher": 0, "student": 0}, batch_size=256)
    train(model, showers, plan, progress=False)
    return model, sim


def test_the_scan_returns_the_maximum_of_a_known_likelihood(monkeypatch, trained) -> None:
    """With log L = -(ln E - ln E0)^2 / (2 s^2), the MLE is E0 and the 68 % interval
    [E0 e^-s, E0 e^s], whatever the grid."""
    model, sim = trained
    showers = sim.simulate(50)
    e0 = torch.as_tensor(np.exp(np.linspace(math.log(6e3), math.log(4e4), 50)))
    s = 0.03

    def analytic(model, sub, energies, seed=0):  # one chunk: sub is all 50 showers
        n = len(sub)
        truth = e0[:n, None]
        e = torch.as_tensor(energies, dtype=torch.float64).expand(n, -1)
        return -((e.log() - truth.log()) ** 2) / (2 * s**2)

    monkeypatch.setattr(cal, "energy_log_likelihood", analytic)
    result = cal.calibrate(model, showers, grid=50, refine=41, chunk=50)
    np.testing.assert_allclose(result.energy, e0.numpy(), rtol=2e-4)
    np.testing.assert_allclose(result.low, e0.numpy() * math.exp(-s), rtol=2e-3)
    np.testing.assert_allclose(result.high, e0.numpy() * math.exp(s), rtol=2e-3)
    assert not result.at_edge.any()


def test_mle_recovers_the_energy_with_calibrated_errors(trained) -> None:
    model, sim = trained
    test = ToySimulator("calogan", energy_range_mev=(1e4, 4e4), seed=99, max_spots=300)
    showers = test.simulate(600)
    result = cal.calibrate(model, showers)
    response = result.energy / showers.energy
    assert abs(float(np.median(response)) - 1) < 0.02, np.median(response)
    pulls = (result.energy - showers.energy) / result.sigma
    width = float(np.subtract(*np.percentile(pulls, [84, 16])) / 2)
    assert 0.8 < width < 1.25, width
    rel = float(np.median(result.sigma / result.energy))
    assert 0.001 < rel < 0.2, rel
    # The estimate comes from the learned density of the deposited fraction u_0 = E_dep /
    # (s E): move that density by one standard deviation and the MLE moves with it.
    shifted = CaloFlow("calogan", student=False, moments=0, seed=1)
    shifted.load_state_dict(model.state_dict())
    shifted.y1_mean[0] += shifted.y1_std[0]
    moved = cal.calibrate(shifted, showers[:200])
    assert abs(float(np.median(moved.energy / showers.energy[:200])) - 1) > 0.02


def test_regression_baseline(trained) -> None:
    _, sim = trained
    showers = sim.simulate(3000)
    reg = cal.EnergyRegression(3, hidden=(64, 64)).fit(showers, epochs=40)
    test = ToySimulator("calogan", energy_range_mev=(1e4, 4e4), seed=98, max_spots=300)
    held = test.simulate(400)
    response = reg.predict(held) / held.energy
    assert abs(float(np.median(response)) - 1) < 0.05, np.median(response)


def test_a_flow_with_moments_warns(trained) -> None:
    _, sim = trained
    showers = sim.simulate(300)
    model = CaloFlow("calogan", student=False, moments=2, seed=0)
    train(model, showers, TrainingPlan(epochs={"flow1": 1, "teacher": 0, "student": 0},
                                       batch_size=128), progress=False)  # fmt: skip
    with pytest.warns(UserWarning, match="moments=0"):
        cal.calibrate(model, showers[:20], grid=10, refine=9)


def test_bad_input(trained) -> None:
    model, sim = trained
    showers = sim.simulate(5)
    with pytest.raises(ConfigError, match="grid"):
        cal.calibrate(model, showers, grid=2)
    with pytest.raises(ConfigError, match="0 < low < high"):
        cal.calibrate(model, showers, energy_range_mev=(10.0, 1.0))
    with pytest.raises(InputError, match="positive values in MeV"):
        cal.energy_log_likelihood(model, showers, torch.tensor([-1.0, 2.0]))
    with pytest.raises(ConfigError, match="not fitted"):
        cal.calibrate(CaloFlow("calogan", student=False, moments=0, seed=0), showers)
