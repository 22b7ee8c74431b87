"""Unbinned unfolding end to end: train on simulated pairs, unfold measured events, histogram.

Two methods share one model file and one result type:

* ``"cinn"``: an ensemble of conditional flows q(x_truth | x_reco) (Bellagente
  et al. 2006.06685), each trained on a bootstrap resample of the detected
  pairs. A measured event's posterior samples carry weights 1 / (S eps(x)):
  the learned efficiency brings back the events the detector missed. The
  posterior inherits the simulation's prior.
* ``"spinup"``: the prior-independent forward model T(x_reco | x_truth),
  eps(x_truth) and an importance proposal (one cINN), then, at unfolding
  time, a :class:`~hepflows.inference.spinup.SPINUP` density fitted to the
  measured events, one fit per ensemble member (different seeds). Each
  event's posterior under the fitted density, on the proposal points, gives
  the weights.

Either way the result (:class:`Unfolded`) holds, per ensemble member, S
weighted truth points for each measured event. Histograms take their counts
from the ensemble mean. Their covariance is the sum of two parts:

* statistics: each measured event is Poisson, so event i adds
  c_i c_i^T, with c_ib its weight in bin b;
* the spread of the ensemble.

Unweighted truth-level events are drawn from the pooled points.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

import hepflows
from hepflows.device import generator_on, resolve_device
from hepflows.errors import CheckpointError, ConfigError, InputError
from hepflows.inference.calibration import histogram_chi2
from hepflows.inference.conditional import (
    ConditionalDensity,
    check_holdout,
    check_names,
    unfolded_weights,
)
from hepflows.inference.efficiency import Efficiency
from hepflows.inference.observables import check_observables, units
from hepflows.inference.pairs import Pairs
from hepflows.inference.spinup import SPINUP, inside_support
from hepflows.io.atomic import atomic_write, read_metadata
from hepflows.progress import progress_bar

METHODS = ("cinn", "spinup")
#: Default posterior points per event of the cINN and of SPINUP (its fit's default).
CINN_SAMPLES = 50
SPINUP_SAMPLES: int = inspect.signature(SPINUP.fit).parameters["samples"].default
#: ``format`` entry of a saved unfolding model.
FORMAT = "hepflows-unfolding-1"
#: Version of the unfolded-events HDF5 layout.
EVENTS_FORMAT = 1


@dataclass
class UnfoldingModel:
    """What ``hepflows unfold train`` makes: the learned pieces of one method.

    Attributes:
        method: ``"cinn"`` or ``"spinup"``.
        names: the observables (truth and reco share them).
        efficiency: eps(x_truth).
        posteriors: cINN ensemble q(x_truth | x_reco) (spinup: its one proposal).
        forward: T(x_reco | x_truth) (spinup only).
        settings: training settings and the simulation's set-up, JSON-ready.
    """

    method: str
    names: tuple[str, ...]
    efficiency: Efficiency
    posteriors: list[ConditionalDensity]
    forward: ConditionalDensity | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        """Where the conditional flows run (the efficiency classifier stays on the CPU)."""
        return self.posteriors[0].device

    def check(self, names: tuple[str, ...]) -> None:
        """Refuse data whose observables (and so units) differ from the model's."""
        check_names(self.names, names, f"this {self.method} unfolding model")

    # ------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike) -> None:
        """Write every network and scaler to one safetensors file (atomic)."""
        from safetensors.torch import save_file

        tensors: dict[str, Tensor] = {}
        for j, member in enumerate(self.posteriors):
            tensors |= member.tensors(f"post{j}.")
        if self.forward is not None:
            tensors |= self.forward.tensors("forward.")
        tensors |= self.efficiency.tensors("eff.")
        state = {
            "method": self.method,
            "names": list(self.names),
            "units": units(self.names),
            "posteriors": [m.state() for m in self.posteriors],
            "forward": None if self.forward is None else self.forward.state(),
            "efficiency": self.efficiency.state(),
            "settings": self.settings,
        }
        meta = {"format": FORMAT, "hepflows_version": hepflows.__version__,
                "state": json.dumps(state)}  # fmt: skip
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | torch.device | None = None
    ) -> UnfoldingModel:
        """Rebuild a model written by :meth:`save`, its flows on ``device`` (default CPU)."""
        from safetensors.torch import load_file

        meta = read_metadata(path, FORMAT, "unfolding model",
                             "train one with `hepflows unfold train`")  # fmt: skip
        try:
            state = json.loads(meta["state"])
            tensors = load_file(str(path))
            posteriors = [ConditionalDensity.from_saved(s, tensors, f"post{j}.", device)
                          for j, s in enumerate(state["posteriors"])]  # fmt: skip
            forward = None
            if state["forward"] is not None:
                forward = ConditionalDensity.from_saved(state["forward"], tensors, "forward.",
                                                        device)  # fmt: skip
            efficiency = Efficiency.from_saved(state["efficiency"], tensors, "eff.")
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{path}: cannot rebuild the unfolding model ({err}); train it again"
            ) from None
        return cls(state["method"], tuple(state["names"]), efficiency.eval(), posteriors,
                   forward, state["settings"])  # fmt: skip


def _check_pairs(pairs: Pairs) -> None:
    if not bool((pairs.weights > 0).all()):
        raise InputError("unfolding needs positive event weights; unweight the simulation first")
    if int(pairs.passed.sum()) < 2 or bool(pairs.passed.all()):
        raise InputError("the pairs need both detected and missed events")


def train(
    pairs: Pairs,
    method: str = "cinn",
    ensemble: int = 3,
    steps: int = 5000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    transforms: int = 6,
    bins: int = 10,
    hidden: tuple[int, ...] = (128, 128),
    efficiency_epochs: int = 50,
    seed: int = 0,
    progress: bool = False,
    base: UnfoldingModel | None = None,
    holdout: float = 0.1,
    epochs: float | None = 10.0,
    device: str | torch.device | None = None,
) -> UnfoldingModel:
    """Learn an unfolding from simulated (truth, reco, passed) pairs.

    Args:
        pairs: simulated pairs (the training prior). Event weights (the
            generator's few overweight events) enter the cINN's bootstrap draws;
            the forward model and the efficiency are conditional on the truth,
            so the prior's weights do not change them.
        method: ``"cinn"`` (ensemble of posteriors) or ``"spinup"`` (forward
            model, efficiency and one proposal).
        ensemble: cINN members, each on a bootstrap resample of the detected
            pairs (spinup: ignored at training; its ensemble is fitted at unfolding).
        steps, batch_size, lr: training of each conditional flow.
        transforms, bins, hidden: size of each conditional flow.
        efficiency_epochs: the most epochs of the efficiency classifier.
        seed: seeds initialisations, bootstrap draws and batches.
        progress: progress bars.
        base: spinup only: take the efficiency and the proposal (first member)
            from this model, a cINN trained on the same pairs, and train only
            the forward model.
        holdout: fraction of the detected pairs that checks each flow's held-out
            NLL every 100 steps; the flow keeps its best weights
            (:meth:`ConditionalDensity.fit`). A cINN member is checked on up to
            this many of its bootstrap's out-of-bag pairs. 0: no check, all steps.
        epochs: at most this many passes over its pairs for each conditional
            flow, cINN member or SPINUP forward model (``None``: ``steps``); the
            learning rate anneals over the capped steps. A bootstrap repeats a
            third of the pairs and the flow learns them by heart: on 53k detected
            Drell-Yan pairs the out-of-bag NLL is lowest after 8-17 epochs and
            rises after, and the held-out r^2 test fails; the forward model on
            31k pairs has its best held-out NLL after 7 of 49 epochs
            (docs/unfolding.md).
        device: where the conditional flows train and run (``"cpu"`` default,
            ``"cuda"``, ``"mps"``); the small efficiency classifier trains on the
            CPU. With ``base``, its proposal must be on this device.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if ensemble < 1:
        raise ConfigError(f"ensemble must be >= 1, got {ensemble}")
    check_holdout(holdout)
    if epochs is not None and epochs <= 0:
        raise ConfigError(f"epochs must be > 0 or None, got {epochs}")
    _check_pairs(pairs)
    names = pairs.observables
    truth, reco = pairs.truth[pairs.passed], pairs.reco[pairs.passed]
    weights = pairs.weights[pairs.passed].double()
    size = {"transforms": transforms, "bins": bins, "hidden": hidden}
    dev = resolve_device(device)
    fit = {"batch_size": batch_size, "lr": lr, "progress": progress}

    def capped(n: int) -> int:
        """Steps for a flow on n pairs: ``steps``, at most ``epochs`` passes."""
        return steps if epochs is None else min(steps, max(1, math.ceil(epochs * n / batch_size)))

    if base is not None:
        if method != "spinup" or base.names != names:
            raise ConfigError("base serves a spinup model with the same observables")
        efficiency, members = base.efficiency, base.posteriors[:1]
    else:
        efficiency = Efficiency(names, seed=seed).fit(
            pairs.truth, pairs.passed, epochs=efficiency_epochs, seed=seed, progress=progress
        )
        members = []
    g = torch.Generator().manual_seed(seed)
    forward = None
    for j in range(0 if base is not None else ensemble if method == "cinn" else 1):
        idx = (
            torch.multinomial(weights, len(truth), replacement=True, generator=g)
            if method == "cinn"
            else torch.arange(len(truth), device="cpu")  # SPINUP's proposal needs no bootstrap
        )
        member = ConditionalDensity(names, seed=seed + j, device=dev, **size)
        check: dict[str, Any] = {"holdout": holdout}
        if method == "cinn" and holdout > 0:
            out = torch.ones(len(truth), dtype=torch.bool, device="cpu")
            out[idx] = False
            oob = torch.nonzero(out)[:, 0]
            keep = max(1, round(holdout * len(truth)))
            oob = oob[torch.randperm(len(oob), generator=g, device="cpu")[:keep]]
            check = {"validation": (truth[oob], reco[oob])}
        members.append(member.fit(truth[idx], reco[idx], seed=seed + j, steps=capped(len(idx)),
                                  description=f"cINN {j + 1}", **fit, **check))  # fmt: skip
    if method == "spinup":
        forward = ConditionalDensity(names, seed=seed + 100, device=dev, **size)
        n_fit = len(truth) - (max(1, round(holdout * len(truth))) if holdout > 0 else 0)
        forward.fit(reco, truth, seed=seed + 100, description="forward model T", holdout=holdout,
                    steps=capped(n_fit), **fit)  # fmt: skip
    support = torch.stack([pairs.truth.amin(0), pairs.truth.amax(0)]).tolist()
    settings = {"ensemble": ensemble, "efficiency_epochs": efficiency_epochs, "seed": seed,
                "holdout": holdout, "epochs": epochs, "steps": steps,
                "pairs": len(pairs), "setup": pairs.setup, "support": support, **size,
                **fit}  # fmt: skip
    settings.pop("progress")
    return UnfoldingModel(method, names, efficiency.eval(), members, forward, settings)


@dataclass
class Unfolded:
    """Unfolded events: per ensemble member, S weighted truth points per measured event.

    Attributes:
        names: the observables.
        method: ``"cinn"`` or ``"spinup"``.
        points: per member, (S, n, k) truth points for the n measured events.
        weights: per member, (S, n) weights pi / eps, with pi the posterior
            probability of the point; summed over S, event i counts 1 / eps
            (all events, detected or not).
        efficiency: per member, (S, n) eps at the points.
        info: how it was made (samples, seeds, SPINUP log-likelihoods...).
    """

    names: tuple[str, ...]
    method: str
    points: list[Tensor]
    weights: list[Tensor]
    efficiency: list[Tensor]
    info: dict[str, Any] = field(default_factory=dict)

    def _column(self, name: str) -> int:
        if name not in self.names:
            raise InputError(f"no observable {name!r}; these are {list(self.names)}")
        return self.names.index(name)

    def member_histograms(self, name: str, edges: np.ndarray) -> np.ndarray:
        """Counts (M, B) of each member in bins ``edges`` (B + 1,) of one observable."""
        j = self._column(name)
        out = []
        for x, w in zip(self.points, self.weights, strict=True):
            counts, _ = np.histogram(x[..., j].numpy().ravel(), edges, weights=w.numpy().ravel())
            out.append(counts)
        return np.stack(out)

    def histogram(self, name: str, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counts (B,) and covariance (B, B) of one observable.

        The covariance is that of the unfolded counts around the truth of the
        same events, and has three parts:

        * migration correlations: sum_i c_i c_i^T, with c_ib event i's weight
          in bin b (each measured event is Poisson);
        * on the diagonal, raised to sum_i E_post[1_b / eps^2], the variance
          of a 1 / eps weighted count: each event's own posterior spread and
          the extrapolation to undetected events;
        * the ensemble's spread.
        """
        edges = np.asarray(edges, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or not (np.diff(edges) > 0).all():
            raise InputError("edges must be an increasing (B + 1,) array")
        members = self.member_histograms(name, edges)
        counts = members.mean(0)
        x, w = self.points[0][..., self._column(name)].numpy(), self.weights[0].numpy()
        eps = self.efficiency[0].numpy()
        b = len(edges) - 1
        index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, b - 1)
        inside = (x >= edges[0]) & (x < edges[-1])
        per_event = np.zeros((x.shape[1], b))
        for s in range(x.shape[0]):  # c_ib: event i's weight in bin b
            np.add.at(per_event, (np.arange(x.shape[1])[inside[s]], index[s][inside[s]]),
                      w[s][inside[s]])  # fmt: skip
        covariance = per_event.T @ per_event
        spread, _ = np.histogram(x.ravel(), edges, weights=(w / eps).ravel())
        diagonal = np.maximum(spread, np.diag(covariance))
        covariance[np.diag_indices(b)] = diagonal
        if len(members) > 1:
            covariance = covariance + np.cov(members, rowvar=False, ddof=1).reshape(b, b)
        return counts, covariance

    def closure(self, truth: Tensor, edges: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        """Each observable's unfolded histogram against the (n, k) truth of the same events.

        Returns, per observable: ``counts`` (B,), ``covariance`` (B, B), ``truth``
        (B,) and the ``chi2`` and ``ndf`` of :func:`histogram_chi2`.
        """
        if truth.ndim != 2 or truth.shape[1] != len(self.names):
            raise InputError(f"truth must be (n, {len(self.names)}), got {tuple(truth.shape)}")
        out = {}
        for j, name in enumerate(self.names):
            counts, cov = self.histogram(name, edges[name])
            true, _ = np.histogram(truth[:, j].numpy(), edges[name])
            chi2, ndf = histogram_chi2(counts, true, cov)
            out[name] = {"counts": counts, "covariance": cov, "truth": true, "chi2": chi2,
                         "ndf": ndf}  # fmt: skip
        return out

    def total(self) -> float:
        """Unfolded number of events (all, detected or not), ensemble mean."""
        return float(torch.stack([w.sum() for w in self.weights]).mean())

    def events(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Unweighted truth-level events (n, k) drawn from the pooled weighted points.

        Args:
            n: how many (``None``: the unfolded total, rounded).
            generator: for the draw (``None``: seeded with 0).
        """
        n = round(self.total()) if n is None else n
        x = torch.cat([p.reshape(-1, len(self.names)) for p in self.points])
        w = torch.cat([v.reshape(-1) for v in self.weights]).double()
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        return x[torch.multinomial(w, n, replacement=True, generator=g)]


def unfold(
    model: UnfoldingModel,
    measured: Tensor,
    names: tuple[str, ...],
    samples: int | None = None,
    ensemble: int = 3,
    seed: int = 0,
    spinup: dict[str, Any] | None = None,
    progress: bool = False,
) -> Unfolded:
    """Unfold (n, k) measured (detected) reco events with a trained model.

    Args:
        model: from :func:`train` or :meth:`UnfoldingModel.load`.
        measured: (n, k) detector-level values of the detected events.
        names: their observables (must be the model's, in order).
        samples: S posterior points per event (default: cINN 50, SPINUP
            :meth:`SPINUP.fit`'s 128, since its sharpened density needs more).
        ensemble: SPINUP fits (cINN: every trained member is used).
        seed: seeds the posterior draws (on the model's device, :attr:`UnfoldingModel.device`)
            and SPINUP.
        spinup: keyword arguments of :meth:`SPINUP.fit` (iterations, steps...)
            and of :class:`SPINUP` (transforms, bins, hidden).
        progress: progress bars.
    """
    model.check(tuple(names))
    if measured.ndim != 2 or measured.shape[1] != len(names) or len(measured) == 0:
        raise InputError(f"measured must be (n, {len(names)}) with n >= 1, "
                         f"got {tuple(measured.shape)}")  # fmt: skip
    if not bool(torch.isfinite(measured).all()):
        raise InputError("measured events contain NaN or infinite values")
    measured = measured.double()
    g = generator_on(model.device, seed)
    support = model.settings.get("support")
    support = None if support is None else torch.tensor(support, dtype=torch.float64, device="cpu")
    points, weights, efficiencies = [], [], []
    if samples is None:
        samples = CINN_SAMPLES if model.method == "cinn" else SPINUP_SAMPLES
    info: dict[str, Any] = {"samples": samples, "seed": seed, "measured": len(measured)}
    if model.method == "cinn":
        with progress_bar(len(model.posteriors), "cINN unfold", enabled=progress) as bar:
            for member in model.posteriors:
                x = member.sample(measured, samples, generator=g)
                eps = model.efficiency(x.reshape(-1, len(names))).view(samples, -1)
                inside = None if support is None else inside_support(x, support)
                points.append(x)
                weights.append(unfolded_weights(x, eps, inside))
                efficiencies.append(eps)
                bar.advance(1)
    else:
        if model.forward is None:
            raise CheckpointError("this SPINUP model has no forward model; train it again")
        options = dict(spinup or {})
        sizes = {k: options.pop(k) for k in ("transforms", "bins", "hidden") if k in options}
        info["spinup"] = []
        for j in range(ensemble):
            fit = SPINUP(model.forward, model.efficiency, model.posteriors[0], seed=seed + j,
                         support=support, **sizes)  # fmt: skip
            fit.fit(measured, samples=samples, seed=seed + j, progress=progress, **options)
            points.append(fit.points)
            weights.append(fit.posterior / fit.eps)
            efficiencies.append(fit.eps)
            info["spinup"].append({"history": fit.history, "acceptance": fit.acceptance()})
    return Unfolded(tuple(names), model.method, points, weights, efficiencies, info)


def binning(values: Tensor, names: tuple[str, ...], bins: int = 20) -> dict[str, np.ndarray]:
    """Equal-population bin edges (B + 1,) per observable from (n, k) reference values."""
    check_observables(names)
    if values.ndim != 2 or values.shape[1] != len(names) or len(values) < bins:
        raise InputError(f"values must be (n >= {bins}, {len(names)}), got {tuple(values.shape)}")
    q = torch.linspace(0, 1, bins + 1, dtype=torch.float64, device="cpu")
    return {n: np.unique(torch.quantile(values[:, j].double(), q).numpy())
            for j, n in enumerate(names)}  # fmt: skip


def write_unfolded(
    path: str | os.PathLike,
    unfolded: Unfolded,
    edges: dict[str, np.ndarray],
    generator: torch.Generator | None = None,
) -> None:
    """Write unweighted unfolded events and histograms with covariances to HDF5 (atomic).

    Layout: dataset ``events`` (N, k); group ``histograms/<name>`` with
    ``edges``, ``counts`` and ``covariance``; attributes ``observables``,
    ``units``, ``method``, ``info`` (JSON) and ``format``.
    """
    from hepflows.extras import require

    h5py = require("h5py", "inference", "Writing unfolded events")
    events = unfolded.events(generator=generator).numpy()
    hists = {n: (np.asarray(e), *unfolded.histogram(n, e)) for n, e in edges.items()}

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("events", data=events)
            for n, (e, counts, cov) in hists.items():
                grp = f.create_group(f"histograms/{n}")
                grp["edges"], grp["counts"], grp["covariance"] = e, counts, cov
            f.attrs["observables"] = json.dumps(list(unfolded.names))
            f.attrs["units"] = json.dumps(units(unfolded.names))
            f.attrs["method"] = unfolded.method
            f.attrs["info"] = json.dumps(unfolded.info, default=float)
            f.attrs["format"] = EVENTS_FORMAT

    atomic_write(path, write)
