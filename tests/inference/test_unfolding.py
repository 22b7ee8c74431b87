"""End-to-end unfolding on a 1-D Gaussian toy (y_ll as the observable): train, unfold, save, write.

Truth y ~ N(mean, sd), reco = y + N(0, RES^2), detected with eps(y) = sigmoid(2y + 1).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from hepflows.errors import CheckpointError, ConfigError, InputError
from hepflows.inference import calibration_deviation, histogram_chi2, pit
from hepflows.inference.pairs import Pairs
from hepflows.inference.unfolding import (
    UnfoldingModel,
    binning,
    train,
    unfold,
    write_unfolded,
)

RES = 0.4
NAMES = ("y_ll",)
SMALL = {"transforms": 3, "bins": 8, "hidden": (32, 32), "batch_size": 512}


def toy(n: int, mean: float, sd: float, seed: int) -> Pairs:
    g = torch.Generator().manual_seed(seed)
    y = mean + sd * torch.randn(n, 1, generator=g, dtype=torch.float64)
    reco = y + RES * torch.randn(n, 1, generator=g, dtype=torch.float64)
    passed = torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(2 * y[:, 0] + 1)
    return Pairs(y, reco, passed, torch.ones(n, dtype=torch.float64), NAMES, {"toy": seed})


@pytest.fixture(scope="module")
def simulation() -> Pairs:
    return toy(50_000, 0.0, 1.0, 0)


@pytest.fixture(scope="module")
def cinn(simulation: Pairs) -> UnfoldingModel:
    return train(simulation, "cinn", ensemble=2, steps=1500, efficiency_epochs=30, **SMALL)


def test_cinn_unfolds_data_of_its_own_prior(cinn: UnfoldingModel) -> None:
    data = toy(10_000, 0.0, 1.0, 1)
    measured = data.reco[data.passed]
    out = unfold(cinn, measured, NAMES, samples=60, seed=2)
    assert len(out.points) == 2 and out.points[0].shape == (60, len(measured), 1)
    # all events, detected or not
    assert out.total() == pytest.approx(len(data), rel=0.03)
    edges = binning(data.truth, NAMES, bins=12)["y_ll"]
    counts, cov = out.histogram("y_ll", edges)
    truth, _ = np.histogram(data.truth[:, 0].numpy(), edges)
    chi2, ndf = histogram_chi2(counts, truth, cov)
    assert chi2 / ndf < 2.0
    assert cov.shape == (12, 12) and (np.diag(cov) > counts * 0.5).all()  # at least Poisson-ish
    q = pit(out.points[0], data.truth[data.passed])
    assert calibration_deviation(q).item() < 0.05
    events = out.events(generator=torch.Generator().manual_seed(0))
    assert events.shape == (round(out.total()), 1)


def test_save_load_round_trip_and_refusals(cinn: UnfoldingModel, tmp_path) -> None:
    path = tmp_path / "cinn.safetensors"
    cinn.save(path)
    again = UnfoldingModel.load(path)
    assert again.method == "cinn" and again.names == NAMES
    measured = toy(200, 0.0, 1.0, 3).reco
    a = unfold(cinn, measured, NAMES, samples=5, seed=4)
    b = unfold(again, measured, NAMES, samples=5, seed=4)
    torch.testing.assert_close(a.points[1], b.points[1])
    torch.testing.assert_close(a.weights[1], b.weights[1])
    with pytest.raises(InputError, match="trained on observables"):
        unfold(again, torch.zeros(5, 2, dtype=torch.float64), ("m_ll", "y_ll"))
    with pytest.raises(InputError, match="NaN"):
        unfold(again, torch.full((5, 1), float("nan"), dtype=torch.float64), NAMES)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a readable"):
        UnfoldingModel.load(bad)


def test_written_events_and_histograms(cinn: UnfoldingModel, tmp_path) -> None:
    data = toy(2000, 0.0, 1.0, 5)
    out = unfold(cinn, data.reco[data.passed], NAMES, samples=10)
    edges = {"y_ll": np.linspace(-3, 3, 7)}
    write_unfolded(tmp_path / "u.h5", out, edges)
    with h5py.File(tmp_path / "u.h5") as f:
        assert f["events"].shape == (round(out.total()), 1)
        counts = np.asarray(f["histograms/y_ll/counts"])
        assert counts.shape == (6,) and f["histograms/y_ll/covariance"].shape == (6, 6)
        assert f.attrs["method"] == "cinn"
    np.testing.assert_allclose(counts, out.histogram("y_ll", edges["y_ll"])[0])


def chi_inputs(out, edges: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, ...]:
    counts, cov = out.histogram("y_ll", edges)
    return counts, truth, cov


def test_spinup_is_closer_than_the_cinn_on_data_the_prior_lacks(simulation: Pairs) -> None:
    model = train(simulation, "spinup", steps=1500, efficiency_epochs=30, **SMALL)
    assert model.forward is not None and len(model.posteriors) == 1
    data = toy(15_000, 0.7, 0.6, 6)
    measured = data.reco[data.passed]
    edges = np.array([-np.inf, -0.5, 0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 2.0, np.inf])
    truth, _ = np.histogram(data.truth[:, 0].numpy(), edges)
    options = {
        "iterations": 6,
        "steps": 250,
        **{k: SMALL[k] for k in ("transforms", "bins", "hidden")},
    }
    spin = unfold(model, measured, NAMES, samples=32, ensemble=2, spinup=options)
    cinn = UnfoldingModel("cinn", NAMES, model.efficiency, model.posteriors)
    prior_biased = unfold(cinn, measured, NAMES, samples=32)
    chi_spin = histogram_chi2(*chi_inputs(spin, edges, truth))
    chi_cinn = histogram_chi2(*chi_inputs(prior_biased, edges, truth))
    assert chi_spin[0] / chi_spin[1] < 3.0
    assert chi_cinn[0] > 3 * chi_spin[0]
    assert len(spin.info["spinup"]) == 2


def test_bad_training_input(simulation: Pairs) -> None:
    with pytest.raises(ConfigError, match="method must be"):
        train(simulation, "omnifold")
    weighted = Pairs(simulation.truth[:100], simulation.reco[:100], simulation.passed[:100],
                     torch.full((100,), -1.0, dtype=torch.float64), NAMES)  # fmt: skip
    with pytest.raises(InputError, match="positive event weights"):
        train(weighted)
