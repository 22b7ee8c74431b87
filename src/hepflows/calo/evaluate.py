"""Is a shower generator faithful? CaloChallenge-style evaluation (2410.21611).

* :func:`classifier_test`: a neural network trained to tell reference from
  generated showers, on voxels ("low") or high-level features ("high"), with
  a fixed specification so numbers compare (MLP 3x512 ReLU, Adam 2e-4,
  <= 50 epochs with early stopping, 60/20/20 split, <= 50k vs 50k showers,
  isotonic calibration for the JSD); AUC 0.5 means indistinguishable;
* :func:`plot_features`: histograms of the high-level features with the
  separation power of each model;
* :func:`evaluate`: all of it, plus FPD and KPD, as one JSON-ready dict.

Feature definitions, separation power, FPD and KPD live in
:mod:`hepflows.calo.features`.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hepflows.calo.features import (
    feature_matrix,
    fpd,
    high_level_features,
    kpd,
    separation_power,
)
from hepflows.calo.showers import Showers
from hepflows.errors import ConfigError, InputError
from hepflows.extras import require
from hepflows.io.atomic import atomic_write
from hepflows.progress import progress_bar
from hepflows.random import seeded
from hepflows.training import EarlyStopping, Engine

#: Fewest showers per class the classifier test accepts.
MIN_SHOWERS = 100
#: Calibrated classifier outputs are clipped to [CLIP, 1 - CLIP] for the JSD.
CLIP = 1e-6
_SPLIT = (0.6, 0.2, 0.2)  # train / validation / test, per class (CaloChallenge ttv_split)


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`classifier_test`.

    Attributes:
        auc: ROC AUC on the test split (0.5: indistinguishable, 1: separable).
        jsd: Jensen-Shannon divergence in bits (0..1) from the calibrated output.
        accuracy: test accuracy of the calibrated output thresholded at 0.5.
        epochs: epochs trained (early stopping may end before the maximum).
        best_epoch: epoch of the kept (lowest validation loss) network.
        n_train: training showers, both classes together.
        n_test: test showers, both classes together.
        level: ``"low"`` (voxels) or ``"high"`` (features).
    """

    auc: float
    jsd: float
    accuracy: float
    epochs: int
    best_epoch: int
    n_train: int
    n_test: int
    level: str

    def summary(self) -> str:
        """One line a person reads."""
        return (
            f"{self.level}-level classifier: AUC {self.auc:.3f}  JSD {self.jsd:.3f}  "
            f"accuracy {self.accuracy:.3f}  ({self.n_train} training / {self.n_test} test "
            f"showers, best of {self.epochs} epochs at epoch {self.best_epoch})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


# ------------------------------------------------------------------ validation
def _check_same_geometry(reference: Showers, other: Showers, label: str) -> None:
    if reference.geometry.layers != other.geometry.layers:
        raise InputError(
            f"{label} showers are in geometry {other.geometry.name!r} "
            f"({other.geometry.n_voxels} voxels) but the reference is in "
            f"{reference.geometry.name!r} ({reference.geometry.n_voxels} voxels): "
            "compare showers of one calorimeter"
        )


def _check_count(showers: Showers, label: str, minimum: int = MIN_SHOWERS) -> None:
    if len(showers) < minimum:
        raise InputError(
            f"{label} has {len(showers)} showers; the classifier test needs at least "
            f"{minimum} of each: generate more showers"
        )


# ------------------------------------------------------------------ classifier inputs
def _low_level_inputs(showers: Showers, log_range: tuple[float, float]) -> np.ndarray:
    """(N, V + 1): voxels / E_inc (CaloChallenge ``prepare_low_data_for_classifier``)
    and log10(E_inc) mapped linearly to [0, 1] over ``log_range``."""
    lo, hi = log_range
    log_e = (np.log10(showers.energy) - lo) / (hi - lo if hi > lo else 1.0)
    return np.concatenate(
        [showers.voxels / showers.energy[:, None], log_e[:, None]], 1, dtype=np.float32
    )


def _mlp(d_in: int, hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(d_in, width), nn.ReLU()]
        d_in = width
    layers.append(nn.Linear(d_in, 1))
    return nn.Sequential(*layers)


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
    hidden: int | Sequence[int] = (512, 512, 512),
    epochs: int = 50,
    lr: float = 2e-4,
    patience: int | None = None,
    batch_size: int = 1000,
    max_showers: int = 50_000,
    seed: int = 0,
    progress: bool = False,
) -> ClassifierResult:
    """Train a classifier to tell reference (label 1) from generated (label 0) showers.

    The fixed specification (CaloChallenge ``evaluate.py``, 2410.21611, on CPU):

    * ``n = min(N_ref, N_gen, max_showers)`` showers of each class, drawn at
      random (seeded); each class split 60/20/20 into train/validation/test;
    * inputs, ``"low"``: voxels / E_inc (V values) and log10(E_inc) scaled to
      [0, 1] over the range of the drawn showers; ``"high"``:
      :func:`~hepflows.calo.features.feature_matrix` (log10 energies, centres
      and widths) standardised with the training split's mean and std;
    * MLP with ``hidden`` ReLU layers (3 x 512; CaloChallenge used 3 x 2048 on
      GPU), BCE loss, Adam with learning rate ``lr``, batches of ``batch_size``,
      ``epochs`` epochs, and the best-validation-loss network is kept (with
      ``patience``, training also stops after that many epochs without a
      validation improvement). No early stopping by default: the voxel
      classifier's validation loss can sit on a plateau for its first epochs
      before it finds a difference. On toy photons against a CaloFlow teacher,
      patience 5 stopped at epoch 7 with AUC 0.50, while 50 epochs reach 0.90
      (still improving), so a patience would flatter a model;
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
        level: ``"low"`` (voxels) or ``"high"`` (features).
        hidden: width of each hidden layer (an int means one layer).
        epochs: maximum number of epochs.
        lr: Adam learning rate.
        patience: epochs without validation improvement before stopping
            (``None``: run all ``epochs``).
        batch_size: showers per optimisation step.
        max_showers: most showers per class (the low-level inputs take
            2 * n * V * 4 bytes: 16 GB for CaloChallenge ds3 at 50k; lower it there).
        seed: seeds the draw, the split, the initialisation and the batch order.
        progress: show a progress bar over epochs.

    Raises:
        InputError: different geometries, fewer than 100 showers in a set.
        ConfigError: an unknown level or a non-positive option.
    """
    purpose = "The classifier test"
    IsotonicRegression = require("sklearn.isotonic", "calo", purpose).IsotonicRegression
    roc_auc_score = require("sklearn.metrics", "calo", purpose).roc_auc_score

    if level not in ("low", "high"):
        raise ConfigError(f"level must be 'low' (voxels) or 'high' (features), got {level!r}")
    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if min((epochs, patience or 1, batch_size, max_showers, *hidden)) < 1 or not lr > 0:
        raise ConfigError("hidden, epochs, patience, batch_size, max_showers and lr must be > 0")
    _check_same_geometry(reference, generated, "generated")
    _check_count(reference, "the reference")
    _check_count(generated, "the generated set")
    n = min(len(reference), len(generated), max_showers)
    if n < MIN_SHOWERS:
        raise ConfigError(f"max_showers must be >= {MIN_SHOWERS}, got {max_showers}")

    rng = np.random.default_rng(seed)
    ref = reference[rng.choice(len(reference), n, replace=False)]
    gen = generated[rng.choice(len(generated), n, replace=False)]
    if level == "low":
        log_e = np.log10(np.concatenate([ref.energy, gen.energy]))
        x_ref = _low_level_inputs(ref, (log_e.min(), log_e.max()))
        x_gen = _low_level_inputs(gen, (log_e.min(), log_e.max()))
    else:
        x_ref, x_gen = feature_matrix(ref), feature_matrix(gen)

    # Per-class 60/20/20 split (the draw above is already random): balanced splits.
    n_tr, n_va = int(_SPLIT[0] * n), int(_SPLIT[1] * n)
    parts = {}
    for name, sl in (("train", slice(0, n_tr)), ("val", slice(n_tr, n_tr + n_va)),
                     ("test", slice(n_tr + n_va, n))):  # fmt: skip
        x = np.concatenate([x_ref[sl], x_gen[sl]]).astype(np.float32, copy=False)
        y = np.concatenate([np.ones(len(x_ref[sl])), np.zeros(len(x_gen[sl]))])
        parts[name] = (x, y)
    if level == "high":
        mean, std = parts["train"][0].mean(0), parts["train"][0].std(0)
        std = np.where(std > 0, std, 1.0)
        parts = {k: ((x - mean) / std, y) for k, (x, y) in parts.items()}
    tensors = {
        k: (torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32))
        for k, (x, y) in parts.items()
    }

    with seeded(seed):
        net = _mlp(tensors["train"][0].shape[1], hidden)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    x_tr, y_tr = tensors["train"]
    x_va, y_va = tensors["val"]
    steps = math.ceil(len(x_tr) / batch_size)
    # The fixed specification: Adam at a constant rate, no clipping.
    engine = Engine(net.parameters(), lr=lr, total_steps=epochs * steps, scheduler=None,
                    clip=None, name=f"classifier ({level}-level)")  # fmt: skip
    best = {"loss": math.inf, "state": None, "epoch": 0}
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
        val_loss = float(loss_fn(_predict(net, x_va, batch_size), y_va))
        if val_loss < best["loss"]:
            best.update(loss=val_loss, epoch=epoch + 1, state=copy.deepcopy(net.state_dict()))
        bar.advance(1, val_loss=val_loss)  # the epoch bar opened below
        return {"val": val_loss}

    stop = [EarlyStopping("val", patience)] if patience is not None else []
    with progress_bar(epochs, f"classifier ({level}-level)", enabled=progress) as bar:
        engine.run(iteration, epochs * steps, callbacks=stop, per_epoch=steps,
                   end_of_epoch=end_of_epoch)  # fmt: skip
    epoch, best_epoch, best_state = engine.iteration // steps, best["epoch"], best["state"]
    net.load_state_dict(best_state)

    p_val = torch.sigmoid(_predict(net, x_va, batch_size)).double().numpy()
    p_test = torch.sigmoid(_predict(net, tensors["test"][0], batch_size)).double().numpy()
    y_val, y_test = parts["val"][1], parts["test"][1]
    iso = IsotonicRegression(y_min=CLIP, y_max=1 - CLIP, out_of_bounds="clip")
    c = np.clip(iso.fit(p_val, y_val).predict(p_test), CLIP, 1 - CLIP)
    is_ref = y_test == 1
    jsd = 1.0 + 0.5 * np.mean(np.log2(c[is_ref])) + 0.5 * np.mean(np.log2(1 - c[~is_ref]))
    return ClassifierResult(
        auc=float(roc_auc_score(y_test, p_test)),
        jsd=float(jsd),
        accuracy=float(np.mean((c > 0.5) == is_ref)),
        epochs=epoch,
        best_epoch=best_epoch,
        n_train=len(y_tr),
        n_test=len(y_test),
        level=level,
    )


# ------------------------------------------------------------------ histograms
_KINDS = ("E", "EC_x", "EC_y", "width_x", "width_y", "sparsity")
_AXIS = {
    "E": "$E_{{{}}}$ [MeV]",
    "EC_x": "centre $x$, layer {} [mm]",
    "EC_y": "centre $y$, layer {} [mm]",
    "width_x": "width $x$, layer {} [mm]",
    "width_y": "width $y$, layer {} [mm]",
    "sparsity": "sparsity, layer {}",
    "voxel": "lit voxels $E/E_{{inc}}$, layer {}",
}


def _is_log(name: str) -> bool:
    """Energies are histogrammed in log10 bins."""
    return (name in ("E_inc", "E_dep") or name.startswith("voxel_")
            or (name.startswith("E_") and name[2:].isdigit()))  # fmt: skip


def _axis_label(name: str) -> str:
    fixed = {"E_inc": "$E_{inc}$ [MeV]", "E_dep": "$E_{dep}$ [MeV]",
             "E_dep/E_inc": "$E_{dep}/E_{inc}$"}  # fmt: skip
    if name in fixed:
        return fixed[name]
    kind, tag = name.rsplit("_", 1)
    return _AXIS[kind].format(tag)


def _binned(name: str, values: list[np.ndarray], bins: int) -> tuple[np.ndarray, list]:
    """Common edges for one feature and the values clipped into them.

    The range spans the 0.5–99.5 % quantiles of every set (log10-spaced over the
    positive values for energies); entries outside are clipped into the first
    and last bins (under/overflow), so they still count in the separation power.

    Returns:
        (B+1,) edges and the clipped value arrays.
    """
    log = _is_log(name) and any((v > 0).any() for v in values)
    pick = [v[v > 0] if log else v for v in values]
    pick = [v for v in pick if len(v)]
    if not pick:  # nothing to histogram (e.g. no lit voxel in a layer anywhere)
        edges = np.linspace(0.0, 1.0, bins + 1)
        return edges, [np.clip(v, 0.0, 1.0) for v in values]
    lo = min(np.quantile(v, 0.005) for v in pick)
    hi = max(np.quantile(v, 0.995) for v in pick)
    if log:
        lo, hi = (lo / 2, hi * 2) if hi <= lo else (lo, hi)
        edges = np.geomspace(lo, hi, bins + 1)
    else:
        lo, hi = (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)
        edges = np.linspace(lo, hi, bins + 1)
    return edges, [np.clip(v, edges[0], edges[-1]) for v in values]


def _separations(
    ref: dict[str, np.ndarray], gen: dict[str, np.ndarray], bins: int
) -> dict[str, float]:
    out = {}
    for name in ref:
        edges, (a, b) = _binned(name, [ref[name], gen[name]], bins)
        out[name] = separation_power(a, b, edges)
    return out


def _default_layers(reference: Showers) -> list[int]:
    """Positions of the layers to plot: all if <= 6, else 6 evenly spaced."""
    layers = reference.geometry.voxel_layers
    if len(layers) <= 6:
        return list(layers)
    picks = np.linspace(0, len(layers) - 1, 6).round().astype(int)
    return [layers[i] for i in picks]


def plot_features(
    reference: Showers,
    samples: dict[str, Showers],
    path: str | os.PathLike,
    *,
    layers: Sequence[int] | None = None,
    bins: int = 40,
    threshold: float = 0.0,
    title: str = "",
    reference_label: str = "reference",
) -> None:
    """A PNG grid of high-level feature histograms (CaloChallenge figures).

    One row per layer (energy on log axes, centre x/y, width x/y, sparsity and
    the spectrum of lit voxels, E_voxel / E_inc on log axes, as a fraction of
    the lit voxels) and a last row with E_dep/E_inc, E_dep and E_inc. The reference is drawn filled,
    each model as a step line; each legend entry gives the model's separation
    power S (see :func:`~hepflows.calo.features.separation_power`) on the
    plotted bins. Histograms are fractions of showers per bin; under/overflow
    goes to the edge bins.

    Args:
        reference: reference showers.
        samples: model label -> showers of the same geometry.
        path: PNG file to write (atomically).
        layers: layer positions (in ``geometry.layers``) to show; default all
            voxelised layers if at most 6, else 6 evenly spaced ones.
        bins: bins per histogram.
        threshold: voxel energy (MeV) for the sparsity.
        title: figure title.
        reference_label: legend label of the reference.
    """
    matplotlib = require("matplotlib", "plots", "Plotting shower features")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "plots", "Plotting shower features")
    mplhep = require("mplhep", "plots", "Plotting shower features")

    if not samples:
        raise InputError("plot_features needs at least one sample to compare")
    for label, s in samples.items():
        _check_same_geometry(reference, s, repr(label))
    geometry = reference.geometry
    layers = _default_layers(reference) if layers is None else list(layers)
    bad = [i for i in layers if i not in geometry.voxel_layers]
    if bad:
        raise ConfigError(f"layers {bad} are not voxelised layers of {geometry.name!r}: "
                          f"choose from {geometry.voxel_layers}")  # fmt: skip
    ref_f = high_level_features(reference, threshold)
    gen_f = {label: high_level_features(s, threshold) for label, s in samples.items()}
    for i in layers:  # voxel spectra: lit voxels / E_inc (arrays of lit voxels, not showers)
        name, cells = f"voxel_{geometry.layers[i].id}", geometry.slices[i]
        for f, s in [(ref_f, reference), *zip(gen_f.values(), samples.values(), strict=True)]:
            v = s.voxels[:, cells] / s.energy[:, None]
            f[name] = v[v > 0]
    rows = [[f"{k}_{geometry.layers[i].id}" for k in (*_KINDS, "voxel")] for i in layers]
    rows.append(["E_dep/E_inc", "E_dep", "E_inc"])

    plt.style.use(mplhep.style.ROOT)
    ncol = len(_KINDS) + 1
    fig, axes = plt.subplots(len(rows), ncol, figsize=(5.5 * ncol, 4.5 * len(rows)),
                             constrained_layout=True, squeeze=False)  # fmt: skip
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, row in enumerate(rows):
        for c in range(ncol):
            ax = axes[r, c]
            if c >= len(row):
                ax.set_visible(False)
                continue
            name = row[c]
            values = [ref_f[name]] + [f[name] for f in gen_f.values()]
            edges, clipped = _binned(name, values, bins)
            hists = [np.histogram(v, edges)[0] / len(v) for v in clipped]
            mplhep.histplot(hists[0], edges, ax=ax, histtype="fill", color="0.8",
                            hatch="///", edgecolor="0.5", label=reference_label)  # fmt: skip
            for k, label in enumerate(gen_f):
                sep = separation_power(clipped[0], clipped[k + 1], edges)
                mplhep.histplot(hists[k + 1], edges, ax=ax, color=colours[k % len(colours)],
                                label=f"{label} (S={sep:.3f})")  # fmt: skip
            if _is_log(name) and edges[0] > 0:
                ax.set_xscale("log")
            ax.set_xlabel(_axis_label(name), fontsize="small")
            ax.set_ylabel("fraction", fontsize="small")
            ax.tick_params(labelsize="x-small")
            ax.set_ylim(0, max(h.max() for h in hists) * 1.5)  # room for the legend
            ax.legend(fontsize="xx-small", loc="upper right")
    if title:
        fig.suptitle(title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=50, format="png"))
    plt.close(fig)


# ------------------------------------------------------------------ everything
def evaluate(
    reference: Showers,
    samples: dict[str, Showers],
    *,
    levels: Sequence[str] = ("low", "high"),
    hidden: int | Sequence[int] = (512, 512, 512),
    epochs: int = 50,
    lr: float = 2e-4,
    patience: int | None = None,
    batch_size: int = 1000,
    max_showers: int = 50_000,
    bins: int = 40,
    threshold: float = 0.0,
    kpd_batches: int = 10,
    kpd_batch_size: int = 5000,
    plot: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Every CaloChallenge measure of each model against the reference.

    Per model: separation power of every high-level feature (bins as in
    :func:`plot_features`), the classifier test at each of ``levels``, FPD and
    KPD on :func:`~hepflows.calo.features.feature_matrix`.

    Args:
        reference: reference showers.
        samples: model label -> generated showers (same geometry).
        levels: classifier levels to run (``"low"``, ``"high"``; empty: none).
        hidden, epochs, lr, patience, batch_size, max_showers: classifier
            options (see :func:`classifier_test`).
        bins: histogram bins for the separation powers.
        threshold: voxel energy (MeV) for the sparsity.
        kpd_batches, kpd_batch_size: KPD batching (see :func:`~hepflows.calo.features.kpd`).
        plot: if given, also write :func:`plot_features` to this PNG.
        seed: seed of the classifiers and the KPD batches.
        progress: print one line per result and show classifier progress bars.

    Returns:
        ``{"reference": {...}, "settings": {...}, "models": {label: {"n_showers",
        "separation": {feature: S}, "separation_mean", "classifier": {level:
        ClassifierResult.to_dict()}, "fpd", "kpd": {"value", "error"}}}}``,
        JSON-ready (floats, ints, strings).
    """
    if not samples:
        raise InputError("evaluate needs at least one sample to compare with the reference")
    bad = [lvl for lvl in levels if lvl not in ("low", "high")]
    if bad:
        raise ConfigError(f"unknown classifier levels {bad}: use 'low' and/or 'high'")
    for label, s in samples.items():
        _check_same_geometry(reference, s, repr(label))
        if levels:
            _check_count(s, f"sample {label!r}")
    if levels:
        _check_count(reference, "the reference")
    ref_f = high_level_features(reference, threshold)
    ref_m = feature_matrix(reference, ref_f)
    models: dict[str, Any] = {}
    for label, s in samples.items():
        gen_f = high_level_features(s, threshold)
        seps = _separations(ref_f, gen_f, bins)
        value, error = kpd(ref_m, feature_matrix(s, gen_f), kpd_batches, kpd_batch_size,
                           seed=seed)  # fmt: skip
        out: dict[str, Any] = {
            "n_showers": len(s),
            "separation": seps,
            "separation_mean": float(np.mean(list(seps.values()))),
            "fpd": fpd(ref_m, feature_matrix(s, gen_f)),
            "kpd": {"value": value, "error": error},
            "classifier": {},
        }
        if progress:
            print(f"{label}: mean separation power {out['separation_mean']:.4f}  "
                  f"FPD {out['fpd']:.4g}  KPD {value:.3g} ± {error:.2g}")  # fmt: skip
        for lvl in levels:
            result = classifier_test(
                reference, s, lvl, hidden=hidden, epochs=epochs, lr=lr, patience=patience,
                batch_size=batch_size, max_showers=max_showers, seed=seed, progress=progress,
            )  # fmt: skip
            out["classifier"][lvl] = result.to_dict()
            if progress:
                print(f"{label}: {result.summary()}")
        models[label] = out
    if plot is not None:
        plot_features(reference, samples, plot, bins=bins, threshold=threshold)
    hidden_t = [hidden] if isinstance(hidden, int) else list(hidden)
    return {
        "reference": {"n_showers": len(reference), "geometry": reference.geometry.name},
        "settings": {
            "levels": list(levels),
            "hidden": hidden_t,
            "epochs": epochs,
            "lr": lr,
            "patience": patience,
            "batch_size": batch_size,
            "max_showers": max_showers,
            "bins": bins,
            "threshold": threshold,
            "kpd_batches": kpd_batches,
            "kpd_batch_size": kpd_batch_size,
            "seed": seed,
        },
        "models": models,
    }
