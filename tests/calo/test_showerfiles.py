"""Shower files in the CaloChallenge and CaloGAN HDF5 layouts: round trips, layouts, errors."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from hepflows import ConfigError, InputError, ShapeError
from hepflows.calo import Geometry, Layer, Showers, read_showers, write_showers
from hepflows.calo import geometry as geometry_module
from hepflows.calo.showerfiles import LAYOUTS, detect_layout

GEOMETRIES = ["calogan", "calochallenge-ds1-photon"]


def _showers(name="calogan", n=20, seed=0, overflow=True):
    rng = np.random.default_rng(seed)
    geometry = Geometry.builtin(name)
    energy = rng.uniform(1e3, 1e5, n)  # MeV
    voxels = rng.exponential(50.0, (n, geometry.n_voxels)) * (rng.random((n, 1)) < 0.9)
    voxels[rng.random(voxels.shape) < 0.5] = 0.0  # sparse, as real showers
    over = rng.exponential(10.0, (n, len(geometry.layers))) if overflow else None
    return Showers(energy, voxels, geometry, over)


def _h5(path, **datasets):
    """A file written by hand with h5py, as other tools write them."""
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)
    return path


def _calogan_raw(n=4, **replace):
    """CaloGAN datasets of shape (N,1), (N,3,96), (N,12,12), (N,12,6), (N,3), all zeros."""
    data = {
        "energy": np.full((n, 1), 10.0),  # GeV
        "layer_0": np.zeros((n, 3, 96)),
        "layer_1": np.zeros((n, 12, 12)),
        "layer_2": np.zeros((n, 12, 6)),
        "overflow": np.zeros((n, 3)),
    }
    data.update(replace)
    return {k: v for k, v in data.items() if v is not None}


def _calochallenge_raw(n=4, v=368, **replace):
    data = {"incident_energies": np.full((n, 1), 1e4), "showers": np.ones((n, v))}
    data.update(replace)
    return {k: v for k, v in data.items() if v is not None}


def _f32(a):
    return np.asarray(a, np.float32).astype(np.float64)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", GEOMETRIES)
def test_calochallenge_round_trip(tmp_path, name):
    sh = _showers(name)
    path = tmp_path / "s.h5"
    write_showers(path, sh, layout="calochallenge")
    back = read_showers(path)  # layout and geometry detected
    assert back.geometry == sh.geometry
    np.testing.assert_array_equal(back.energy, _f32(sh.energy))
    np.testing.assert_array_equal(back.voxels, _f32(sh.voxels))
    assert back.energy.dtype == np.float64 and back.voxels.dtype == np.float64
    assert back.overflow is None  # CaloChallenge files have no overflow
    with h5py.File(path) as f:
        assert f["incident_energies"].shape == (len(sh), 1)
        assert f["showers"].compression == "gzip"
        assert f.attrs["hepflows_geometry"] == name
        assert f.attrs["units"] == "MeV"
        np.testing.assert_array_equal(f["incident_energies"][:, 0], sh.energy.astype(np.float32))
    assert not list(tmp_path.glob(".*tmp"))


def test_calogan_round_trip_converts_gev(tmp_path):
    sh = _showers("calogan")
    path = tmp_path / "g.h5"
    write_showers(path, sh, layout="calogan")
    with h5py.File(path) as f:
        assert set(f) == {"energy", "layer_0", "layer_1", "layer_2", "overflow"}
        # The file holds GeV: 1000 times less than the MeV of Showers.
        np.testing.assert_allclose(f["energy"][:, 0], sh.energy / 1000, rtol=1e-7)
        assert f["energy"].shape == (len(sh), 1)
        assert [f[f"layer_{i}"].shape[1:] for i in range(3)] == [(3, 96), (12, 12), (12, 6)]
        assert f["layer_0"].compression == "gzip"
        assert f.attrs["units"] == "energy: GeV, layers: MeV"
        assert f.attrs["hepflows_geometry"] == "calogan"
    back = read_showers(path)
    assert back.geometry == sh.geometry
    np.testing.assert_allclose(back.energy, sh.energy, rtol=1e-7)  # back in MeV
    np.testing.assert_array_equal(back.voxels, _f32(sh.voxels))
    np.testing.assert_array_equal(back.overflow, _f32(sh.overflow))


def test_calogan_without_overflow_writes_zeros(tmp_path):
    sh = _showers("calogan", overflow=False)
    write_showers(tmp_path / "g.h5", sh, layout="calogan")
    back = read_showers(tmp_path / "g.h5", layout="calogan")
    np.testing.assert_array_equal(back.overflow, np.zeros((len(sh), 3)))


def test_calogan_layout_refuses_polar_geometry(tmp_path):
    with pytest.raises(ConfigError, match="cartesian"):
        write_showers(tmp_path / "x.h5", _showers("calochallenge-ds1-photon"), layout="calogan")
    assert not list(tmp_path.iterdir())


def test_geometry_given_as_xml_or_object(tmp_path):
    sh = _showers("calogan", n=5)
    write_showers(tmp_path / "s.h5", sh)
    xml = tmp_path / "mycalo.xml"
    sh.geometry.to_xml(xml)
    from_xml = read_showers(tmp_path / "s.h5", geometry=xml)
    assert from_xml.geometry.name == "mycalo"
    assert from_xml.geometry.layers == sh.geometry.layers
    np.testing.assert_array_equal(from_xml.voxels, _f32(sh.voxels))
    by_name = read_showers(tmp_path / "s.h5", geometry="calogan")
    assert by_name.geometry == sh.geometry
    assert read_showers(tmp_path / "s.h5", geometry=sh.geometry).geometry is sh.geometry


def test_custom_geometry_needs_geometry_on_read(tmp_path):
    geometry = Geometry((Layer(0, r_edges=(0.0, 1.0, 2.0), n_alpha=5),), name="tiny")
    sh = Showers(np.ones(3), np.arange(30.0).reshape(3, 10), geometry)
    write_showers(tmp_path / "t.h5", sh)
    with pytest.raises(ConfigError, match="--geometry"):
        read_showers(tmp_path / "t.h5")
    np.testing.assert_array_equal(read_showers(tmp_path / "t.h5", geometry).voxels, sh.voxels)


# ------------------------------------------------------------------ files written by others
def test_hand_written_calogan_file(tmp_path):
    n = 4
    layer_1 = np.zeros((n, 12, 12))
    layer_1[0, 2, 5] = 7.0  # MeV, shower 0, layer 1, row y=2, column x=5
    overflow = np.zeros((n, 3))
    overflow[1, 2] = 3.0
    energy = np.array([[1.0], [10.0], [50.0], [100.0]])  # GeV
    raw = _calogan_raw(n, layer_1=layer_1, overflow=overflow, energy=energy)
    path = _h5(tmp_path / "eplus.hdf5", **raw)
    assert detect_layout(path) == "calogan"
    sh = read_showers(path)  # no attribute: geometry matched by the layer shapes
    assert sh.geometry.name == "calogan"
    np.testing.assert_array_equal(sh.energy, [1e3, 1e4, 5e4, 1e5])
    assert np.flatnonzero(sh.voxels[0]).tolist() == [96 * 3 + 2 * 12 + 5]  # 317
    assert sh.voxels[0, 317] == 7.0 and sh.voxels[1:].sum() == 0
    np.testing.assert_array_equal(sh.layer_energies()[0], [0.0, 7.0, 0.0])
    # The voxel lands where the geometry says row 2, column 5 of layer 1 is.
    x, y = sh.geometry.centres()[317]
    assert (x, y) == (-240 + 5 * 40 + 20, -240 + 2 * 40 + 20)
    np.testing.assert_array_equal(sh.overflow, overflow)


def test_hand_written_calochallenge_polar_order(tmp_path):
    geometry = Geometry.builtin("calochallenge-ds1-photon")
    layer = geometry.layers[2]  # 10 angular x 19 radial bins
    n_alpha, n_r = layer.shape
    k = geometry.slices[2].start + 3 * n_r + 4  # angular bin 3, radial bin 4
    showers = np.zeros((2, 368))
    showers[1, k] = 5.0
    path = _h5(tmp_path / "ds1.h5", incident_energies=[[256.0], [4.2e6]], showers=showers)
    assert detect_layout(path) == "calochallenge"
    sh = read_showers(path)
    assert sh.geometry == geometry
    np.testing.assert_array_equal(sh.energy, [256.0, 4.2e6])
    le = sh.layer_energies()
    assert le[1].tolist() == [0, 0, 5.0, 0, 0]  # voxelised layers 0, 1, 2, 3, 12
    assert sh.voxels[1, geometry.slices[2]].reshape(n_alpha, n_r)[3, 4] == 5.0
    r = np.hypot(*geometry.centres()[k])
    assert r == pytest.approx(0.5 * (layer.r_edges[4] + layer.r_edges[5]))


def test_incident_energies_of_shape_n_and_no_unit_guessing(tmp_path):
    # Energies that look like GeV are still read as MeV: the layout says MeV.
    path = _h5(tmp_path / "s.h5", incident_energies=np.array([0.5, 2.0, 5.0]),
               showers=np.ones((3, 368)))  # fmt: skip
    np.testing.assert_array_equal(read_showers(path).energy, [0.5, 2.0, 5.0])


# ---------------------------------------------------------------------- layout detection
def test_detect_layout(tmp_path):
    sh = _showers("calogan", n=3)
    for layout in LAYOUTS:
        write_showers(tmp_path / f"{layout}.h5", sh, layout=layout)
        assert detect_layout(tmp_path / f"{layout}.h5") == layout
    # a CaloChallenge file with only one of its datasets is still recognised
    assert detect_layout(_h5(tmp_path / "half.h5", showers=np.ones((2, 368)))) == "calochallenge"
    with pytest.raises(InputError, match="cannot tell the layout"):
        detect_layout(_h5(tmp_path / "other.h5", x=np.ones(3)))
    with pytest.raises(InputError, match="both layouts"):
        detect_layout(_h5(tmp_path / "both.h5", showers=np.ones((2, 368)), energy=np.ones(2)))


def test_explicit_layout_overrides_detection(tmp_path):
    path = _h5(tmp_path / "s.h5", **_calochallenge_raw())
    with pytest.raises(InputError, match="'energy'.*calogan layout"):
        read_showers(path, layout="calogan", geometry="calogan")


def test_unknown_layout(tmp_path):
    with pytest.raises(ConfigError, match="unknown shower-file layout"):
        write_showers(tmp_path / "s.h5", _showers(n=2), layout="hdf5")
    path = _h5(tmp_path / "s.h5", **_calochallenge_raw())
    with pytest.raises(ConfigError, match="choose from"):
        read_showers(path, layout="CaloChallenge")


# ---------------------------------------------------------------------- geometry detection
def test_geometry_auto_detection(tmp_path):
    cc = read_showers(_h5(tmp_path / "a.h5", **_calochallenge_raw(v=368)))
    assert cc.geometry.name == "calochallenge-ds1-photon"
    cc = read_showers(_h5(tmp_path / "b.h5", **_calochallenge_raw(v=504)))
    assert cc.geometry.name == "calogan"  # a CaloGAN geometry stored flat
    with pytest.raises(ConfigError, match="533 voxels.*--geometry"):
        read_showers(_h5(tmp_path / "c.h5", **_calochallenge_raw(v=533)))
    raw = _calogan_raw(layer_2=np.zeros((4, 12, 7)))
    with pytest.raises(ConfigError, match="cannot tell the geometry.*layer_2"):
        read_showers(_h5(tmp_path / "d.h5", **raw))


def test_geometry_named_in_the_file_wins(tmp_path, monkeypatch):
    # Two built-ins of the same shape: the one the file names is taken, else the first by name.
    monkeypatch.setitem(geometry_module.BUILTIN, "another-calogan", "calogan.xml")
    for layout in LAYOUTS:
        for name in ("calogan", "another-calogan"):
            path = tmp_path / f"{layout}-{name}.h5"
            write_showers(path, _showers(name, n=3), layout=layout)
            assert read_showers(path).geometry.name == name
    for raw in (_calogan_raw(), _calochallenge_raw(v=504)):  # no attribute: first by name
        path = _h5(tmp_path / "raw.h5", **raw)
        assert read_showers(path).geometry.name == "another-calogan"


def test_calogan_file_with_polar_geometry(tmp_path):
    path = _h5(tmp_path / "g.h5", **_calogan_raw())
    with pytest.raises(ConfigError, match="non-cartesian"):
        read_showers(path, geometry="calochallenge-ds1-photon")


# ---------------------------------------------------------------------------- bad files
def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no shower file"):
        read_showers(tmp_path / "nope.h5")
    with pytest.raises(InputError, match="check the path"):
        detect_layout(tmp_path / "nope.h5")


def test_not_hdf5_and_truncated(tmp_path):
    text = tmp_path / "text.h5"
    text.write_text("incident_energies,showers\n1,2\n")
    with pytest.raises(InputError, match="not a readable HDF5"):
        read_showers(text)
    good = tmp_path / "good.h5"
    write_showers(good, _showers(n=50))
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated"):
        read_showers(cut)


@pytest.mark.parametrize(
    ("layout", "raw", "key"),
    [
        ("calochallenge", _calochallenge_raw(incident_energies=None), "incident_energies"),
        ("calochallenge", _calochallenge_raw(showers=None), "showers"),
        ("calogan", _calogan_raw(energy=None), "energy"),
        ("calogan", _calogan_raw(layer_1=None), "layer_1"),
    ],
)
def test_missing_dataset(tmp_path, layout, raw, key):
    path = _h5(tmp_path / "m.h5", **raw)
    with pytest.raises(InputError, match=f"no dataset '{key}', which the {layout} layout"):
        read_showers(path, geometry="calogan" if layout == "calogan" else None)


def test_missing_calogan_overflow_is_allowed(tmp_path):
    sh = read_showers(_h5(tmp_path / "g.h5", **_calogan_raw(overflow=None)))
    assert sh.overflow is None


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (_calochallenge_raw(v=368), "has 368 voxels per shower but geometry 'calogan' has 504"),
        (_calochallenge_raw(v=504, incident_energies=np.ones((4, 2))), r"\(N, 1\) or \(N,\)"),
        (_calochallenge_raw(v=504, showers=np.ones(504)), r"shape \(N, V\)"),
        (_calochallenge_raw(v=504, incident_energies=np.ones((5, 1))), "different numbers"),
        (_calogan_raw(layer_0=np.zeros((4, 96, 3))), r"'layer_0'.*\(N, 3, 96\)"),
        (_calogan_raw(layer_2=np.zeros((3, 12, 6))), "different numbers"),
        (_calogan_raw(overflow=np.zeros((4, 2))), r"'overflow' must have shape \(N, 3\)"),
        (_calogan_raw(layer_3=np.zeros((4, 2, 2))), "'layer_3'.*no voxelised layer"),
    ],
)
def test_wrong_shapes(tmp_path, raw, match):
    path = _h5(tmp_path / "w.h5", **raw)
    with pytest.raises(ShapeError, match=match):
        read_showers(path, geometry="calogan")


@pytest.mark.parametrize(
    ("layout", "key", "value", "match"),
    [
        ("calochallenge", "showers", -1.0, "'showers' holds negative energies in 1 showers"),
        ("calochallenge", "showers", np.nan, "'showers' holds NaN"),
        ("calochallenge", "incident_energies", np.inf, "'incident_energies' holds NaN or inf"),
        ("calochallenge", "incident_energies", 0.0, "incident energies <= 0"),
        ("calogan", "layer_2", -0.5, "'layer_2' holds negative energies"),
        ("calogan", "overflow", np.nan, "'overflow' holds NaN"),
        ("calogan", "energy", -1.0, "'energy' holds negative"),
    ],
)
def test_bad_values_name_the_file(tmp_path, layout, key, value, match):
    raw = _calochallenge_raw() if layout == "calochallenge" else _calogan_raw()
    raw[key] = raw[key].copy()
    raw[key].reshape(len(raw[key]), -1)[2, 0] = value
    path = _h5(tmp_path / "bad.h5", **raw)
    with pytest.raises(InputError, match=match) as info:
        read_showers(path)
    assert str(path) in str(info.value)


def test_non_numeric_dataset(tmp_path):
    path = _h5(tmp_path / "s.h5", incident_energies=np.array([b"a", b"b"]),
               showers=np.ones((2, 368)))  # fmt: skip
    with pytest.raises(InputError, match="not numeric"):
        read_showers(path)


def test_missing_geometry_xml(tmp_path):
    path = _h5(tmp_path / "s.h5", **_calochallenge_raw())
    with pytest.raises(InputError, match="no binning XML"):
        read_showers(path, geometry=tmp_path / "missing.xml")


# ---------------------------------------------------------------------------- atomic writes
def test_failed_write_leaves_no_file_and_keeps_old_one(tmp_path, monkeypatch):
    sh = _showers(n=10)
    calls = []
    original = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2:  # after the first dataset is on disk
            raise RuntimeError("disk full")
        return original(self, name, *args, **kwargs)

    fresh = tmp_path / "fresh.h5"
    old = tmp_path / "old.h5"
    write_showers(old, sh, layout="calogan")
    before = old.read_bytes()
    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    for path in (fresh, old):
        for layout in LAYOUTS:
            calls.clear()
            with pytest.raises(RuntimeError, match="disk full"):
                write_showers(path, _showers(n=10, seed=1), layout=layout)
    assert not fresh.exists()
    assert old.read_bytes() == before
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["old.h5"]  # no temp files
    monkeypatch.undo()
    np.testing.assert_array_equal(read_showers(old).voxels, _f32(sh.voxels))


def test_write_refuses_empty(tmp_path):
    with pytest.raises(InputError, match="no showers"):
        write_showers(tmp_path / "e.h5", _showers(n=5)[:0])
    assert not (tmp_path / "e.h5").exists()
