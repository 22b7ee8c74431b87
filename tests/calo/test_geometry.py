"""Calorimeter geometry (hepflows.calo.geometry): built-ins, voxel order, XML, errors."""

from __future__ import annotations

import numpy as np
import pytest

from hepflows import ConfigError, InputError
from hepflows.calo import Geometry, Layer


# ------------------------------------------------------------------ built-in geometries
def test_calogan_has_504_voxels_in_three_cartesian_layers():
    g = Geometry.builtin("calogan")
    assert g.n_voxels == 504 == 3 * 96 + 12 * 12 + 12 * 6
    assert [layer.kind for layer in g.layers] == ["cartesian"] * 3
    assert [layer.shape for layer in g.layers] == [(3, 96), (12, 12), (12, 6)]  # (n_y, n_x)
    assert g.voxel_layers == [0, 1, 2]
    assert g.slices == [slice(0, 288), slice(288, 432), slice(432, 504)]
    np.testing.assert_array_equal(g.depths_x0, [4.5, 17.0, 2.0])
    assert (g.name, g.particle, g.pid) == ("calogan", "photon", 22)


def test_calochallenge_ds1_photon_has_368_voxels_in_five_polar_layers():
    g = Geometry.builtin("calochallenge-ds1-photon")
    assert g.n_voxels == 368 == 8 + 16 * 10 + 19 * 10 + 5 + 5
    assert len(g.layers) == 24
    assert g.voxel_layers == [0, 1, 2, 3, 12]
    assert [g.layers[i].shape for i in g.voxel_layers] == [(1, 8), (10, 16), (10, 19), (1, 5),
                                                           (1, 5)]  # fmt: skip
    assert all(g.layers[i].kind == "empty" for i in range(24) if i not in g.voxel_layers)
    assert all(g.slices[i].start == g.slices[i].stop for i in range(4, 12))  # empty slices
    assert g.slices[12] == slice(363, 368)
    assert g.centres().shape == (368, 2)


def test_unknown_builtin_names_the_choices():
    with pytest.raises(
        ConfigError, match=r"unknown geometry 'calogun'.*'calochallenge-ds1-photon'"
    ):
        Geometry.builtin("calogun")


def test_resolve_takes_names_paths_and_geometries(tmp_path):
    g = Geometry.builtin("calogan")
    assert Geometry.resolve(g) is g
    assert Geometry.resolve("calochallenge_ds1_photon").n_voxels == 368  # underscores work
    path = tmp_path / "mine.xml"
    g.to_xml(path)
    from_path = Geometry.resolve(path)
    assert from_path.layers == g.layers and from_path.name == "mine"
    with pytest.raises(ConfigError, match="unknown geometry 'nope'"):
        Geometry.resolve("nope")
    with pytest.raises(InputError, match="no binning XML"):
        Geometry.resolve(tmp_path / "missing.xml")


# ------------------------------------------------------------------ voxel order and centres
def test_polar_voxels_are_angle_major_radius_minor():
    layer = Layer(0, r_edges=(0.0, 1.0, 3.0), n_alpha=4)
    assert layer.shape == (4, 2) and layer.n_voxels == 8
    c = layer.centres()
    r, alpha = np.hypot(c[:, 0], c[:, 1]), np.arctan2(c[:, 1], c[:, 0])
    np.testing.assert_allclose(r, [0.5, 2.0] * 4)
    expected_alpha = np.repeat([-0.75 * np.pi, -0.25 * np.pi, 0.25 * np.pi, 0.75 * np.pi], 2)
    np.testing.assert_allclose(alpha, expected_alpha)


def test_cartesian_voxels_are_row_major():
    layer = Layer(0, x_edges=(0.0, 1.0, 2.0, 4.0), y_edges=(-1.0, 0.0, 1.0))
    assert layer.shape == (2, 3)
    np.testing.assert_allclose(
        layer.centres(), [[0.5, -0.5], [1.5, -0.5], [3.0, -0.5], [0.5, 0.5], [1.5, 0.5], [3.0, 0.5]]
    )


@pytest.mark.parametrize("name", ["calogan", "calochallenge-ds1-photon"])
def test_every_voxel_centre_locates_its_own_voxel(name):
    g = Geometry.builtin(name)
    for i in g.voxel_layers:
        layer = g.layers[i]
        c = layer.centres()
        np.testing.assert_array_equal(layer.locate(c[:, 0], c[:, 1]), np.arange(layer.n_voxels))


def test_points_outside_the_voxels_and_in_empty_layers_locate_to_minus_one():
    polar = Layer(0, r_edges=(1.0, 2.0), n_alpha=3)
    assert polar.locate([0.5, 1.5, 2.5, 0.0], [0.0, 0.0, 0.0, -1.5]).tolist() == [-1, 1, -1, 0]
    cart = Layer(0, x_edges=(0.0, 1.0), y_edges=(0.0, 1.0))
    assert cart.locate([-0.1, 0.5, 1.0, 0.5], [0.5, 0.5, 0.5, 1.5]).tolist() == [-1, 0, -1, -1]
    empty = Layer(0, r_edges=(0.0,))
    assert empty.kind == "empty" and empty.n_voxels == 0 and empty.centres().shape == (0, 2)
    assert empty.locate([0.0, 1.0], [0.0, 1.0]).tolist() == [-1, -1]


def test_layer_energies_sum_each_voxelised_layer():
    g = Geometry.builtin("calochallenge-ds1-photon")
    rng = np.random.default_rng(0)
    v = rng.random((4, g.n_voxels))
    e = g.layer_energies(v)
    assert e.shape == (4, 5)
    np.testing.assert_allclose(e.sum(1), v.sum(1))
    np.testing.assert_allclose(e[:, 4], v[:, 363:].sum(1))


# ------------------------------------------------------------------ XML round trips
@pytest.mark.parametrize("name", ["calogan", "calochallenge-ds1-photon"])
def test_builtin_xml_round_trip(tmp_path, name):
    g = Geometry.builtin(name)
    path = tmp_path / "out.xml"
    g.to_xml(path)
    back = Geometry.from_xml(path)
    assert back.layers == g.layers
    assert (back.particle, back.pid, back.name) == (g.particle, g.pid, "out")
    assert back.n_voxels == g.n_voxels
    assert not [p for p in tmp_path.iterdir() if p.name != "out.xml"]  # atomic: no temp file


def test_mixed_geometry_round_trip_keeps_particle_missing_depths_and_empty_layers(tmp_path):
    g = Geometry(
        (
            Layer(3, depth_x0=2.5, r_edges=(0.0, 4.0, 12.5, 40.0), n_alpha=6),
            Layer(7, x_edges=(-10.0, 0.0, 10.0), y_edges=(-5.0, 5.0)),  # no depth_x0
            Layer(9, depth_x0=0.0, r_edges=(0.0,)),  # empty (CaloChallenge's r_edges="0")
        ),
        particle="pion",
        pid=211,
    )
    g.to_xml(tmp_path / "m.xml")
    back = Geometry.from_xml(tmp_path / "m.xml")
    assert back.layers == g.layers and (back.particle, back.pid) == ("pion", 211)
    assert [layer.kind for layer in back.layers] == ["polar", "cartesian", "empty"]
    with pytest.raises(ConfigError, match=r"layers \[7\].*depth_x0"):
        _ = back.depths_x0


def test_round_trip_keeps_full_precision(tmp_path):
    g = Geometry((Layer(0, depth_x0=1.23456789, x_edges=(0.0, 1.23456789, 2.5),
                        y_edges=(0.0, 1.0)),))  # fmt: skip
    g.to_xml(tmp_path / "p.xml")
    assert Geometry.from_xml(tmp_path / "p.xml").layers == g.layers


def test_a_file_with_several_particles_needs_a_choice(tmp_path):
    path = tmp_path / "two.xml"
    path.write_text(
        '<Bins><Bin name="photon" pid="22"><Layer id="0" r_edges="0,1,2" n_bin_alpha="3"/></Bin>'
        '<Bin name="pion" pid="211"><Layer id="0" r_edges="0,5" n_bin_alpha="1"/></Bin></Bins>'
    )
    with pytest.raises(InputError, match=r"several particles \['photon', 'pion'\].*particle="):
        Geometry.from_xml(path)
    pion = Geometry.from_xml(path, particle="pion")
    assert (pion.pid, pion.n_voxels) == (211, 1)
    assert Geometry.from_xml(path, particle="photon").n_voxels == 6
    with pytest.raises(InputError, match=r"no <Bin> element for particle 'kaon'.*'photon', 'pion'"):
        Geometry.from_xml(path, particle="kaon")


BAD_LAYERS = [
    ('r_edges="0,a,2"', "r_edges must be comma-separated numbers"),
    ('r_edges="0,2,1"', "r_edges must increase strictly"),
    ('x_edges="0,1" y_edges="1,1"', "y_edges must increase strictly"),
    ('x_edges="0,1"', "needs x_edges and y_edges"),
    ('r_edges="0,1" x_edges="0,1" y_edges="0,1"', "both r_edges and x_edges"),
    ('r_edges="0,1" n_bin_alpha="0"', "n_bin_alpha must be >= 1"),
    ('r_edges="0,1" n_bin_alpha="two"', "layer 4"),
    ('r_edges="-1,1"', "r_edges must start at >= 0"),
    ('r_edges="0,1" depth_x0="-2"', "depth_x0 must be >= 0"),
    ('r_edges="0,1" depth_x0="deep"', "layer 4"),
]


@pytest.mark.parametrize(("attrs", "message"), BAD_LAYERS, ids=[m for _, m in BAD_LAYERS])
def test_bad_layer_attributes_are_input_errors_naming_the_file_and_layer(tmp_path, attrs, message):
    path = tmp_path / "bad.xml"
    path.write_text(f'<Bins><Bin name="photon"><Layer id="4" {attrs}/></Bin></Bins>')
    with pytest.raises(InputError, match=message) as info:
        Geometry.from_xml(path)
    assert "layer 4" in str(info.value)


def test_bad_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no binning XML at .*check the path"):
        Geometry.from_xml(tmp_path / "absent.xml")
    broken = tmp_path / "broken.xml"
    broken.write_text('<Bins><Bin name="photon"><Layer id="0" r_edges="0,1"></Bins>')
    with pytest.raises(InputError, match="broken.xml is not valid XML"):
        Geometry.from_xml(broken)
    empty = tmp_path / "empty.xml"
    empty.write_text("<Bins></Bins>")
    with pytest.raises(InputError, match="no <Bin> element"):
        Geometry.from_xml(empty)
    no_voxels = tmp_path / "dead.xml"
    no_voxels.write_text('<Bins><Bin name="photon"><Layer id="0" r_edges="0"/></Bin></Bins>')
    with pytest.raises(InputError, match="no voxels"):
        Geometry.from_xml(no_voxels)
    no_layers = tmp_path / "nolayers.xml"
    no_layers.write_text('<Bins><Bin name="photon"></Bin></Bins>')
    with pytest.raises(InputError, match="at least one layer"):
        Geometry.from_xml(no_layers)


def test_layer_and_geometry_checks_in_python():
    with pytest.raises(InputError, match="both r_edges and x_edges"):
        Layer(0, r_edges=(0.0, 1.0), x_edges=(0.0, 1.0), y_edges=(0.0, 1.0))
    with pytest.raises(InputError, match="at least one layer"):
        Geometry(())
    with pytest.raises(InputError, match="every layer is empty"):
        Geometry((Layer(0), Layer(1, r_edges=(0.0,))))


def test_readout_threshold_from_the_builtin_files_and_through_a_round_trip(tmp_path):
    assert Geometry.builtin("ds2").threshold_mev == pytest.approx(0.01515)
    assert Geometry.builtin("ds3").threshold_mev == pytest.approx(0.01515)
    assert Geometry.builtin("calogan").threshold_mev == 0.0  # none unless the file says so
    g = Geometry((Layer(0, 1.0, r_edges=(0.0, 5.0), n_alpha=2),), material="tungsten-silicon",
                 threshold_mev=0.02)  # fmt: skip
    g.to_xml(tmp_path / "t.xml")
    back = Geometry.from_xml(tmp_path / "t.xml")
    assert (back.threshold_mev, back.material) == (0.02, "tungsten-silicon")


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_bad_readout_threshold_is_refused(value):
    with pytest.raises(InputError, match="threshold_mev must be a finite energy >= 0"):
        Geometry((Layer(0, 1.0, r_edges=(0.0, 5.0)),), threshold_mev=value)


def test_readout_threshold_in_xml_must_be_a_number(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text('<Bins><Bin name="photon" pid="22" threshold_mev="15keV">'
                    '<Layer id="0" r_edges="0,1,2" n_bin_alpha="3"/></Bin></Bins>')  # fmt: skip
    with pytest.raises(InputError, match=r"threshold_mev must be a number, got '15keV'"):
        Geometry.from_xml(path)
