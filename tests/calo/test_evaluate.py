"""CaloChallenge-style evaluation: features, separation power, FPD/KPD, classifier test.

Showers are Gaussian blobs made with numpy in the CaloGAN geometry: two
independent samples of one generator must look alike (AUC ~ 0.5, JSD ~ 0,
FPD/KPD ~ 0), and a generator with blobs twice as wide must not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import linalg

from calo_blobs import CENTRES, FAST, GEOMETRY, V, samples
from hepflows.calo import (
    Geometry,
    Showers,
    evaluate,
    feature_matrix,
    feature_names,
    fpd,
    high_level_features,
    kpd,
    plot_features,
    separation_power,
)
from hepflows.errors import ConfigError, InputError, ShapeError


def single(voxel_values: dict[int, float], energy: float = 1e4) -> Showers:
    """One shower with the given global voxel indices lit."""
    v = np.zeros((1, V))
    for i, e in voxel_values.items():
        v[0, i] = e
    return Showers(np.array([energy]), v, GEOMETRY)


# ------------------------------------------------------------------ features
def test_one_lit_voxel_gives_its_centre_and_zero_width() -> None:
    s1 = GEOMETRY.slices[1]
    index = s1.start + 5 * 12 + 7  # layer 1, row 5, column 7
    f = high_level_features(single({index: 300.0}))
    assert f["E_1"][0] == 300.0 and f["E_0"][0] == 0.0 and f["E_2"][0] == 0.0
    assert f["EC_x_1"][0] == pytest.approx(CENTRES[index, 0])
    assert f["EC_y_1"][0] == pytest.approx(CENTRES[index, 1])
    assert CENTRES[index].tolist() == [60.0, -20.0]  # 40 mm cells from -240 mm
    assert f["width_x_1"][0] == 0.0 and f["width_y_1"][0] == 0.0
    # empty layers: zeros, not NaN
    for k in ("EC_x_0", "EC_y_0", "width_x_0", "width_y_0", "sparsity_0"):
        assert f[k][0] == 0.0
    assert f["E_dep"][0] == 300.0 and f["E_dep/E_inc"][0] == pytest.approx(0.03)
    assert f["E_inc"][0] == 1e4
    assert f["sparsity_1"][0] == pytest.approx(1 / 144)


def test_two_symmetric_voxels_centre_zero_known_width_and_sparsity() -> None:
    s1 = GEOMETRY.slices[1]
    left, right = s1.start + 5 * 12 + 5, s1.start + 5 * 12 + 6  # x = -20, +20 mm, same row
    f = high_level_features(single({left: 50.0, right: 50.0}))
    assert f["EC_x_1"][0] == pytest.approx(0.0, abs=1e-12)
    assert f["width_x_1"][0] == pytest.approx(20.0)
    assert f["width_y_1"][0] == pytest.approx(0.0, abs=1e-9)
    # unequal energies: mean and std of a two-point distribution
    f = high_level_features(single({left: 30.0, right: 10.0}))
    assert f["EC_x_1"][0] == pytest.approx(-20 * 0.75 + 20 * 0.25)
    assert f["width_x_1"][0] == pytest.approx(40 * np.sqrt(0.75 * 0.25))
    # sparsity counts voxels above the threshold
    assert f["sparsity_1"][0] == pytest.approx(2 / 144)
    assert high_level_features(single({left: 30.0, right: 10.0}), threshold=20.0)["sparsity_1"][
        0
    ] == pytest.approx(1 / 144)


def test_polar_layers_use_the_calochallenge_voxel_centres() -> None:
    geometry = Geometry.builtin("calochallenge-ds1-photon")
    i = geometry.voxel_layers[1]
    index = geometry.slices[i].start + 3  # a voxel of the second voxelised layer
    v = np.zeros((2, geometry.n_voxels))
    v[0, index] = 7.0
    f = high_level_features(Showers([1e3, 1e3], v, geometry))
    tag = geometry.layers[i].id
    x, y = geometry.centres()[index]
    assert f[f"EC_x_{tag}"][0] == pytest.approx(x) and f[f"EC_y_{tag}"][0] == pytest.approx(y)
    assert f[f"width_x_{tag}"][0] == 0.0 and f[f"E_{tag}"].tolist() == [7.0, 0.0]
    assert len(feature_names(geometry)) == 1 + 5 * len(geometry.voxel_layers)


def test_features_of_many_showers_are_finite_and_consistent() -> None:
    s = samples()["a"]
    f = high_level_features(s)
    assert all(v.shape == (len(s),) and np.isfinite(v).all() for v in f.values())
    np.testing.assert_allclose(f["E_0"] + f["E_1"] + f["E_2"], f["E_dep"])
    np.testing.assert_allclose(np.stack([f[f"E_{i}"] for i in range(3)], 1), s.layer_energies())
    m = feature_matrix(s)
    names = feature_names(GEOMETRY)
    assert m.shape == (len(s), 16) and len(names) == 16
    assert names[0] == "log10(E_inc)" and names[1] == "log10(E_0)" and names[-1] == "width_y_2"
    np.testing.assert_allclose(m[:, 0], np.log10(s.energy))
    np.testing.assert_allclose(m[:, names.index("EC_x_1")], f["EC_x_1"] / 100)
    # empty showers do not produce NaN
    empty = Showers(np.ones(3), np.zeros((3, V)), GEOMETRY)
    assert np.isfinite(feature_matrix(empty)).all()


# ------------------------------------------------------------------ separation power
def test_separation_power_limits_and_symmetry() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000)
    assert separation_power(a, a, 30) == 0.0
    assert separation_power(a, a + 100, 30) == pytest.approx(1.0)
    edges = np.linspace(-4, 4, 41)
    s_ab, s_ba = separation_power(a, b, edges), separation_power(b, a, edges)
    assert s_ab == pytest.approx(s_ba) and 0.01 < s_ab < 0.2
    # by hand: histograms (2/3, 1/3) and (1/3, 2/3)
    hand = 0.5 * 2 * (1 / 3) ** 2 / 1
    assert separation_power([0.2, 0.3, 1.5], [0.2, 1.4, 1.5], [0, 1, 2]) == pytest.approx(hand)
    with pytest.raises(InputError, match="no entry inside"):
        separation_power(a, b, [10, 11])
    with pytest.raises(InputError, match="NaN"):
        separation_power([np.nan], b)


# ------------------------------------------------------------------ FPD / KPD
def test_fpd_small_for_same_generator_large_for_wide() -> None:
    m = {k: feature_matrix(s) for k, s in samples().items()}
    same, wide = fpd(m["a"], m["b"]), fpd(m["a"], m["wide"])
    assert 0 <= same < 0.2
    assert wide > 10 and wide > 100 * same
    assert fpd(m["a"], m["a"]) == pytest.approx(0.0, abs=1e-6)
    assert fpd(m["a"], m["wide"]) != fpd(m["wide"], m["a"])  # the reference sets the scale


def test_fpd_matches_closed_forms() -> None:
    rng = np.random.default_rng(1)
    # 1D: (mu1 - mu2)^2 + (sigma1 - sigma2)^2 with the sample moments
    x, y = rng.normal(0, 1, (500, 1)), rng.normal(1, 2, (700, 1))
    sx, sy = x.std(ddof=1), y.std(ddof=1)
    expected = (x.mean() - y.mean()) ** 2 + (sx - sy) ** 2
    assert fpd(x, y, standardise=False) == pytest.approx(expected, rel=1e-9)
    # standardised with the reference: the same on (x - mean_x) / std_x
    z = lambda a: (a - x.mean()) / x.std()  # noqa: E731
    assert fpd(x, y) == pytest.approx(fpd(z(x), z(y), standardise=False), rel=1e-9)
    # d dims: scipy's sqrtm formula
    a = rng.normal(size=(400, 4)) @ rng.normal(size=(4, 4))
    b = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4)) + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    trace = np.trace(s1 + s2 - 2 * np.real(linalg.sqrtm(s1 @ s2)))
    d = a.mean(0) - b.mean(0)
    assert fpd(a, b, standardise=False) == pytest.approx(d @ d + trace, rel=1e-8)
    with pytest.raises(ShapeError):
        fpd(a, b[:, :3])
    with pytest.raises(InputError, match="NaN"):
        fpd(a, np.full_like(b, np.nan))


def test_kpd_zero_within_error_for_same_generator_large_for_wide() -> None:
    m = {k: feature_matrix(s) for k, s in samples().items()}
    value, error = kpd(m["a"], m["b"], num_batches=10, batch_size=500)
    assert error > 0 and abs(value) < 2 * error
    wide, wide_error = kpd(m["a"], m["wide"], num_batches=10, batch_size=500)
    assert wide > 20 * wide_error and wide > 100 * max(abs(value), error)
    assert kpd(m["a"], m["b"], batch_size=500) == kpd(m["a"], m["b"], batch_size=500)  # seeded


# ------------------------------------------------------------------ plot and evaluate
def test_plot_and_evaluate(tmp_path) -> None:
    s = samples()
    ref, models = s["a"][:600], {"same": s["b"][:600], "wide": s["wide"][:600]}
    png = tmp_path / "features.png"
    report = evaluate(ref, models, levels=("high",), **{**FAST, "epochs": 8},
                      kpd_batch_size=200, plot=png)  # fmt: skip
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind
    json.dumps(report)  # JSON-ready
    same, wide = report["models"]["same"], report["models"]["wide"]
    assert set(same["separation"]) == set(high_level_features(ref))
    assert wide["separation"]["width_x_1"] > 0.5 > 0.05 > same["separation"]["width_x_1"]
    assert wide["fpd"] > 10 * same["fpd"]
    assert wide["classifier"]["high"]["auc"] > 0.9 > 0.6 > same["classifier"]["high"]["auc"]
    with pytest.raises(InputError, match="at least one"):
        evaluate(ref, {})
    with pytest.raises(ConfigError, match="levels"):
        evaluate(ref, models, levels=("top",))
    with pytest.raises(ConfigError, match="voxelised"):
        plot_features(ref, models, tmp_path / "x.png", layers=[7])
