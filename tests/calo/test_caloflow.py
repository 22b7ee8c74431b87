"""CaloFlow: preprocessing round trips, training that learns, checkpoints, errors.

Data: the toy simulator in the CaloGAN-like geometry (504 voxels), with tiny
flows so that every test stays within seconds.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
import torch

from hepflows.calo import CaloFlow, Showers, ToySimulator, TrainingPlan, train
from hepflows.calo.caloflow import _expit, _logit
from hepflows.errors import CheckpointError, ConfigError, InputError

TINY = {"transforms": 1, "bins": 4, "hidden": [16]}


@cache
def _showers(n: int, seed: int) -> Showers:
    return ToySimulator("calogan", seed=seed).simulate(n)


def _model(**kw) -> CaloFlow:
    return CaloFlow("calogan", flow1={"transforms": 2, "bins": 4, "hidden": [16]}, flow2=TINY, **kw)


def _plan(**kw) -> TrainingPlan:
    base = TrainingPlan(epochs={"flow1": 2, "teacher": 2, "student": 2}, batch_size=200)
    return replace(base, **kw)


def test_u_variables_round_trip_layer_energies() -> None:
    showers = _showers(300, 1)
    model = _model()
    model.fit_preprocessing(showers)
    vox, e = model.tensors(showers)
    layers = model._layer_sums(vox)
    u = model._u_variables(layers, e)
    assert u.shape == (300, 3) and (u >= 0).all() and (u <= 1).all()
    back = model._layers_from_u(u, e)
    assert torch.allclose(back, layers, rtol=1e-4, atol=1e-2)
    # The logit of the preprocessing is inverted by _expit.
    x = torch.rand(1000)
    assert torch.allclose(_expit(_logit(x)), x, atol=1e-5)


def test_training_pairs_are_standardised_and_finite() -> None:
    showers = _showers(600, 2)
    model = _model()
    model.fit_preprocessing(showers)
    vox, e = model.tensors(showers)
    y1, c1 = model.flow1_data(vox, e, torch.Generator().manual_seed(0))
    y2, c2 = model.flow2_data(vox, e, torch.Generator().manual_seed(0))
    # Flow I: 3 u-variables + 2 x 3 centres + 2 x 3 widths; flow II's context:
    # energy, 3 layer energies and the 12 moments.
    assert y1.shape == (600, 15) and c1.shape == (600, 1)
    assert y2.shape == (600, 504) and c2.shape == (600, 16)
    for t in (y1, c1, y2, c2):
        assert torch.isfinite(t).all()
    assert y1.mean(0).abs().max() < 0.2 and (y1.std(0) - 1).abs().max() < 0.2
    assert y2.mean(0).abs().max() < 0.3
    assert (0 <= c1).all() and (c1 <= 1).all()


def test_lateral_moments_are_the_evaluation_features() -> None:
    from hepflows.calo.features import high_level_features

    showers = _showers(300, 1)
    model = _model()
    vox, _ = model.tensors(showers)
    m = model._lateral_moments(vox, model._layer_sums(vox)).double().numpy()
    f = high_level_features(showers)
    for li in range(3):
        lit = f[f"E_{li}"] > 1.0  # the model clamps empty layers' energy at the noise level
        for k, col in (("EC_x", 2 * li), ("EC_y", 2 * li + 1),
                       ("width_x", 6 + 2 * li), ("width_y", 7 + 2 * li)):  # fmt: skip
            np.testing.assert_allclose(m[lit, col], f[f"{k}_{li}"][lit], atol=0.05, rtol=1e-3)


@pytest.mark.parametrize("moments, d1, d2", [(0, 3, 4), (1, 9, 10), (2, 15, 16)])
def test_moments_set_the_flow_dimensions(moments: int, d1: int, d2: int) -> None:
    model = _model(moments=moments)
    model.fit_preprocessing(_showers(300, 1))
    vox, e = model.tensors(_showers(300, 1))
    assert model.flow1_data(vox, e)[0].shape == (300, d1)
    assert model.flow2_data(vox, e)[1].shape == (300, d2)
    assert model.config["moments"] == moments
    gen = model.sample(e[:20].numpy(), "student")
    assert gen.voxels.shape == (20, 504)
    with pytest.raises(ConfigError, match="moments"):
        _model(moments=3)


def test_flow2_follows_the_centre_it_is_conditioned_on() -> None:
    """Flow II trained with centres as context moves the layer-1 shower with them."""
    from hepflows.calo.features import high_level_features

    showers = _showers(3000, 6)
    model = CaloFlow("calogan", flow1={"transforms": 1, "bins": 4, "hidden": [16]},
                     flow2={"transforms": 2, "bins": 4, "hidden": [64]}, student=False,
                     moments=1)  # fmt: skip
    train(model, showers, _plan(epochs={"flow1": 1, "teacher": 4, "student": 0}), progress=False)
    vox, e = model.tensors(showers[:500])
    _, c = model.flow2_data(vox, e, torch.Generator().manual_seed(0))
    shifted = {}
    for sign in (-1.0, 1.0):
        c_s = c.clone()
        c_s[:, 4 + 2] = sign  # EC_x of layer 1, in standard deviations
        with torch.no_grad():
            y = model.teacher.sample(len(c_s), c_s, generator=torch.Generator().manual_seed(1))
        frac = _expit(y * model.y2_std + model.y2_mean).clamp_min(0)
        gen = Showers(showers.energy[:500], (frac * 1e3).double().numpy(), showers.geometry)
        shifted[sign] = high_level_features(gen)["EC_x_1"].mean()
    # +-1 standard deviation of EC_x_1 is about +-12 mm (toy photons, 5 mm jitter).
    assert shifted[1.0] - shifted[-1.0] > 8.0, shifted


def test_untrained_model_refuses_to_sample() -> None:
    with pytest.raises(ConfigError, match="fit_preprocessing"):
        _model().sample(np.full(3, 5e4))


def test_errors_name_the_problem() -> None:
    model = _model(student=False)
    model.fit_preprocessing(_showers(300, 1))
    with pytest.raises(ConfigError, match="teacher"):
        model.sample(np.full(3, 5e4), model="gan")
    with pytest.raises(ConfigError, match="no student"):
        model.sample(np.full(3, 5e4), model="student")
    with pytest.raises(InputError, match="training range"):
        model.sample(np.full(3, 1e7))
    with pytest.raises(InputError, match="> 0"):
        model.sample(np.array([5e4, -1.0]))
    other = ToySimulator("calochallenge_ds1_photon", seed=0).simulate(10)
    with pytest.raises(InputError, match="geometry"):
        model.tensors(other)
    with pytest.raises(ConfigError, match="epochs"):
        train(model, _showers(300, 1), _plan(epochs={"flow1": -1}), progress=False)
    with pytest.raises(InputError, match="fewer than one batch"):
        train(model, _showers(300, 1), _plan(batch_size=500), progress=False)


def test_flows_learn_the_showers_and_sample_consistent_showers() -> None:
    showers = _showers(2000, 3)
    model = _model()
    history = train(model, showers, _plan(epochs={"flow1": 4, "teacher": 3, "student": 2}),
                    progress=False)  # fmt: skip
    for stage in ("flow1", "teacher"):
        val = history[stage]["val"]
        assert val[-1] < val[0], (stage, val)
    # Flow I has learnt E_dep / E_inc: its mean within 5 % of the data's.
    e = showers.energy[:1000]
    for which in ("teacher", "student"):
        gen = model.sample(e, which, generator=torch.Generator().manual_seed(1))
        assert gen.voxels.shape == (1000, 504) and (gen.voxels >= 0).all()
        ratio = gen.voxels.sum(1) / gen.energy
        ref = showers.voxels[:1000].sum(1) / e
        assert abs(ratio.mean() / ref.mean() - 1) < 0.05, (which, ratio.mean(), ref.mean())
        # Layer energies come from flow I: both flow II models share them per draw.
        assert np.isfinite(gen.voxels).all()


def test_save_load_reproduces_samples(tmp_path) -> None:
    model = _model()
    train(model, _showers(1000, 4), _plan(epochs={"flow1": 1, "teacher": 1, "student": 1}),
          progress=False)  # fmt: skip
    path = tmp_path / "m.safetensors"
    model.save(path, {"note": "x"})
    loaded, extra = CaloFlow.load(path)
    assert extra == {"note": "x"}
    e = np.linspace(2e3, 9e4, 50)
    for which in ("teacher", "student"):
        a = model.sample(e, which, generator=torch.Generator().manual_seed(5))
        b = loaded.sample(e, which, generator=torch.Generator().manual_seed(5))
        np.testing.assert_allclose(a.voxels, b.voxels, rtol=1e-5, atol=1e-6)
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    with pytest.raises(CheckpointError):
        CaloFlow.load(tmp_path / "bad.safetensors")


def test_the_geometry_readout_threshold_cuts_samples_and_survives_save_load(tmp_path) -> None:
    """A detector threshold above the fitted one is the sampling cut: no generated voxel
    reads between 0 and it; saving keeps the geometry's threshold and material."""
    from hepflows.calo import Geometry

    geometry = replace(Geometry.builtin("calogan"), threshold_mev=5.0, material="lead-argon")
    showers = ToySimulator(geometry, seed=3).simulate(300)
    assert not ((showers.voxels > 0) & (showers.voxels < 5.0)).any()
    model = CaloFlow(geometry, flow1={"transforms": 1, "bins": 4, "hidden": [16]}, flow2=TINY,
                     moments=0)  # fmt: skip
    model.fit_preprocessing(showers)
    assert float(model.threshold_mev) == 5.0  # the fitted heuristic is far below 5 MeV
    gen = model.sample(np.full(200, 5e4), generator=torch.Generator().manual_seed(1)).voxels
    assert not ((gen > 0) & (gen < 5.0)).any() and (gen >= 5.0).any()
    model.save(tmp_path / "t.safetensors")
    loaded, _ = CaloFlow.load(tmp_path / "t.safetensors")
    assert (loaded.geometry.threshold_mev, loaded.geometry.material) == (5.0, "lead-argon")


def test_models_saved_before_moments_still_load(tmp_path) -> None:
    """A file of CaloFlow's original form without the moment buffers or config key loads."""
    import json

    from safetensors.torch import load_file, safe_open, save_file

    model = _model(moments=0)
    model.fit_preprocessing(_showers(300, 1))
    path = tmp_path / "new.safetensors"
    model.save(path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    config = json.loads(meta["config"])
    del config["moments"]
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith("moment_")}
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={**meta, "config": json.dumps(config)})
    loaded, _ = CaloFlow.load(old)
    assert loaded.moments == 0 and loaded.teacher.config["context"] == 4
    e = np.full(5, 2e4)
    a = model.sample(e, generator=torch.Generator().manual_seed(2)).voxels
    b = loaded.sample(e, generator=torch.Generator().manual_seed(2)).voxels
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class _Cut(Exception):
    pass


def test_interrupted_training_resumes_to_the_same_model(tmp_path) -> None:
    showers = _showers(1000, 5)
    plan = _plan(epochs={"flow1": 2, "teacher": 3, "student": 2})
    full = _model(seed=1)
    train(full, showers, plan, progress=False)

    ckpt = tmp_path / "ckpt.safetensors"
    lines: list[str] = []

    def cut_after_teacher_epoch_2(line: str) -> None:
        lines.append(line)
        if line.startswith("teacher epoch 2/"):
            raise _Cut

    first = _model(seed=1)  # the same initial weights as `full`
    with pytest.raises(_Cut):
        train(first, showers, plan, checkpoint=ckpt, progress=False,
              log=cut_after_teacher_epoch_2)  # fmt: skip
    resumed = _model()
    history = train(resumed, showers, plan, checkpoint=ckpt, progress=False, log=lines.append)
    assert [len(history[s]["val"]) for s in ("flow1", "teacher", "student")] == [2, 3, 2]
    assert "teacher epoch 3/3" in lines[-3]  # resumed at the third teacher epoch
    for k, v in full.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-5), k
    # Done: a second call returns at once; another plan on that checkpoint is refused.
    assert train(_model(), showers, plan, checkpoint=ckpt, progress=False) == history
    with pytest.raises(CheckpointError, match="plan"):
        train(_model(), showers, _plan(batch_size=100), checkpoint=ckpt, progress=False)


def test_voxel_noise_and_alpha_are_options_kept_by_save_load(tmp_path) -> None:
    """noise_mev sets the training noise on the voxels (the empty voxels' spike: all noisy
    voxels of empty layers lie below it); alpha the logit regulator; both are saved."""
    model = _model(moments=0, noise_mev=1.5e-5, alpha=1e-7)
    showers = _showers(300, 1)
    model.fit_preprocessing(showers)
    vox, e = model.tensors(showers)
    noisy, _, _ = model._raw(vox, e, torch.Generator().manual_seed(0))
    empty = vox == 0
    assert (noisy[empty] > 0).all() and (noisy[empty] < 1.5e-5).all()
    model.save(tmp_path / "n.safetensors")
    loaded, _ = CaloFlow.load(tmp_path / "n.safetensors")
    assert (loaded.noise_mev, loaded.alpha) == (1.5e-5, 1e-7)
    a = model.sample(np.full(5, 2e4), generator=torch.Generator().manual_seed(2)).voxels
    b = loaded.sample(np.full(5, 2e4), generator=torch.Generator().manual_seed(2)).voxels
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert (_model().noise_mev, _model().alpha) == (1e-3, 1e-6)  # CaloFlow's constants


@pytest.mark.parametrize(("kw", "match"), [({"noise_mev": 0.0}, "noise_mev must be a positive"),
                                           ({"alpha": 1e-9}, "alpha must lie in")])  # fmt: skip
def test_bad_voxel_noise_or_alpha_names_the_fix(kw, match) -> None:
    with pytest.raises(ConfigError, match=match):
        _model(**kw)


def test_voxel_noise_must_lie_well_below_the_readout_threshold() -> None:
    """Noise at the threshold would read as deposits in every empty voxel (a benchmark run
    with 15 keV noise on ds2, threshold 15.15 keV, lit 64 % of layer 5's voxels, not 3 %)."""
    with pytest.raises(ConfigError, match=r"not 10x below the readout threshold of .*e\.g\. 1\.5"):
        CaloFlow("ds2", noise_mev=0.015, student=False, seed=0)
    assert CaloFlow("ds2", noise_mev=1.5e-5, student=False, seed=0).noise_mev == 1.5e-5


def test_anchored_voxel_logits_invert_and_fix_the_threshold_whatever_the_layer_energy(
    tmp_path,
) -> None:
    """anchor=True models log(E_voxel / noise): a voxel of energy e maps to the same place
    in a layer of 10 MeV or of 10 GeV (unanchored, the logit fractions differ by about
    log 1000, and the noise of the 10 GeV layer sits on alpha's floor); the inverse gives
    the fractions back; the option is saved."""
    noise = 1e-4
    model = _model(moments=0, noise_mev=noise, anchor=True)
    layer = torch.tensor([[10.0], [1e4]])
    vox = torch.tensor([[0.5 * noise, 0.02, 1.0]]).expand(2, 3)  # noise, faint, lit (MeV)
    y = model.voxel_logits(vox, layer)
    torch.testing.assert_close(y, torch.log(vox / noise))
    torch.testing.assert_close(model.voxel_fractions(y, layer), vox / layer, rtol=1e-5, atol=0)
    floor = model.voxel_logits(torch.zeros(1, 1), layer[:1])  # exact zeros: a finite floor
    assert torch.isfinite(floor).all() and floor.item() == pytest.approx(math.log(1e-3))
    plain = _model(moments=0, noise_mev=noise)
    gap = plain.voxel_logits(vox, layer)[0] - plain.voxel_logits(vox, layer)[1]
    assert (gap[1:] > 6.5).all()  # unanchored the deposits move by ~log(1000) = 6.9
    model.save(tmp_path / "a.safetensors")
    assert CaloFlow.load(tmp_path / "a.safetensors")[0].anchor is True
    assert _model().anchor is False  # CaloFlow's fractions by default


def test_anchored_variables_are_scaled_into_the_splines_domain() -> None:
    """With anchor=True flow II's standardised training variables lie in [-4, 4] (inside
    the splines' +-5, where a flow can put mass), every voxel of a layer scaled alike."""
    from hepflows.calo.caloflow import ANCHOR_SPAN

    model = _model(moments=0, noise_mev=1e-4, anchor=True)
    showers = _showers(300, 1)
    model.fit_preprocessing(showers)
    vox, e = model.tensors(showers)
    y, _ = model.flow2_data(vox, e, torch.Generator().manual_seed(1))
    assert y.min() >= -ANCHOR_SPAN - 1e-4 and y.max() <= ANCHOR_SPAN
    assert y.max() > 0.5 * ANCHOR_SPAN  # the range is used, not squeezed
    for sl in model.geometry.slices:
        if sl.stop > sl.start:
            assert len(set(model.y2_std[sl].tolist())) == 1
