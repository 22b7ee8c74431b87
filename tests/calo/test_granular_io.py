"""Granular geometries (CaloChallenge datasets 2 and 3): binning XML, voxel indexing,
chunked reading, resumable chunked writing and the toy simulator's file output."""

import h5py
import numpy as np
import pytest

from calo_mini import spy_voxel_reads
from hepflows import ConfigError, InputError, ShapeError
from hepflows.calo import Geometry, Showers, ToySimulator
from hepflows.calo.showerstream import (
    ShowerWriter,
    count_showers,
    iter_showers,
    partial_path,
)
from hepflows.calo.simulator import MATERIALS


@pytest.mark.parametrize(("name", "n_alpha", "n_r", "step"),
                         [("ds2", 16, 9, 4.65), ("ds3", 50, 18, 2.325)])  # fmt: skip
def test_builtin_granular_geometries(name, n_alpha, n_r, step):
    g = Geometry.resolve(name)
    assert g.name == f"calochallenge-{name}"
    assert len(g.layers) == 45 and g.n_voxels == 45 * n_alpha * n_r
    assert g.particle == "electron" and g.pid == 11 and g.material == "tungsten-silicon"
    for layer in g.layers:
        assert layer.kind == "polar" and layer.shape == (n_alpha, n_r)
        np.testing.assert_allclose(layer.r_edges, step * np.arange(n_r + 1), atol=1e-9)
    assert Geometry.resolve(f"calochallenge-{name}") == g


@pytest.mark.parametrize("name", ["ds2", "ds3"])
def test_binning_xml_round_trip(tmp_path, name):
    g = Geometry.resolve(name)
    path = tmp_path / "binning.xml"
    g.to_xml(path)
    back = Geometry.from_xml(path)
    assert back.layers == g.layers
    assert (back.particle, back.pid, back.material) == (g.particle, g.pid, g.material)
    assert back.n_voxels == g.n_voxels


@pytest.mark.parametrize("name", ["ds2", "ds3", "calogan", "ds1"])
def test_voxel_index_round_trip(name):
    g = Geometry.resolve(name)
    v = np.arange(g.n_voxels)
    layer, first, second = g.voxel_bins(v)
    np.testing.assert_array_equal(g.voxel_index(layer, first, second), v)
    assert all(g.layers[i].n_voxels > 0 for i in np.unique(layer))


def test_voxel_index_against_the_xml_binning():
    """(layer, alpha bin, r bin) -> voxel agrees with the layer's own locate() of a point
    placed in that (alpha, r) cell, for the CaloChallenge order (angle-major, radius-minor)."""
    g = Geometry.resolve("ds2")
    rng = np.random.default_rng(0)
    layer = rng.integers(0, 45, 500)
    ia, ir = rng.integers(0, 16, 500), rng.integers(0, 9, 500)
    r = (ir + rng.uniform(0.1, 0.9, 500)) * 4.65
    alpha = -np.pi + (ia + rng.uniform(0.1, 0.9, 500)) * 2 * np.pi / 16
    local = g.layers[0].locate(r * np.cos(alpha), r * np.sin(alpha))
    expected = np.array([g.slices[i].start for i in layer]) + local
    np.testing.assert_array_equal(g.voxel_index(layer, ia, ir), expected)
    # the first voxels of layer 1: angle 0 radii 0..8, then angle 1
    np.testing.assert_array_equal(g.voxel_index(1, 0, np.arange(9)), 144 + np.arange(9))
    assert int(g.voxel_index(1, 1, 0)) == 144 + 9


def test_voxel_index_errors():
    g = Geometry.resolve("ds2")
    with pytest.raises(InputError, match="outside their layer"):
        g.voxel_index(0, 16, 0)
    with pytest.raises(InputError, match="layer positions"):
        g.voxel_index(45, 0, 0)
    with pytest.raises(InputError, match=r"\[0, 6480\)"):
        g.voxel_bins(6480)


def test_unknown_geometry_names_the_short_names():
    with pytest.raises(ConfigError, match="ds2"):
        Geometry.resolve("ds4")


def _random_showers(geometry, n, seed):
    rng = np.random.default_rng(seed)
    vox = rng.exponential(1.0, (n, geometry.n_voxels)) * (rng.random((n, geometry.n_voxels)) < 0.2)
    return Showers(rng.uniform(1e3, 1e6, n), vox.astype(np.float32), geometry)


def test_chunked_read_of_a_file_larger_than_the_chunk(tmp_path):
    g = Geometry.resolve("ds2")
    parts = [_random_showers(g, k, s) for s, k in enumerate((10, 10, 5))]
    path = tmp_path / "ds2.h5"
    with ShowerWriter(path, g) as out:
        for p in parts:
            out.append(p)
        assert out.n_done == 25
        out.finish()
    assert not partial_path(path).exists()
    assert count_showers(path) == 25
    chunks = list(iter_showers(path, chunk_size=7))
    assert [len(c) for c in chunks] == [7, 7, 7, 4]
    assert all(c.geometry.name == "calochallenge-ds2" for c in chunks)
    whole = Showers.concatenate(parts)
    got = Showers.concatenate(chunks)
    np.testing.assert_allclose(got.voxels, whole.voxels, rtol=1e-6)
    np.testing.assert_allclose(got.energy, whole.energy, rtol=1e-6)
    sub = Showers.concatenate(list(iter_showers(path, chunk_size=4, start=3, stop=12)))
    np.testing.assert_allclose(sub.voxels, whole.voxels[3:12], rtol=1e-6)


def test_chunked_read_reads_only_its_rows(tmp_path, monkeypatch):
    """No slice larger than the chunk is ever requested from the voxel dataset."""
    g = Geometry.resolve("ds2")
    path = tmp_path / "f.h5"
    with ShowerWriter(path, g) as out:
        out.append(_random_showers(g, 30, 0))
        out.finish()
    seen = spy_voxel_reads(monkeypatch)
    assert sum(len(c) for c in iter_showers(path, chunk_size=8)) == 30
    assert seen and all(isinstance(k, slice) and k.stop - k.start <= 8 for k in seen)


def test_chunked_read_errors(tmp_path):
    g = Geometry.resolve("ds2")
    path = tmp_path / "f.h5"
    with ShowerWriter(path, g) as out:
        out.append(_random_showers(g, 5, 0))
        out.finish()
    with pytest.raises(InputError, match="chunk_size"):
        next(iter_showers(path, chunk_size=0))
    with pytest.raises(InputError, match="start <= stop"):
        next(iter_showers(path, start=4, stop=9))
    with pytest.raises(ShapeError, match="6480 voxels"):
        next(iter_showers(path, geometry="ds3"))
    with h5py.File(path, "a") as f:
        f["showers"][2, 7] = np.nan
    with pytest.raises(InputError, match="NaN"):
        list(iter_showers(path, chunk_size=2))


def test_writer_resumes_and_drops_an_uncommitted_chunk(tmp_path):
    g = Geometry.resolve("ds2")
    path = tmp_path / "f.h5"
    a, b, c = (_random_showers(g, k, s) for s, k in enumerate((6, 4, 3)))
    out = ShowerWriter(path, g, attrs={"run": "x"})
    out.append(a)
    out.close()  # cut off: the file is not there yet, the partial is
    assert not path.exists() and partial_path(path).exists()
    with h5py.File(partial_path(path), "a") as f:  # rows written but never committed
        f["showers"].resize(9, axis=0)
        f["incident_energies"].resize(9, axis=0)
    with pytest.raises(ConfigError, match="other settings"):
        ShowerWriter(path, g, attrs={"run": "y"})
    with ShowerWriter(path, g, attrs={"run": "x"}) as out:
        assert out.n_done == 6
        out.append(b)
        out.append(c)
        out.finish()
    got = Showers.concatenate(list(iter_showers(path, chunk_size=100)))
    np.testing.assert_allclose(got.voxels, Showers.concatenate([a, b, c]).voxels, rtol=1e-6)
    with pytest.raises(ShapeError, match="cannot go into"):
        ShowerWriter(tmp_path / "g.h5", "ds3").append(a)
    with pytest.raises(InputError, match="empty"):
        ShowerWriter(tmp_path / "h.h5", g).finish()


def test_simulate_to_file_is_chunk_seeded_and_resumable(tmp_path):
    """The file depends on (settings, seed, chunk size) only: a run cut after one chunk
    and resumed gives the same showers as one uninterrupted run."""

    def sim():
        return ToySimulator("ds2", particle="electron", energy_range_mev=(1e3, 1e6),
                            energy_distribution="log-uniform", max_spots=500, seed=3)  # fmt: skip

    whole = sim().simulate_to_file(tmp_path / "a.h5", 12, chunk_size=5, progress=False)
    cut = sim()
    calls = {"n": 0}
    original = ToySimulator.simulate

    def flaky(self, n, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, n, *args, **kw)

    cut.simulate = flaky.__get__(cut)
    with pytest.raises(KeyboardInterrupt):
        cut.simulate_to_file(tmp_path / "b.h5", 12, chunk_size=5, progress=False)
    assert not (tmp_path / "b.h5").exists()
    with h5py.File(partial_path(tmp_path / "b.h5")) as f:
        assert int(f.attrs["n_done"]) == 5
    sim().simulate_to_file(tmp_path / "b.h5", 12, chunk_size=5, progress=False)
    a = Showers.concatenate(list(iter_showers(whole)))
    b = Showers.concatenate(list(iter_showers(tmp_path / "b.h5")))
    np.testing.assert_array_equal(a.voxels, b.voxels)
    np.testing.assert_array_equal(a.energy, b.energy)
    assert a.energy.min() >= 1e3 and a.energy.max() <= 1e6
    other = ToySimulator("ds2", particle="electron", max_spots=500, seed=4)
    with pytest.raises(ConfigError, match="other settings"):
        ShowerWriter(tmp_path / "c.h5", "ds2", attrs={"x": 1}).close()
        other.simulate_to_file(tmp_path / "c.h5", 4, chunk_size=2, progress=False)


def test_ds2_toy_electrons_are_physical():
    """Si-W medium from the geometry; E_dep <= E_inc; deeper and more energy at high E."""
    sim = ToySimulator("ds2", particle="electron", max_spots=2000, seed=0)
    assert sim.material == MATERIALS["tungsten-silicon"]
    lo = sim.simulate(200, energies_mev=2e3)
    hi = sim.simulate(200, energies_mev=5e5)
    for s in (lo, hi):
        assert s.voxels.shape == (200, 6480)
        assert (s.voxels.sum(1) <= s.energy * (1 + 1e-9)).all()
    depth = np.arange(45)

    def mean_depth(s):
        e = s.layer_energies()
        return float(((e * depth).sum(1) / e.sum(1)).mean())

    assert mean_depth(hi) > mean_depth(lo) + 2.0  # ln(250) X0 / 0.4 X0 per layer ~ 14 layers
    assert (hi.voxels > 0).mean() > (lo.voxels > 0).mean()
    with pytest.raises(ConfigError, match="unknown material"):
        ToySimulator("ds2", material="lead-glass")
