"""The classifier tests: converged, standardised, three views, and a GBDT cross-check.

Blob showers (``tests/calo_blobs.py``) for the fast checks; the toy simulator
for the calibration of the test itself (two samples of one simulator give
AUC 0.5 within its statistical error, a 5 % miscalibrated layer is seen).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from calo_blobs import FAST, GEOMETRY, V, samples
from hepflows.calo import (
    ClassifierResult,
    Geometry,
    Showers,
    ToySimulator,
    classifier_test,
    evaluate,
    gbdt_test,
)
from hepflows.calo.classifier import VIEWS, classifier_inputs
from hepflows.calo.classifier import auc_null_sigma as auc_sigma
from hepflows.calo.features import feature_matrix
from hepflows.errors import ConfigError, HepflowsWarning, InputError

FAST_GBDT = {"max_iter": 200, "patience": 10}


def test_auc_null_sigma_matches_a_simulation() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = np.r_[np.ones(300), np.zeros(300)]
    aucs = [roc_auc_score(y, rng.random(600)) for _ in range(400)]
    assert np.std(aucs) == pytest.approx(auc_sigma(300), rel=0.15)


# ------------------------------------------------------------------ inputs
def test_views_have_the_documented_columns() -> None:
    s = samples()["a"][:10]
    low, log, high = (classifier_inputs(s, v) for v in VIEWS)
    assert low.shape == log.shape == (10, V + 1) and low.dtype == np.float32
    np.testing.assert_allclose(low[:, :V], s.voxels / s.energy[:, None], rtol=1e-6)
    np.testing.assert_allclose(log[:, :V], np.log10(1 + s.voxels * 1e3), rtol=1e-5)
    np.testing.assert_allclose(low[:, V], np.log10(s.energy), rtol=1e-6)
    features = feature_matrix(s)
    assert (
        high.shape == (10, features.shape[1] + 4) and np.isfinite(high).all()
    )  # + E_dep, 3 layers
    np.testing.assert_allclose(high[:, -4], s.voxels.sum(1) / s.energy, rtol=1e-5)
    np.testing.assert_allclose(high[:, :-4], features, rtol=1e-5)
    with pytest.raises(ConfigError, match="level"):
        classifier_inputs(s, "medium")


def test_inputs_are_standardised_so_the_scale_of_the_voxels_does_not_matter() -> None:
    """The bug of issue 24: voxel/E_inc ~ 1e-3 left the MLP under-trained.

    Scaling every voxel by a constant changes voxel/E_inc by that constant;
    after standardisation the MLP sees the same numbers and must give the same AUC.
    """
    s = samples()
    opts = {**FAST, "epochs": 6, "patience": None, "max_showers": 600}

    def scaled(x: Showers, c: float) -> Showers:
        return Showers(x.energy, x.voxels * c, x.geometry)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HepflowsWarning)  # 6 epochs: a cap, on purpose
        base = classifier_test(s["a"], s["wide"], "low", **opts)
        tiny = classifier_test(scaled(s["a"], 1e-3), scaled(s["wide"], 1e-3), "low", **opts)
    assert tiny.auc == pytest.approx(base.auc, abs=2e-3)


# ------------------------------------------------------------------ the MLP
@pytest.mark.parametrize("level", VIEWS)
def test_classifier_cannot_tell_a_generator_from_itself(level: str) -> None:
    s = samples()
    same = classifier_test(s["a"], s["b"], level, seed=0, **FAST)
    assert isinstance(same, ClassifierResult) and same.level == level
    assert same.classifier == "mlp"
    assert abs(same.auc - 0.5) < 0.05, same.summary()
    # isotonic calibration on 400 + 400 validation showers biases the JSD low by ~0.03
    assert abs(same.jsd) < 0.1, same.summary()
    assert abs(same.accuracy - 0.5) < 0.06
    assert same.n_train == 2400 and same.n_test == 800
    # stopped on the plateau before the cap (the best epoch is the lowest validation
    # loss; the plateau counts only decreases above the tolerance)
    assert same.converged and same.best_epoch <= same.epochs < FAST["epochs"]
    wide = classifier_test(s["a"], s["wide"], level, seed=0, **FAST)
    assert wide.auc > 0.95 and wide.converged, wide.summary()
    assert wide.jsd > 0.6 and wide.accuracy > 0.9, wide.summary()
    assert "AUC" in wide.summary() and json.dumps(wide.to_dict())


def test_reaching_the_epoch_cap_while_improving_warns_and_says_not_converged() -> None:
    s = samples()
    with pytest.warns(HepflowsWarning, match="cap of 2 epochs"):
        capped = classifier_test(s["a"], s["wide"], "low", **{**FAST, "epochs": 2, "lr": 1e-5})
    assert not capped.converged and capped.epochs == 2 and "NOT converged" in capped.summary()
    with pytest.warns(HepflowsWarning):  # no patience: converged only if best is >= 10 before end
        full = classifier_test(s["a"], s["b"], "low", **{**FAST, "patience": None, "epochs": 4})
    assert full.epochs == 4 and not full.converged


def test_classifier_is_seeded_and_subsamples() -> None:
    s = samples()
    opts = {**FAST, "max_showers": 500}
    r1 = classifier_test(s["a"], s["wide"], "high", seed=3, **opts)
    r2 = classifier_test(s["a"], s["wide"], "high", seed=3, **opts)
    assert r1 == r2
    assert r1.n_train == 600 and r1.n_test == 200


def test_classifier_input_errors() -> None:
    s = samples()
    with pytest.raises(InputError, match="at least 100"):
        classifier_test(s["a"], s["b"][:99])
    with pytest.raises(InputError, match="at least 100"):
        classifier_test(s["a"][:50], s["b"])
    with pytest.raises(InputError, match="at least 100"):
        gbdt_test(s["a"][:50], s["b"])
    other = Geometry.builtin("calochallenge-ds1-photon")
    foreign = Showers(np.ones(200), np.zeros((200, other.n_voxels)), other)
    with pytest.raises(InputError, match="geometry"):
        classifier_test(s["a"], foreign)
    with pytest.raises(ConfigError, match="level"):
        classifier_test(s["a"], s["b"], "medium")
    with pytest.raises(ConfigError):
        classifier_test(s["a"], s["b"], epochs=0)
    with pytest.raises(ConfigError):
        gbdt_test(s["a"], s["b"], max_iter=0)


# ------------------------------------------------------------------ the GBDT
def test_gbdt_agrees_with_the_mlp_on_blobs() -> None:
    s = samples()
    same = gbdt_test(s["a"], s["b"], "low", **FAST_GBDT)
    assert same.classifier == "gbdt" and same.converged and same.epochs < FAST_GBDT["max_iter"]
    assert abs(same.auc - 0.5) < 4 * auc_sigma(400), same.summary()
    assert same.epochs == same.best_epoch + FAST_GBDT["patience"] or same.best_epoch == 1
    wide = gbdt_test(s["a"], s["wide"], "low", **FAST_GBDT)
    assert wide.auc > 0.95 and wide.accuracy > 0.9, wide.summary()
    assert gbdt_test(s["a"], s["wide"], "low", **FAST_GBDT) == wide  # seeded
    with pytest.warns(HepflowsWarning, match="cap of 3 iterations"):
        capped = gbdt_test(s["a"], s["wide"], "low", max_iter=3)
    assert not capped.converged


# ------------------------------------------------------------------ evaluate
def test_evaluate_reports_every_view_the_gbdt_and_convergence() -> None:
    s = samples()
    ref, models = s["a"][:600], {"same": s["b"][:600], "wide": s["wide"][:600]}
    report = evaluate(ref, models, **FAST, kpd_batch_size=200)
    json.dumps(report)
    assert report["classifier_converged"] is True and report["warnings"] == []
    for m in models:
        c = report["models"][m]["classifier"]
        assert set(c) == {"low", "log", "high", "gbdt"}
        assert c["gbdt"]["classifier"] == "gbdt" and c["gbdt"]["level"] == "low"
        assert report["models"][m]["auc_agreement"] <= 0.1
    wide = report["models"]["wide"]["classifier"]
    assert min(wide[k]["auc"] for k in wide) > 0.9


def test_evaluate_warns_when_the_classifiers_disagree_or_stop_at_the_cap() -> None:
    s = samples()
    ref, models = s["a"][:600], {"wide": s["wide"][:600]}
    # one epoch of a tiny MLP at a tiny rate cannot find what the GBDT finds
    with pytest.warns(HepflowsWarning) as record:
        report = evaluate(ref, models, levels=("low",), hidden=4, epochs=1, lr=1e-6,
                          kpd_batch_size=200)  # fmt: skip
    messages = " ".join(str(w.message) for w in record)
    assert "disagree" in messages and "cap" in messages
    assert report["classifier_converged"] is False and len(report["warnings"]) == 2
    with pytest.raises(ConfigError, match="levels"):
        evaluate(ref, models, levels=("top",))


# ------------------------------------------------------------------ calibration of the test
@pytest.fixture(scope="module")
def toy_photons() -> dict[str, Showers]:
    """Two independent samples of the toy simulator and a 5 % miscalibrated middle layer.

    (1 % is below what the test can see at these sizes: the toy's middle-layer
    energy varies by 4-15 % from shower to shower; see
    ``benchmarks/calo_classifier_check.py``.)
    """
    a = ToySimulator("calogan", seed=101).simulate(6000, progress=False)
    b = ToySimulator("calogan", seed=202).simulate(6000, progress=False)
    middle = GEOMETRY.slices[1]
    voxels = b.voxels.copy()
    voxels[:, middle] *= 1.05
    return {"a": a, "b": b, "b_scaled": Showers(b.energy, voxels, b.geometry)}


@pytest.mark.slow
@pytest.mark.parametrize("level", VIEWS)
def test_calibration_two_simulator_samples_are_indistinguishable(level, toy_photons) -> None:
    """AUC 0.5 within 3.5 sigma of its statistical error (1200 test showers per class)."""
    r = classifier_test(toy_photons["a"], toy_photons["b"], level, seed=1)
    assert r.converged and abs(r.auc - 0.5) < 3.5 * auc_sigma(1200), r.summary()


@pytest.mark.slow
def test_calibration_a_five_percent_layer_scaling_is_seen(toy_photons) -> None:
    """The check can fail: a 5 % scale of the middle layer's energy gives AUC well above 0.5."""
    r = classifier_test(toy_photons["a"], toy_photons["b_scaled"], "low", seed=1)
    assert r.converged and r.auc > 0.5 + 5 * auc_sigma(1200), r.summary()


def test_learning_rate_decays_on_validation_plateaus_unless_constant() -> None:
    """Indistinguishable samples plateau at once: the rate halves every 3 epochs."""
    from hepflows.calo.classifier import LR_DECAY, LR_FLOOR, PLATEAU

    s = samples()
    opts = {**FAST, "patience": None, "epochs": 3 * PLATEAU + 1}
    with warnings.catch_warnings():  # no patience: a short run counts as not converged
        warnings.simplefilter("ignore", HepflowsWarning)
        decayed = classifier_test(s["a"], s["b"], "high", **opts)
        constant = classifier_test(s["a"], s["b"], "high", lr_decay=None, **opts)
    lr = opts["lr"]
    assert lr * LR_FLOOR <= decayed.lr_final <= lr * LR_DECAY**2, decayed.summary()
    assert "final lr" in decayed.summary()
    assert constant.lr_final == pytest.approx(lr)
    with pytest.raises(ConfigError, match="lr_decay"):
        classifier_test(s["a"], s["b"], "high", lr_decay=1.5, **opts)
    assert gbdt_test(s["a"], s["b"], "high", **FAST_GBDT).lr_final is None
