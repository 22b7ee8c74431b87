"""Can a classifier tell generated showers from reference showers?

The CaloChallenge's strongest test (2410.21611): train a classifier on
reference (label 1) against generated (label 0) showers and quote its ROC AUC
on held-out showers (0.5: indistinguishable, 1: separable) and the JSD of its
calibrated output. Two classifiers, three input views:

* :func:`classifier_test`: the fixed-specification MLP (3 x 512 ReLU, batch
  1000, 60/20/20 split), Adam from 1e-3 halved on validation plateaus, trained
  until its validation loss stops improving;
* :func:`gbdt_test`: an independent cross-check, scikit-learn's
  ``HistGradientBoostingClassifier`` on the same split, also stopped on the
  validation loss;
* views (:data:`VIEWS`): ``"low"`` voxel / E_inc (the CaloChallenge
  convention), ``"log"`` log10(1 + E_voxel / keV) (sees the low-energy voxel
  spectrum), ``"high"`` the high-level features; standardised with the
  training split (un-standardised voxel / E_inc values are ~1e-3 and an MLP
  learns them too slowly to converge; the voxels share one scale, see
  :func:`_standardisation`).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hepflows.calo.features import feature_matrix
from hepflows.calo.showers import Showers
from hepflows.errors import ConfigError, HepflowsWarning, InputError
from hepflows.extras import require
from hepflows.progress import progress_bar
from hepflows.random import seeded
from hepflows.training import EarlyStopping, Engine

#: Fewest showers per class the classifier test accepts.
MIN_SHOWERS = 100
#: Calibrated classifier outputs are clipped to [CLIP, 1 - CLIP] for the JSD.
CLIP = 1e-6
#: Input views: voxel / E_inc, log10(1 + E_voxel / keV), high-level features.
VIEWS = ("low", "log", "high")
_SPLIT = (0.6, 0.2, 0.2)  # train / validation / test, per class (CaloChallenge ttv_split)
_KEV = 1e-3  # MeV
# The fixed MLP specification (CaloChallenge, 3 x 2048 there on GPU) and the shower budget,
# shared by classifier_test and evaluate.
HIDDEN = (512, 512, 512)
#: The MLP's starting learning rate. CaloChallenge ran Adam at a constant 2e-4;
#: on 20k vs 20k toy showers that stops on a validation plateau at AUC 0.741
#: (epoch 65), whereas 1e-3 halved on plateaus reaches 0.798 (epoch 37; the
#: same with patience 20), and a constant 1e-3 0.769.
LR = 1e-3
BATCH_SIZE = 1000
MAX_SHOWERS = 50_000
#: Cap on the MLP's epochs; it stops earlier, after PATIENCE epochs without improvement.
EPOCHS = 200
PATIENCE = 10
#: A validation-loss decrease smaller than this (in nats per shower) is no improvement.
TOLERANCE = 1e-4
#: On a validation plateau of PLATEAU epochs the MLP's learning rate is multiplied by
#: LR_DECAY (at most down to LR_FLOOR * lr), before early stopping ends the training.
#: A lower floor lets slow, steady improvements outlast the epoch cap (a 5 % layer
#: scale on 6k toy showers: still improving at epoch 200 with lr / 64, converged
#: at epoch 125 with lr / 8, AUC 0.857).
LR_DECAY = 0.5
PLATEAU = 3
LR_FLOOR = 1 / 8


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`classifier_test` or :func:`gbdt_test`.

    Attributes:
        auc: ROC AUC on the test split (0.5: indistinguishable, 1: separable).
        jsd: Jensen-Shannon divergence in bits (0..1) from the calibrated output.
        accuracy: test accuracy of the calibrated output thresholded at 0.5.
        epochs: epochs (MLP) or boosting iterations (GBDT) trained.
        best_epoch: epoch (iteration) of the kept, lowest-validation-loss model.
        converged: training stopped because the validation loss stopped
            improving, not because it reached the epoch (iteration) cap.
        n_train: training showers, both classes together.
        n_test: test showers, both classes together.
        level: the input view (``"low"``, ``"log"`` or ``"high"``).
        classifier: ``"mlp"`` or ``"gbdt"``.
        lr_final: the MLP's learning rate at the end (below its start when
            validation plateaus lowered it); ``None`` for the GBDT.
    """

    auc: float
    jsd: float
    accuracy: float
    epochs: int
    best_epoch: int
    converged: bool
    n_train: int
    n_test: int
    level: str
    classifier: str = "mlp"
    lr_final: float | None = None

    def summary(self) -> str:
        """One line a person reads."""
        unit = "epochs" if self.classifier == "mlp" else "iterations"
        state = "converged" if self.converged else "NOT converged: cap reached"
        lr = "" if self.lr_final is None else f", final lr {self.lr_final:.2g}"
        return (
            f"{self.level}-level {self.classifier.upper()}: AUC {self.auc:.3f}  "
            f"JSD {self.jsd:.3f}  accuracy {self.accuracy:.3f}  ({self.n_train} training / "
            f"{self.n_test} test showers; best of {self.epochs} {unit} at "
            f"{self.best_epoch}{lr}, {state})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


# ------------------------------------------------------------------ validation
def check_same_geometry(reference: Showers, other: Showers, label: str) -> None:
    """Raise :class:`InputError` unless ``other`` is in the reference's geometry."""
    if reference.geometry.layers != other.geometry.layers:
        raise InputError(
            f"{label} showers are in geometry {other.geometry.name!r} "
            f"({other.geometry.n_voxels} voxels) but the reference is in "
            f"{reference.geometry.name!r} ({reference.geometry.n_voxels} voxels): "
            "compare showers of one calorimeter"
        )


def check_count(showers: Showers, label: str, minimum: int = MIN_SHOWERS) -> None:
    """Raise :class:`InputError` if ``showers`` has fewer than ``minimum`` showers."""
    if len(showers) < minimum:
        raise InputError(
            f"{label} has {len(showers)} showers; the classifier test needs at least "
            f"{minimum} of each: generate more showers"
        )


def auc_null_sigma(n: int) -> float:
    """Standard deviation of the AUC of an uninformative score on n + n test showers.

    Mann-Whitney without ties: sqrt((2n + 1) / (12 n^2)); 0.0041 at n = 10 000.
    """
    return math.sqrt((2 * n + 1) / (12 * n * n))


# ------------------------------------------------------------------ inputs
def _check_level(level: str) -> None:
    if level not in VIEWS:
        raise ConfigError(f"level must be one of {VIEWS} (voxel/E_inc, log voxels, features), "
                          f"got {level!r}")  # fmt: skip


def classifier_inputs(showers: Showers, level: str) -> np.ndarray:
    """The classifier's input columns for one set of showers (before standardisation).

    Args:
        showers: N showers of V voxels.
        level: ``"low"``: voxels / E_inc (CaloChallenge
            ``prepare_low_data_for_classifier``) and log10(E_inc);
            ``"log"``: log10(1 + E_voxel / keV) and log10(E_inc);
            ``"high"``: :func:`~hepflows.calo.features.feature_matrix`
            (CaloChallenge's high-level inputs) followed by the energy response,
            E_dep / E_inc and E_i / E_inc per voxelised layer. Without the
            ratios the MLP misses a 1 % energy-scale error: on 20k vs 20k toy
            photons with every voxel x 1.01 it gave AUC 0.507, with them 0.682
            (two samples of one simulator: 0.503 and 0.506).

    Returns:
        (N, V + 1) for ``"low"`` and ``"log"``, (N, F + 1 + L_v) for ``"high"``; float32.
    """
    _check_level(level)
    if level == "high":
        layers = showers.geometry.layer_energies(showers.voxels)  # (N, L_v)
        response = np.concatenate([layers.sum(1, keepdims=True), layers], 1)
        response /= showers.energy[:, None]
        return np.concatenate([feature_matrix(showers), response], 1, dtype=np.float32)
    log_e = np.log10(showers.energy)[:, None]
    if level == "low":
        cells = showers.voxels / showers.energy[:, None]
    else:
        cells = np.log10(1.0 + np.clip(showers.voxels, 0.0, None) / _KEV)
    return np.concatenate([cells, log_e], 1, dtype=np.float32)


def _split(
    reference: Showers, generated: Showers, level: str, max_showers: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Balanced, standardised 60/20/20 splits: ``{"train"|"val"|"test": (x (n, D), y (n,))}``.

    ``n = min(N_ref, N_gen, max_showers)`` showers of each class are drawn at
    random (seeded) and each class is split 60/20/20; the columns are
    standardised with the training split (see :func:`_standardisation`).
    """
    _check_level(level)
    if max_showers < MIN_SHOWERS:
        raise ConfigError(f"max_showers must be >= {MIN_SHOWERS}, got {max_showers}")
    check_same_geometry(reference, generated, "generated")
    check_count(reference, "the reference")
    check_count(generated, "the generated set")
    n = min(len(reference), len(generated), max_showers)
    rng = np.random.default_rng(seed)
    x_ref = classifier_inputs(reference[rng.choice(len(reference), n, replace=False)], level)
    x_gen = classifier_inputs(generated[rng.choice(len(generated), n, replace=False)], level)
    n_tr, n_va = int(_SPLIT[0] * n), int(_SPLIT[1] * n)
    parts = {}
    for name, sl in (("train", slice(0, n_tr)), ("val", slice(n_tr, n_tr + n_va)),
                     ("test", slice(n_tr + n_va, n))):  # fmt: skip
        x = np.concatenate([x_ref[sl], x_gen[sl]])
        y = np.concatenate([np.ones(len(x_ref[sl])), np.zeros(len(x_gen[sl]))])
        parts[name] = (x, y)
    mean, scale = _standardisation(parts["train"][0], level)
    return {k: (((x - mean) / scale).astype(np.float32), y) for k, (x, y) in parts.items()}


def _standardisation(x: np.ndarray, level: str) -> tuple[np.ndarray, np.ndarray]:
    """(D,) shift and (D,) scale of the columns, from the (n, D) training inputs.

    Features (``"high"``) and the log10(E_inc) column are standardised each by
    their own mean and standard deviation. The voxel columns share one scale,
    the standard deviation of all training voxel entries, and are not shifted:
    an empty voxel stays 0 and the voxels keep their relative sizes. Scaling
    each voxel by its own standard deviation instead blows up rarely lit
    voxels (a voxel lit in one shower of N becomes ~sqrt(N)) into shower
    identifiers the MLP memorises within a few epochs: on a CaloFlow teacher
    against 20k toy photons it stopped at epoch 5 with AUC 0.70, against 0.74
    to 0.81 (epochs 69 to 87) with the shared scale.
    """
    mean = x.mean(0, dtype=np.float64)
    std = x.std(0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    if level != "high":
        voxels = x[:, :-1]
        mean[:-1], std[:-1] = 0.0, max(float(voxels.std(dtype=np.float64)), 1e-30)
    return mean, std


def _scores(
    p_val: np.ndarray, y_val: np.ndarray, p_test: np.ndarray, y_test: np.ndarray
) -> dict[str, float]:
    """AUC of the raw test outputs; JSD and accuracy of the isotonic-calibrated ones.

    Args:
        p_val, p_test: (n,) classifier outputs in [0, 1] on the validation / test split.
        y_val, y_test: (n,) labels (1: reference).
    """
    purpose = "The classifier test"
    IsotonicRegression = require("sklearn.isotonic", "calo", purpose).IsotonicRegression
    roc_auc_score = require("sklearn.metrics", "calo", purpose).roc_auc_score
    iso = IsotonicRegression(y_min=CLIP, y_max=1 - CLIP, out_of_bounds="clip")
    c = np.clip(iso.fit(p_val, y_val).predict(p_test), CLIP, 1 - CLIP)
    is_ref = y_test == 1
    jsd = 1.0 + 0.5 * np.mean(np.log2(c[is_ref])) + 0.5 * np.mean(np.log2(1 - c[~is_ref]))
    return {"auc": float(roc_auc_score(y_test, p_test)), "jsd": float(jsd),
            "accuracy": float(np.mean((c > 0.5) == is_ref))}  # fmt: skip


def _warn_cap(result: ClassifierResult) -> None:
    if not result.converged:
        what = "epochs" if result.classifier == "mlp" else "iterations"
        warnings.warn(
            f"the {result.level}-level {result.classifier.upper()} reached its cap of "
            f"{result.epochs} {what} while its validation loss was still improving (best at "
            f"{result.best_epoch}): its AUC {result.auc:.3f} may under-report the difference; "
            f"raise the cap",
            HepflowsWarning,
            stacklevel=3,
        )


# ------------------------------------------------------------------ the MLP
def _mlp(d_in: int, hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(d_in, width), nn.ReLU()]
        d_in = width
    layers.append(nn.Linear(d_in, 1))
    return nn.Sequential(*layers)


def _separated(logits: torch.Tensor, labels: torch.Tensor) -> bool:
    """Is every reference (label 1) output above every generated (label 0) one?"""
    return bool(logits[labels == 1].min() > logits[labels == 0].max())


@torch.no_grad()
def _predict(net: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(n,) logits, batch by batch."""
    return torch.cat([net(x[i : i + batch_size]).squeeze(1)
                      for i in range(0, len(x), batch_size)])  # fmt: skip


def classifier_test(
    reference: Showers,
    generated: Showers,
    level: str = "low",
    *,
    hidden: int | Sequence[int] = HIDDEN,
    epochs: int = EPOCHS,
    lr: float = LR,
    patience: int | None = PATIENCE,
    lr_decay: float | None = LR_DECAY,
    batch_size: int = BATCH_SIZE,
    max_showers: int = MAX_SHOWERS,
    seed: int = 0,
    progress: bool = False,
) -> ClassifierResult:
    """Train an MLP to tell reference (label 1) from generated (label 0) showers.

    The fixed specification (CaloChallenge ``evaluate.py``, 2410.21611, on CPU):

    * ``n = min(N_ref, N_gen, max_showers)`` showers of each class, drawn at
      random (seeded); each class split 60/20/20 into train/validation/test;
    * inputs: the view ``level`` (see :func:`classifier_inputs`), standardised
      with the training split: features and log10(E_inc) each by their mean and
      standard deviation, the voxels by one shared scale (:func:`_standardisation`);
    * MLP with ``hidden`` ReLU layers (3 x 512; CaloChallenge used 3 x 2048 on
      GPU), BCE loss, Adam from the rate ``lr``, batches of ``batch_size``;
    * learning-rate schedule: on a validation plateau (no improvement by
      :data:`TOLERANCE` for :data:`PLATEAU` epochs) the rate is multiplied by
      ``lr_decay`` (torch's ``ReduceLROnPlateau``, down to :data:`LR_FLOOR` x
      ``lr``); ``lr=2e-4, lr_decay=None`` is CaloChallenge's constant rate. At
      that rate the MLP learns so slowly that the plateau criterion ends it
      early (AUC 0.741 where this schedule finds 0.798, see :data:`LR`);
      decaying a constant 2e-4 is worse still (0.714): its early slow phases
      count as plateaus;
    * convergence: training stops once the validation loss has not improved by
      more than :data:`TOLERANCE` (1e-4) for ``patience`` epochs, and the network
      of the lowest validation loss is kept (a perfectly separable pair drives
      the loss towards 0 forever: the tolerance ends that, and so does a
      network that separates the validation classes completely, AUC 1); ``epochs``
      is only a safety cap: if it is reached the result says
      ``converged=False`` and a :class:`~hepflows.errors.HepflowsWarning` is
      issued, since a classifier stopped while still improving under-reports
      how distinguishable the showers are;
    * AUC (``sklearn.metrics.roc_auc_score``) of the raw output on the test split
      (a monotone calibration changes it only through ties);
    * calibration: isotonic regression of the labels on the validation outputs
      (as CaloChallenge), output c clipped to [1e-6, 1 − 1e-6]; on the test split
      JSD = 1 + ½ ⟨log₂ c⟩_ref + ½ ⟨log₂(1 − c)⟩_gen in bits, i.e.
      (ln 2 − BCE) / ln 2 for balanced classes as in CaloChallenge: 0 for an
      indistinguishable generator (small negative values are statistical noise),
      1 for a perfectly separable one; accuracy thresholds c at 0.5. The
      isotonic step function overfits small validation sets, which biases the
      JSD low: about −0.03 ± 0.03 at 400 validation showers per class for
      indistinguishable sets, negligible at the 10k of the full specification.

    Args:
        reference: reference showers (e.g. Geant4 / the toy simulator).
        generated: showers of the model under test, same geometry.
        level: input view, ``"low"`` (voxel / E_inc), ``"log"`` (log voxel
            energies) or ``"high"`` (features).
        hidden: width of each hidden layer (an int means one layer).
        epochs: the most epochs (a safety cap, see above).
        lr: Adam learning rate.
        lr_decay: factor applied to the learning rate on a validation plateau
            (``None``: constant rate).
        patience: epochs without validation improvement before stopping
            (``None``: run all ``epochs``; the result then counts as converged
            only if its best epoch is at least 10 before the end).
        batch_size: showers per optimisation step.
        max_showers: most showers per class (the voxel inputs take
            2 * n * V * 4 bytes: 16 GB for CaloChallenge ds3 at 50k; lower it there).
        seed: seeds the draw, the split, the initialisation and the batch order.
        progress: show a progress bar over epochs.

    Raises:
        InputError: different geometries, fewer than 100 showers in a set.
        ConfigError: an unknown level or a non-positive option.
    """
    require("sklearn.metrics", "calo", "The classifier test")  # fail before training, not after
    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if min((epochs, patience or 1, batch_size, max_showers, *hidden)) < 1 or not lr > 0:
        raise ConfigError("hidden, epochs, patience, batch_size, max_showers and lr must be > 0")
    if lr_decay is not None and not 0 < lr_decay < 1:
        raise ConfigError(f"lr_decay must be in (0, 1) or None (constant rate), got {lr_decay}")
    parts = _split(reference, generated, level, max_showers, seed)
    x_tr, y_tr = (torch.as_tensor(a, dtype=torch.float32) for a in parts["train"])
    x_va, y_va = (torch.as_tensor(a, dtype=torch.float32) for a in parts["val"])

    with seeded(seed):
        net = _mlp(x_tr.shape[1], hidden)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    steps = math.ceil(len(x_tr) / batch_size)
    # Adam, no clipping; the rate is lowered on validation plateaus (end_of_epoch).
    engine = Engine(net.parameters(), lr=lr, total_steps=epochs * steps, scheduler=None,
                    clip=None, name=f"classifier ({level}-level)")  # fmt: skip
    plateau = None
    if lr_decay is not None:
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            engine.optimizer, factor=lr_decay, patience=PLATEAU - 1, threshold=TOLERANCE,
            threshold_mode="abs", min_lr=lr * LR_FLOOR,
        )  # fmt: skip
    best = {"loss": math.inf, "state": None, "epoch": 0, "separated": False}
    order = torch.empty(0, dtype=torch.int64)

    def iteration(i: int) -> None:
        nonlocal order
        if i % steps == 0:
            net.train()
            order = torch.randperm(len(x_tr), generator=generator)
        idx = order[(i % steps) * batch_size : (i % steps + 1) * batch_size]
        engine.step(loss_fn(net(x_tr[idx]).squeeze(1), y_tr[idx]))

    def end_of_epoch(epoch: int) -> dict[str, float]:
        net.eval()
        logits = _predict(net, x_va, batch_size)
        val_loss = float(loss_fn(logits, y_va))
        if val_loss < best["loss"]:
            best.update(loss=val_loss, epoch=epoch + 1, state=copy.deepcopy(net.state_dict()),
                        separated=_separated(logits, y_va))  # fmt: skip
        if plateau is not None:
            plateau.step(val_loss)
        bar.advance(1, val_loss=val_loss)  # the epoch bar opened below
        if best["separated"]:  # every reference output above every generated one: AUC 1
            engine.stop = True
        return {"val": val_loss}

    stop = [EarlyStopping("val", patience, min_delta=TOLERANCE)] if patience is not None else []
    with progress_bar(epochs, f"classifier ({level}-level)", enabled=progress) as bar:
        engine.run(iteration, epochs * steps, callbacks=stop, per_epoch=steps,
                   end_of_epoch=end_of_epoch)  # fmt: skip
    ran, best_epoch = engine.iteration // steps, best["epoch"]
    net.load_state_dict(best["state"])
    p_val = torch.sigmoid(_predict(net, x_va, batch_size)).double().numpy()
    x_te = torch.as_tensor(parts["test"][0], dtype=torch.float32)
    p_test = torch.sigmoid(_predict(net, x_te, batch_size)).double().numpy()
    result = ClassifierResult(
        **_scores(p_val, parts["val"][1], p_test, parts["test"][1]),
        epochs=ran,
        best_epoch=best_epoch,
        converged=best["separated"]
        or (stop[0].wait >= stop[0].patience if stop else ran - best_epoch >= 10),
        n_train=len(y_tr),
        n_test=len(parts["test"][1]),
        level=level,
        lr_final=engine.learning_rate(),
    )
    _warn_cap(result)
    return result


# ------------------------------------------------------------------ the GBDT
def _staged(gbdt: Any, x: np.ndarray, iteration: int) -> np.ndarray:
    """(n,) P(reference) of the first ``iteration`` trees of a fitted ensemble."""
    for i, p in enumerate(gbdt.staged_predict_proba(x), 1):
        if i == iteration:
            return p[:, 1]
    raise AssertionError("unreachable: iteration beyond the fitted trees")


def gbdt_test(
    reference: Showers,
    generated: Showers,
    level: str = "low",
    *,
    max_iter: int = 2000,
    learning_rate: float = 0.1,
    patience: int = 20,
    max_showers: int = MAX_SHOWERS,
    seed: int = 0,
) -> ClassifierResult:
    """An independent cross-check of :func:`classifier_test`: gradient-boosted trees.

    scikit-learn's ``HistGradientBoostingClassifier`` (its defaults: 31 leaves
    per tree, 255 bins per feature) on the same showers, view and 60/20/20
    split as the MLP of the same ``seed``; boosting stops when the loss on the
    validation split has not improved for ``patience`` iterations (tol 1e-7)
    and the model of the best iteration is kept. AUC, JSD and accuracy as in
    :func:`classifier_test`. Trees do not care about the inputs' scale, so
    they are a check on whether the MLP converged.

    Args:
        reference: reference showers.
        generated: showers of the model under test, same geometry.
        level: input view (see :func:`classifier_inputs`).
        max_iter: the most boosting iterations (a cap; reaching it means not converged).
        learning_rate: shrinkage of each tree.
        patience: iterations without validation improvement before stopping.
        max_showers: most showers per class.
        seed: seeds the draw, the split and the trees.

    Raises:
        InputError: different geometries, fewer than 100 showers in a set.
        ConfigError: an unknown level or a non-positive option.
    """
    if min(max_iter, patience, max_showers) < 1 or not learning_rate > 0:
        raise ConfigError("max_iter, patience, max_showers and learning_rate must be > 0")
    ensemble = require("sklearn.ensemble", "calo", "The GBDT classifier test")
    parts = _split(reference, generated, level, max_showers, seed)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = parts["train"], parts["val"], parts["test"]
    gbdt = ensemble.HistGradientBoostingClassifier(
        learning_rate=learning_rate, max_iter=max_iter, early_stopping=True,
        n_iter_no_change=patience, random_state=seed,
    )  # fmt: skip
    gbdt.fit(x_tr, y_tr, X_val=x_va, y_val=y_va)
    # validation_score_ holds -loss: of the initial model, then after each iteration;
    # the outputs of the best iteration's ensemble come from the staged predictions
    scores = np.asarray(gbdt.validation_score_)
    best = max(int(np.argmax(scores)), 1)
    p_val, p_test = (_staged(gbdt, x, best) for x in (x_va, x_te))
    ran = len(scores) - 1
    result = ClassifierResult(
        **_scores(p_val, y_va, p_test, y_te),
        epochs=ran,
        best_epoch=best,
        converged=ran < max_iter,
        n_train=len(y_tr),
        n_test=len(y_te),
        level=level,
        classifier="gbdt",
    )
    _warn_cap(result)
    return result
