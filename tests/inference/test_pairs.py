"""Unfolding pairs: detection of generated events, the HDF5 round trip, refusals."""

from __future__ import annotations

import h5py
import pytest
import torch

from dilepton import pair
from hepflows.errors import InputError
from hepflows.generate import generate_pairs
from hepflows.inference import ToyDetector
from hepflows.inference.pairs import Pairs, detect, read_pairs, write_pairs


@pytest.fixture(scope="module")
def generated() -> Pairs:
    return generate_pairs(800, zprime=True, seed=3, train_calls=6000)


def test_generated_pairs_follow_the_setup(generated: Pairs) -> None:
    p = generated
    assert len(p) == 800 and p.observables == ("m_ll", "y_ll", "cos_cs")
    assert (p.truth[:, 0] >= 150).all() and (p.truth[:, 2].abs() <= 1).all()
    assert p.setup["process"] == {"sqrt_s_hat_min": 150.0, "zprime_coupling": 0.2, "zprime": True}
    assert p.setup["sigma_pb"] > 0 and p.setup["detector_seed"] == 4
    assert p.setup["fiducial"] and 0.3 < p.setup["fiducial_fraction"] < 0.8
    # the detector's efficiency is below one and the reco masses sit close to the truth
    assert 0.6 < p.efficiency < 0.95  # inside the acceptance: the pT turn-on and plateau
    rel = (p.reco[p.passed, 0] / p.truth[p.passed, 0] - 1).abs()
    assert rel.median() < 0.02


def test_detect_is_aligned_and_seeded() -> None:
    lep, anti, m, c, y = pair(2000, seed=4)
    a = detect(lep, anti, ToyDetector(seed=9), fiducial=False)
    b = detect(lep, anti, ToyDetector(seed=9), fiducial=False)
    assert torch.equal(a.reco, b.reco) and torch.equal(a.passed, b.passed)
    torch.testing.assert_close(a.truth[:, 0], m)
    sub = a[a.passed]
    assert len(sub) == int(a.passed.sum()) and sub.passed.all()
    assert a.efficiency == pytest.approx(a.passed.double().mean().item())


def test_fiducial_pairs_hold_only_events_the_detector_can_see() -> None:
    lep, anti, m, c, y = pair(4000, seed=5)
    det = ToyDetector(seed=9)
    inside = det.acceptance(lep, anti)
    assert 0 < int(inside.sum()) < len(inside)
    fid = detect(lep, anti, det, fiducial=True)
    assert len(fid) == int(inside.sum()) and fid.setup["fiducial"]
    assert fid.setup["fiducial_fraction"] == pytest.approx(inside.double().mean().item())
    torch.testing.assert_close(fid.truth[:, 0], m[inside])
    every = detect(lep, anti, ToyDetector(seed=9), fiducial=False)
    assert not every.passed[~inside].any()  # outside the acceptance nothing is detected
    assert fid.efficiency > every.efficiency


def test_hdf5_round_trip_and_refusals(generated: Pairs, tmp_path) -> None:
    path = tmp_path / "pairs.h5"
    write_pairs(path, generated)
    back = read_pairs(path, ("m_ll", "y_ll", "cos_cs"))
    for name in ("truth", "reco", "passed", "weights"):
        assert torch.equal(getattr(back, name), getattr(generated, name))
    assert back.setup == generated.setup and not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(InputError, match="holds observables"):
        read_pairs(path, ("m_ll", "y_ll"))
    with pytest.raises(InputError, match="no pairs file"):
        read_pairs(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=[1.0])
    with pytest.raises(InputError, match="not an unfolding pairs file"):
        read_pairs(tmp_path / "other.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        read_pairs(tmp_path / "text.h5")


def test_pairs_refuse_bad_shapes_and_values() -> None:
    t = torch.zeros(5, 3, dtype=torch.float64)
    ok = dict(passed=torch.ones(5, dtype=torch.bool), weights=torch.ones(5, dtype=torch.float64),
              observables=("m_ll", "y_ll", "cos_cs"))  # fmt: skip
    with pytest.raises(InputError, match=r"\(n, 3\)"):
        Pairs(t, t[:, :2], **ok)
    bad = t.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        Pairs(bad, t, **ok)
    with pytest.raises(InputError, match="passed and weights"):
        Pairs(t, t, **{**ok, "weights": torch.ones(4, dtype=torch.float64)})
