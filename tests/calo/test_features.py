"""High-level shower features and distances (hepflows.calo.features).

Complements tests/calo/test_evaluate.py (single-voxel centres and widths, FPD
against scipy, KPD/classifier on blob showers): chunking, polar layer tags,
the feature matrix layout, exact FPD/KPD values on point masses, and errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from hepflows import InputError, ShapeError
from hepflows.calo import (
    Geometry,
    Showers,
    feature_matrix,
    feature_names,
    fpd,
    high_level_features,
    kpd,
    separation_power,
)

CALOGAN = Geometry.builtin("calogan")
DS1 = Geometry.builtin("calochallenge-ds1-photon")


def random_showers(n: int, geometry: Geometry = CALOGAN, seed: int = 0) -> Showers:
    rng = np.random.default_rng(seed)
    voxels = rng.exponential(5.0, (n, geometry.n_voxels)) * (rng.random((n, 1)) < 0.95)
    voxels[rng.random(voxels.shape) < 0.7] = 0.0
    return Showers(rng.uniform(1e3, 1e5, n), voxels, geometry)


# ------------------------------------------------------------------ high-level features
def test_features_do_not_depend_on_the_chunking():
    """8192 rows per chunk: a set across the chunk boundary equals its parts computed alone."""
    s = random_showers(8200)
    whole = high_level_features(s)
    parts = [high_level_features(s[:5000]), high_level_features(s[5000:])]
    for k, v in whole.items():
        np.testing.assert_array_equal(v, np.concatenate([p[k] for p in parts]), err_msg=k)


def test_feature_order_and_energy_bookkeeping():
    s = random_showers(50)
    f = high_level_features(s)
    per_layer = ("E", "EC_x", "EC_y", "width_x", "width_y", "sparsity")
    assert list(f) == ["E_inc", "E_dep", "E_dep/E_inc"] + [
        f"{k}_{i}" for i in range(3) for k in per_layer
    ]
    np.testing.assert_allclose(f["E_dep/E_inc"], s.voxels.sum(1) / s.energy, rtol=1e-15)
    np.testing.assert_array_equal(f["E_inc"], s.energy)
    assert f["E_inc"] is not s.energy  # a copy: editing features leaves the showers alone
    lit = (s.voxels[:, 288:432] > 0).mean(1)
    np.testing.assert_allclose(f["sparsity_1"], lit, rtol=1e-15)


def test_polar_layers_are_named_by_their_ids_and_empty_layers_skipped():
    names = feature_names(DS1)
    tags = ["0", "1", "2", "3", "12"]
    assert names == (["log10(E_inc)"] + [f"log10(E_{t})" for t in tags]
                     + [f"{k}_{t}" for k in ("EC_x", "EC_y", "width_x", "width_y")
                        for t in tags])  # fmt: skip
    f = high_level_features(random_showers(3, DS1))
    assert "E_12" in f and "E_4" not in f


def test_polar_ring_has_its_centre_on_the_axis_and_radius_as_width():
    """Equal energy in every angular bin of one radial ring: centre 0, width^2 = <x^2>."""
    layer_pos = 1  # 10 angular x 16 radial bins
    layer = DS1.layers[layer_pos]
    s = DS1.slices[layer_pos]
    v = np.zeros((1, DS1.n_voxels))
    ring = 3  # radial bin 3: r in [6, 8] mm, centre 7 mm
    v[0, s.start + np.arange(layer.n_alpha) * (len(layer.r_edges) - 1) + ring] = 2.0
    f = high_level_features(Showers([1e4], v, DS1))
    assert f["E_1"][0] == pytest.approx(20.0)
    assert abs(f["EC_x_1"][0]) < 1e-12 and abs(f["EC_y_1"][0]) < 1e-12
    # x = 7 cos(alpha) over 10 equally spaced angles: <x^2> = 49 / 2
    assert f["width_x_1"][0] == pytest.approx(7 / np.sqrt(2), rel=1e-12)
    assert f["width_y_1"][0] == pytest.approx(7 / np.sqrt(2), rel=1e-12)


@pytest.mark.parametrize("threshold", [-1.0, np.nan, np.inf])
def test_bad_threshold(threshold):
    with pytest.raises(InputError, match="threshold must be a finite energy >= 0"):
        high_level_features(random_showers(2), threshold=threshold)


# ------------------------------------------------------------------ feature matrix
def test_feature_matrix_columns():
    s = random_showers(20)
    s.voxels[:5, 432:] = 0.0  # an empty back layer in five showers
    f = high_level_features(s)
    m = feature_matrix(s)
    np.testing.assert_array_equal(m, feature_matrix(s, features=f))  # precomputed features
    names = feature_names(CALOGAN)
    col = {n: m[:, i] for i, n in enumerate(names)}
    np.testing.assert_allclose(col["log10(E_1)"], np.log10(f["E_1"] + 1e-3), rtol=1e-15)
    np.testing.assert_array_equal(col["log10(E_2)"][:5], -3.0)  # log10 of the 1 keV offset
    np.testing.assert_allclose(col["width_y_0"], f["width_y_0"] / 100, rtol=1e-15)  # 100 mm
    assert "sparsity_0" not in names and "E_dep" not in " ".join(names)


# ------------------------------------------------------------------ separation power
def test_separation_power_ignores_entries_outside_explicit_bins():
    # in [0, 2): a -> (1, 1), b -> (2, 0); the 5.0 of each falls outside
    value = separation_power([0.5, 1.5, 5.0], [0.2, 0.7, 5.0], [0.0, 1.0, 2.0])
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    assert value == pytest.approx(0.5 * np.sum((p - q) ** 2 / (p + q)), rel=1e-15)


def test_separation_power_of_one_repeated_value_is_zero():
    assert separation_power(np.full(10, 3.0), np.full(4, 3.0), 5) == 0.0
    assert separation_power(np.full(10, 3.0), np.full(4, 4.0), 5) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("a", "b", "bins", "message"),
    [
        ([], [1.0], 5, "two non-empty samples"),
        ([1.0], [np.inf], 5, "NaN or inf"),
        ([1.0], [2.0], 0, "bins must be >= 1"),
        ([1.0], [2.0], [0.0, 0.0, 1.0], "increasing edges"),
        ([1.0], [2.0], [3.0], "increasing edges"),
    ],
)
def test_separation_power_errors(a, b, bins, message):
    with pytest.raises(InputError, match=message):
        separation_power(a, b, bins)


# ------------------------------------------------------------------ FPD / KPD
def point_mass(x, n=50):
    return np.tile(np.asarray(x, float), (n, 1))


def test_fpd_of_point_masses_is_the_squared_distance_of_the_means():
    a, b = [1.0, 2.0, -1.0], [0.0, 4.0, 1.0]
    assert fpd(point_mass(a), point_mass(b), standardise=False) == pytest.approx(9.0, abs=1e-12)
    # standardised: the reference's constant columns keep std 1, its mean goes to 0
    assert fpd(point_mass(a), point_mass(b)) == pytest.approx(9.0, abs=1e-12)


def test_fpd_is_symmetric_without_standardisation_and_scale_free_with_it():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 3)), rng.normal(0.2, 1.3, size=(200, 3))
    assert fpd(x, y, standardise=False) == pytest.approx(fpd(y, x, standardise=False), rel=1e-10)
    scale, shift = np.array([1e3, 1e-2, 5.0]), np.array([7.0, -3.0, 1e4])
    assert fpd(x * scale + shift, y * scale + shift) == pytest.approx(fpd(x, y), rel=1e-8)


def test_kpd_of_point_masses_is_exact_and_has_no_spread():
    """k(x, y) = (x.y / d + 1)^3: MMD^2 of two point masses a, b is k(a,a) + k(b,b) - 2 k(a,b)."""
    a, b = np.array([1.0, 2.0]), np.array([0.5, -1.0])

    def k(u, v):
        return (u @ v / 2 + 1.0) ** 3

    value, error = kpd(point_mass(a, 40), point_mass(b, 30), num_batches=4, batch_size=10,
                       standardise=False)  # fmt: skip
    assert value == pytest.approx(k(a, a) + k(b, b) - 2 * k(a, b), rel=1e-12)
    assert error == 0.0
    value, _ = kpd(point_mass(a, 40), point_mass(b, 30), degree=1, standardise=False)
    assert value == pytest.approx(np.sum((a - b) ** 2) / 2, rel=1e-12)  # linear kernel
    value, _ = kpd(point_mass(a, 40), point_mass(b, 30))  # standardised: a -> 0, b -> b - a
    c = b - a
    assert value == pytest.approx((c @ c / 2 + 1) ** 3 - 1, rel=1e-12)


def test_kpd_is_seeded():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
    assert kpd(x, y, seed=1, batch_size=50) == kpd(x, y, seed=1, batch_size=50)
    assert kpd(x, y, seed=1, batch_size=50) != kpd(x, y, seed=2, batch_size=50)


def test_distance_errors():
    x = np.zeros((10, 3))
    with pytest.raises(ShapeError, match=r"\(N, d\) and \(M, d\)"):
        fpd(x, np.zeros((10, 2)))
    with pytest.raises(ShapeError):
        kpd(x.reshape(-1), x.reshape(-1))
    with pytest.raises(InputError, match="at least 2 rows"):
        fpd(x[:1], x)
    with pytest.raises(InputError, match="at least 4 rows"):
        kpd(x, x[:3])
    with pytest.raises(InputError, match="num_batches >= 1 and batch_size >= 2"):
        kpd(x, x, num_batches=0)
    with pytest.raises(InputError, match="num_batches >= 1 and batch_size >= 2"):
        kpd(x, x, batch_size=1)
    with pytest.raises(InputError, match="NaN or inf"):
        kpd(x, np.full((10, 3), np.nan))
