"""L2LFlow: layer-to-layer flows on granular geometries (shared layer flow, layer by layer)."""

import numpy as np
import pytest
import torch

from calo_mini import MINI, mini_showers
from hepflows import CheckpointError, ConfigError
from hepflows.calo import CaloFlow, ToySimulator, TrainingPlan
from hepflows.calo.geometry import Geometry
from hepflows.calo.l2lflow import L2LFlow, layer_shape
from hepflows.calo.training import train

_showers = mini_showers


@pytest.fixture(scope="module")
def showers():
    return _showers(2000)


@pytest.fixture(scope="module", params=["maf", "conv"])
def trained(request, showers):
    """Energy flow and layer flow trained on 2000 toy electrons (moments off: the layer flow
    sees lateral position only through the previous layer); the MAF also distilled briefly."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    conv = request.param == "conv"
    flow2 = dict(transforms=2, hidden=[8, 8]) if conv else dict(transforms=2, hidden=[64])
    model = L2LFlow(MINI, flow1=dict(transforms=2, hidden=[32]), flow2=flow2, moments=0,
                    seed=0, layer_flow=request.param, student=not conv)  # fmt: skip
    plan = TrainingPlan(epochs={"flow1": 2, "teacher": 6, "student": 0 if conv else 1},
                        batch_size=200)  # fmt: skip
    history = train(model, showers, plan, progress=False)
    return model, showers, history


def test_layer_shape_and_geometry_errors():
    assert layer_shape(Geometry.resolve("ds2")) == (16, 9)
    assert layer_shape(Geometry.resolve("ds3")) == (50, 18)
    with pytest.raises(ConfigError, match="one shape"):
        L2LFlow("calogan")


def test_conv_layer_flow_settings():
    m = L2LFlow("ds2", layer_flow="conv", student=False, seed=0)
    assert m.teacher.config["grid"] == [16, 9] and m.teacher.config["grid_context"] == 1
    assert m.config["layer_flow"] == "conv"
    with pytest.raises(ConfigError, match="no student"):
        L2LFlow(MINI, layer_flow="conv")
    with pytest.raises(ConfigError, match="layer_flow"):
        L2LFlow(MINI, layer_flow="unet", student=False)


def test_ds2_model_sizes():
    m = L2LFlow("ds2", seed=0)
    assert m.n_layers == 45 and m.layer_voxels == 144 and m.flow2_dims == 144
    assert m.teacher.config["features"] == 144
    assert m.layer_context_size == 3 + 45 + 144  # E_inc, E_l, E_(l-1), one-hot, prev
    assert m.flow1.config["features"] == 45  # no moments by default: a 45-D energy flow
    with_moments = L2LFlow("ds2", moments=2, student=False, seed=0)
    assert with_moments.layer_context_size == 3 + 45 + 144 + 4  # and this layer's 2 x 2
    assert with_moments.flow1.config["features"] == 45 * 5
    assert m.student is not None and m.config["model"] == "l2lflow"


def test_layer_data_shapes_and_invertibility():
    """Every layer of every shower is one row; the layer flow inverts each row exactly."""
    showers = _showers(40)
    m = L2LFlow(MINI, flow2=dict(transforms=2, hidden=[16]), seed=1)
    m.fit_preprocessing(showers)
    vox, e = m.tensors(showers)
    y, c = m.flow2_data(vox, e, torch.Generator().manual_seed(0))
    assert y.shape == (40 * 6, 32) and c.shape == (40 * 6, m.layer_context_size)
    rows = c.reshape(40, 6, -1)
    onehot = rows[:, :, 3 : 3 + 6]
    assert torch.equal(onehot, torch.eye(6).expand(40, 6, 6))
    prev = rows[:, :, -32:]  # the previous layer comes last
    assert torch.equal(prev[:, 0], torch.zeros(40, 32))  # nothing before the first layer
    torch.testing.assert_close(prev[:, 1:], y.reshape(40, 6, 32)[:, :-1])  # teacher forcing
    with torch.no_grad():
        z, _ = m.teacher.to_latent(y, c)
        back, _ = m.teacher.to_data(z, c)
        assert torch.isfinite(m.teacher.log_prob(y, c)).all()
    torch.testing.assert_close(back, y, atol=1e-4, rtol=1e-4)


def test_training_sampling_save_load(trained, tmp_path):
    model, showers, history = trained
    val = history["teacher"]["val"]
    assert val[-1] < val[0]  # it learns
    gen = torch.Generator().manual_seed(3)
    out = model.sample(np.full(200, 2e4), generator=gen)
    assert out.voxels.shape == (200, MINI.n_voxels) and np.isfinite(out.voxels).all()
    assert (out.voxels >= 0).all() and (out.voxels.sum(1) > 0).all()
    # E_dep / E_inc as the simulator's at that energy (6 X0 deep: most energy leaks out)
    truth = ToySimulator(MINI, particle="electron", max_spots=400, seed=9).simulate(
        200, energies_mev=2e4
    )
    ratio, true_ratio = np.median(out.voxels.sum(1)), np.median(truth.voxels.sum(1))
    assert abs(ratio / true_ratio - 1) < 0.25
    if model.student is not None:
        student = model.sample(np.full(50, 2e4), model="student", generator=gen)
        assert np.isfinite(student.voxels).all()
    path = tmp_path / "l2l.safetensors"
    model.save(path)
    back, _ = L2LFlow.load(path)
    a = model.sample(np.full(20, 1e4), generator=torch.Generator().manual_seed(5))
    b = back.sample(np.full(20, 1e4), generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(a.voxels, b.voxels, rtol=1e-5, atol=1e-5)
    with pytest.raises(CheckpointError):
        CaloFlow.load(path)


def test_moving_the_previous_layer_moves_the_generated_layer(trained):
    """The layer flow's previous-layer conditioning: previous layers whose centre of energy
    lies right (x > 2 mm) or left (x < -2 mm) give generated layers on the same side."""
    model, showers, _ = trained
    xy = torch.as_tensor(MINI.layers[0].centres(), dtype=torch.float32)

    def centre_x(v):
        return (v * xy[:, 0]).sum(1) / v.sum(1)

    prev = torch.as_tensor(showers.voxels[:, MINI.slices[2]], dtype=torch.float32)
    cx = centre_x(prev)
    right, left = prev[cx > 2.0][:300], prev[cx < -2.0][:300]
    n = min(len(right), len(left))
    assert n >= 100
    e, e_layer = torch.full((n,), 2e4), torch.full((n,), 3e3)
    gen = torch.Generator().manual_seed(0)
    out_r = model.sample_layer(3, e, e_layer, right[:n], generator=gen)
    out_l = model.sample_layer(3, e, e_layer, left[:n], generator=gen)
    torch.testing.assert_close(out_r.sum(1), e_layer)
    shift = centre_x(out_r).mean() - centre_x(out_l).mean()
    shift_prev = centre_x(right[:n]).mean() - centre_x(left[:n]).mean()
    # measured with these tiny flows: the MAF follows with ~0.7 of the shift, the
    # convolutional flow (2 blocks of 8 channels, 6 epochs) with ~0.2 (> 5 sigma of the mean)
    assert shift > (0.5 if model.layer_flow == "maf" else 0.1) * shift_prev
    with pytest.raises(ConfigError, match="previous"):
        model.sample_layer(3, e, e_layer)


def test_load_model_dispatches_on_the_file_header(trained, tmp_path):
    from hepflows.calo.models import load_model, model_class

    model, _, _ = trained
    model.save(tmp_path / "l2l.safetensors")
    CaloFlow(MINI, flow1=dict(transforms=1, hidden=[8]), flow2=dict(transforms=1, hidden=[8]),
             seed=0).save(tmp_path / "cf.safetensors")  # fmt: skip
    assert type(load_model(tmp_path / "l2l.safetensors")[0]) is L2LFlow
    assert type(load_model(tmp_path / "cf.safetensors")[0]) is CaloFlow
    assert model_class("l2l") is L2LFlow
    with pytest.raises(ConfigError, match="unknown shower model"):
        model_class("conv")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"a": "b"})
    with pytest.raises(CheckpointError, match="hepflows-caloflow' or 'hepflows-l2lflow"):
        load_model(tmp_path / "other.safetensors")


def test_layer_flow_bound_default_and_files_saved_without_it(tmp_path):
    """A MAF layer flow's bound is a setting (default 5, the flows'); a file saved without
    "bound" in its flow2 config loads with the bound it was trained with, 5, and samples
    exactly as the model that wrote it; a file with bound 10 keeps 10."""
    import json

    from safetensors.torch import load_file, safe_open, save_file

    from hepflows.calo.l2lflow import LAYER_DEFAULTS, LEGACY_BOUND

    assert LAYER_DEFAULTS["bound"] == LEGACY_BOUND == 5.0
    assert L2LFlow(MINI, seed=0).teacher.config["bound"] == 5.0
    wide = L2LFlow(MINI, flow2=dict(bound=10.0, hidden=[16]), seed=0)
    wide.fit_preprocessing(_showers(300))
    wide.save(tmp_path / "wide.safetensors")
    assert L2LFlow.load(tmp_path / "wide.safetensors")[0].teacher.config["bound"] == 10.0
    model = L2LFlow(MINI, flow1=dict(transforms=2, hidden=[16]), flow2=dict(bound=LEGACY_BOUND,
                    hidden=[16]), seed=1)  # fmt: skip
    model.fit_preprocessing(_showers(300))
    path = tmp_path / "new.safetensors"
    model.save(path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    config = json.loads(meta["config"])
    del config["flow2"]["bound"]
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata={**meta, "config": json.dumps(config)})
    loaded, _ = L2LFlow.load(old)
    assert loaded.teacher.config["bound"] == LEGACY_BOUND
    assert loaded.config == model.config  # a checkpoint of it resumes with the same settings
    e = np.full(5, 2e4)
    a = model.sample(e, generator=torch.Generator().manual_seed(2)).voxels
    b = loaded.sample(e, generator=torch.Generator().manual_seed(2)).voxels
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
