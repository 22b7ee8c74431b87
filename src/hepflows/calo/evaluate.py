"""Is a shower generator faithful? CaloChallenge-style evaluation (2410.21611).

* the classifier tests of :mod:`hepflows.calo.classifier` (a converged MLP
  on three input views, cross-checked by gradient-boosted trees);
* :func:`plot_features`: histograms of the high-level features with the
  separation power of each model;
* :func:`evaluate`: all of it, plus FPD and KPD, as one JSON-ready dict.

Feature definitions, separation power, FPD and KPD live in
:mod:`hepflows.calo.features`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from hepflows.calo.classifier import (
    BATCH_SIZE,
    EPOCHS,
    HIDDEN,
    LR,
    LR_DECAY,
    MAX_SHOWERS,
    PATIENCE,
    VIEWS,
    ClassifierResult,
    auc_null_sigma,
    check_count,
    check_same_geometry,
    classifier_test,
    gbdt_test,
)
from hepflows.calo.features import (
    feature_matrix,
    fpd,
    high_level_features,
    kpd,
    separation_power,
)
from hepflows.calo.geometry import Geometry
from hepflows.calo.showers import Showers
from hepflows.calo.showerstream import iter_showers
from hepflows.errors import ConfigError, HepflowsWarning, InputError
from hepflows.extras import require
from hepflows.io.atomic import atomic_write

__all__ = ["ClassifierResult", "classifier_test", "evaluate", "gbdt_test", "plot_features"]

#: Largest |AUC(MLP) - AUC(GBDT)| on the voxel / E_inc view before the evaluation warns.
AGREEMENT = 0.03

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
        check_same_geometry(reference, s, repr(label))
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
#: A shower set given to :func:`evaluate`: in memory, or a CaloChallenge file read in chunks.
ShowerSource = Showers | str | os.PathLike


def _features_of(
    source: ShowerSource, threshold: float, max_showers: int, chunk_size: int,
    geometry: Geometry | None,
) -> tuple[Showers, dict[str, np.ndarray], np.ndarray, int]:  # fmt: skip
    """(the showers the classifiers and the plot see, the high-level features (N,) each and
    the (N, K) feature matrix of all N showers, N) of a set; a file is read ``chunk_size``
    showers at a time and only its first ``max_showers`` are kept."""
    if isinstance(source, Showers):
        f = high_level_features(source, threshold)
        return source, f, feature_matrix(source, f), len(source)
    feats, mats, head, kept = [], [], [], 0
    for chunk in iter_showers(source, chunk_size=chunk_size, geometry=geometry):
        f = high_level_features(chunk, threshold)
        feats.append(f)
        mats.append(feature_matrix(chunk, f))
        if kept < max_showers:
            head.append(chunk[: max_showers - kept])
            kept += len(head[-1])
    if not head:
        raise InputError(f"{source} holds no showers")
    merged = {k: np.concatenate([f[k] for f in feats]) for k in feats[0]}
    return Showers.concatenate(head), merged, np.concatenate(mats), len(merged["E_inc"])


def evaluate(
    reference: ShowerSource,
    samples: dict[str, ShowerSource],
    *,
    levels: Sequence[str] = VIEWS,
    gbdt: bool = True,
    hidden: int | Sequence[int] = HIDDEN,
    epochs: int = EPOCHS,
    lr: float = LR,
    patience: int | None = PATIENCE,
    lr_decay: float | None = LR_DECAY,
    batch_size: int = BATCH_SIZE,
    max_showers: int = MAX_SHOWERS,
    bins: int = 40,
    threshold: float = 0.0,
    kpd_batches: int = 10,
    kpd_batch_size: int = 5000,
    plot: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = False,
    chunk_size: int = 5000,
    geometry: str | os.PathLike | Geometry | None = None,
) -> dict[str, Any]:
    """Every CaloChallenge measure of each model against the reference.

    The reference and the samples are :class:`Showers` in memory or the paths of
    CaloChallenge HDF5 files. A file is streamed (granular datasets 2 and 3): its
    high-level features, separation powers, FPD and KPD come from all of its
    showers, read ``chunk_size`` at a time; the classifiers and the plot see its
    first ``max_showers`` showers (all that they would draw anyway), so the memory
    is bounded by ``max_showers`` x V, not by the file.

    Per model: separation power of every high-level feature (bins as in
    :func:`plot_features`), the MLP classifier test at each of ``levels``
    (:func:`~hepflows.calo.classifier.classifier_test`), the GBDT cross-check on
    the voxel / E_inc view (:func:`~hepflows.calo.classifier.gbdt_test`), FPD and
    KPD on :func:`~hepflows.calo.features.feature_matrix`.

    A :class:`~hepflows.errors.HepflowsWarning` is issued (and listed under
    ``"warnings"``) when a classifier reached its cap before converging, or
    when the MLP and the GBDT AUCs on voxel / E_inc differ by more than
    :data:`AGREEMENT` (0.03): one of them has not found a difference the other
    sees, so the lower AUC flatters the model (below ~1700 test showers per
    class the allowed gap widens to 3 sqrt(2) times the AUC's statistical
    error, :func:`~hepflows.calo.classifier.auc_null_sigma`).

    Args:
        reference: reference showers.
        samples: model label -> generated showers (same geometry).
        levels: MLP input views to run (``"low"``, ``"log"``, ``"high"``; empty: none).
        gbdt: also run the GBDT cross-check (on ``"low"``).
        hidden, epochs, lr, patience, lr_decay, batch_size, max_showers: MLP options
            (see :func:`~hepflows.calo.classifier.classifier_test`).
        bins: histogram bins for the separation powers.
        threshold: voxel energy (MeV) for the sparsity.
        kpd_batches, kpd_batch_size: KPD batching (see :func:`~hepflows.calo.features.kpd`).
        plot: if given, also write :func:`plot_features` to this PNG.
        seed: seed of the classifiers and the KPD batches.
        progress: print one line per result and show classifier progress bars.
        chunk_size: showers read at a time from a file.
        geometry: the files' geometry (name, XML or :class:`Geometry`); default: the
            built-in one their voxel count names (samples: the reference's).

    Returns:
        ``{"reference": {...}, "settings": {...}, "classifier_converged": bool,
        "warnings": [str], "models": {label: {"n_showers", "separation":
        {feature: S}, "separation_mean", "classifier": {view | "gbdt":
        ClassifierResult.to_dict()}, "fpd", "kpd": {"value", "error"}}}}``,
        JSON-ready (floats, ints, strings, bools).
    """
    if not samples:
        raise InputError("evaluate needs at least one sample to compare with the reference")
    bad = [lvl for lvl in levels if lvl not in VIEWS]
    if bad:
        raise ConfigError(f"unknown classifier levels {bad}: use any of {', '.join(VIEWS)}")
    classify = bool(levels) or gbdt
    geometry = None if geometry is None else Geometry.resolve(geometry)
    reference, ref_f, ref_m, n_ref = _features_of(reference, threshold, max_showers, chunk_size,
                                                  geometry)  # fmt: skip
    loaded = {label: _features_of(s, threshold, max_showers, chunk_size, reference.geometry)
              for label, s in samples.items()}  # fmt: skip
    samples = {label: v[0] for label, v in loaded.items()}
    for label, s in samples.items():
        check_same_geometry(reference, s, repr(label))
        if classify:
            check_count(s, f"sample {label!r}")
    if classify:
        check_count(reference, "the reference")
    models: dict[str, Any] = {}
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HepflowsWarning)
        for label, s in samples.items():
            models[label] = _evaluate_one(
                reference, s, label, (ref_f, ref_m), loaded[label][1:], levels=levels,
                gbdt=gbdt, bins=bins,
                threshold=threshold, kpd_batches=kpd_batches, kpd_batch_size=kpd_batch_size,
                seed=seed, progress=progress,
                mlp={"hidden": hidden, "epochs": epochs, "lr": lr, "patience": patience,
                     "lr_decay": lr_decay, "batch_size": batch_size, "max_showers": max_showers},
            )  # fmt: skip
    for w in caught:  # re-issue outside the recorder, so callers see them too
        if issubclass(w.category, HepflowsWarning):
            notes.append(str(w.message))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if plot is not None:
        plot_features(reference, samples, plot, bins=bins, threshold=threshold)
    hidden_t = [hidden] if isinstance(hidden, int) else list(hidden)
    return {
        "reference": {"n_showers": n_ref, "geometry": reference.geometry.name},
        "settings": {
            "levels": list(levels),
            "gbdt": gbdt,
            "hidden": hidden_t,
            "epochs": epochs,
            "lr": lr,
            "patience": patience,
            "lr_decay": lr_decay,
            "batch_size": batch_size,
            "max_showers": max_showers,
            "bins": bins,
            "threshold": threshold,
            "kpd_batches": kpd_batches,
            "kpd_batch_size": kpd_batch_size,
            "seed": seed,
        },
        "classifier_converged": all(
            r["converged"] for m in models.values() for r in m["classifier"].values()
        ),
        "warnings": notes,
        "models": models,
    }


def _evaluate_one(
    reference: Showers,
    s: Showers,
    label: str,
    ref: tuple[dict[str, np.ndarray], np.ndarray],
    gen: tuple[dict[str, np.ndarray], np.ndarray, int],
    *,
    levels: Sequence[str],
    gbdt: bool,
    mlp: dict[str, Any],
    bins: int,
    threshold: float,
    kpd_batches: int,
    kpd_batch_size: int,
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    """The report of one model (see :func:`evaluate`): ``ref`` and ``gen`` hold the features
    and feature matrices of all showers (and the sample's count), ``reference`` and ``s``
    the showers the classifiers see."""
    (ref_f, ref_m), (gen_f, gen_m, n_gen) = ref, gen
    seps = _separations(ref_f, gen_f, bins)
    value, error = kpd(ref_m, gen_m, kpd_batches, kpd_batch_size, seed=seed)
    out: dict[str, Any] = {
        "n_showers": n_gen,
        "separation": seps,
        "separation_mean": float(np.mean(list(seps.values()))),
        "fpd": fpd(ref_m, gen_m),
        "kpd": {"value": value, "error": error},
        "classifier": {},
    }
    if progress:
        print(f"{label}: mean separation power {out['separation_mean']:.4f}  "
              f"FPD {out['fpd']:.4g}  KPD {value:.3g} ± {error:.2g}")  # fmt: skip
    results = {lvl: classifier_test(reference, s, lvl, seed=seed, progress=progress, **mlp)
               for lvl in levels}  # fmt: skip
    if gbdt:
        results["gbdt"] = gbdt_test(reference, s, "low", max_showers=mlp["max_showers"],
                                    seed=seed)  # fmt: skip
    for key, result in results.items():
        out["classifier"][key] = result.to_dict()
        if progress:
            print(f"{label}: {result.summary()}")
    if results:  # the verdict: what the strongest classifier found
        out["auc_max"] = max(r.auc for r in results.values())
    if "low" in results and "gbdt" in results:
        gap = abs(results["low"].auc - results["gbdt"].auc)
        # two AUCs of uninformative scores on n test showers per class differ by
        # sqrt(2) sigma_AUC; below ~2 * 1700 test showers 3 of those exceed 0.03
        allowed = max(AGREEMENT, 3 * math.sqrt(2) * auc_null_sigma(results["low"].n_test // 2))
        out["auc_agreement"] = gap
        if gap > allowed:
            warnings.warn(
                f"{label}: the voxel/E_inc MLP (AUC {results['low'].auc:.3f}) and the GBDT "
                f"(AUC {results['gbdt'].auc:.3f}) disagree by {gap:.3f} > {allowed:.3f}: the "
                "lower one missed a difference the other found; quote the higher",
                HepflowsWarning,
                stacklevel=3,
            )
    return out
