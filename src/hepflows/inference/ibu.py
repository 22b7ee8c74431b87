"""Iterative Bayesian unfolding (D'Agostini) with ``pyunfold``: the binned baseline.

One observable at a time: the response matrix P(reco bin | truth bin) and
the per-truth-bin efficiency come from simulated pairs, with an underflow
and an overflow bin on both levels wherever detected events fall outside the
bins (so migrations from outside are not unfolded into the edge bins);
pyunfold iterates from a uniform prior until its own stopping rule
(Kolmogorov-Smirnov distance between iterations below ``ts_stopping``) is
met, as its documentation recommends. Uncertainties: pyunfold's statistical
error (data) and its systematic error from the finite simulation (response),
added in quadrature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hepflows.errors import InputError
from hepflows.extras import require

#: pyunfold settings used (printed by the benchmark).
SETTINGS = {"ts": "ks", "ts_stopping": 0.01, "max_iter": 100, "prior": "uniform",
            "cov_type": "multinomial"}  # fmt: skip


@dataclass
class IBUResult:
    """An IBU unfolding of one observable.

    Attributes:
        counts: (B,) unfolded truth-level counts (all events, detected or not).
        errors: (B,) their uncertainties (statistical and response, in quadrature).
        iterations: iterations pyunfold ran.
        edges: (B + 1,) truth bin edges.
        settings: the pyunfold settings.
    """

    counts: np.ndarray
    errors: np.ndarray
    iterations: int
    edges: np.ndarray
    settings: dict[str, Any]


def ibu(
    truth: np.ndarray,
    reco: np.ndarray,
    passed: np.ndarray,
    measured: np.ndarray,
    edges: np.ndarray,
    reco_edges: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    ts_stopping: float = SETTINGS["ts_stopping"],
    max_iter: int = SETTINGS["max_iter"],
) -> IBUResult:
    """Unfold the measured values of one observable with pyunfold.

    Args:
        truth: (n,) simulated truth values.
        reco: (n,) their detector-level values (used where ``passed``).
        passed: (n,) bool detection flags.
        measured: (m,) measured detector-level values.
        edges: (B + 1,) truth bins.
        reco_edges: (R + 1,) reco bins (default: ``edges``).
        weights: (n,) simulation weights (default 1).
        ts_stopping: pyunfold's stopping threshold.
        max_iter: pyunfold's iteration cap.
    """
    pyunfold = require("pyunfold", "inference", "Iterative Bayesian unfolding")
    truth, reco, measured, edges = (np.asarray(a, dtype=np.float64)
                                    for a in (truth, reco, measured, edges))  # fmt: skip
    passed = np.asarray(passed, dtype=bool)
    reco_edges = edges if reco_edges is None else np.asarray(reco_edges, dtype=np.float64)
    w = np.ones_like(truth) if weights is None else np.asarray(weights, dtype=np.float64)
    if not (truth.shape == reco.shape == passed.shape == w.shape and truth.ndim == 1):
        raise InputError("truth, reco, passed and weights must be (n,) arrays of one length")
    # Under- and overflow bins, where events fall, keep migrations from outside the
    # range from being unfolded into the edge bins; only the inner bins are returned.
    t_edges, inner = _with_flow(edges, truth[passed])
    r_edges, _ = _with_flow(reco_edges, np.concatenate((reco[passed], measured)))
    generated, _ = np.histogram(truth, t_edges, weights=w)
    if (generated <= 0).any():
        empty = (np.flatnonzero(generated <= 0) - inner.start).tolist()
        raise InputError(f"IBU: truth bins {empty} hold no simulated events (-1: underflow): "
                         "use fewer or wider bins")  # fmt: skip
    response_hist, _, _ = np.histogram2d(reco[passed], truth[passed], (r_edges, t_edges),
                                         weights=w[passed])  # fmt: skip
    response_var, _, _ = np.histogram2d(reco[passed], truth[passed], (r_edges, t_edges),
                                        weights=w[passed] ** 2)  # fmt: skip
    detected = response_hist.sum(0)
    eff = detected / generated
    if (detected <= 0).any():
        empty = (np.flatnonzero(detected <= 0) - inner.start).tolist()
        raise InputError(f"IBU: truth bins {empty} have no detected simulated event: use "
                         "fewer or wider bins")  # fmt: skip
    eff_err = np.sqrt(np.clip(eff * (1 - eff), 0, None) / generated)
    norm = eff / detected
    response = response_hist * norm
    response_err = np.sqrt(response_var) * norm
    data, _ = np.histogram(measured, r_edges)
    out = pyunfold.iterative_unfold(
        data=data, data_err=np.sqrt(data), response=response, response_err=response_err,
        efficiencies=eff, efficiencies_err=eff_err, ts=SETTINGS["ts"], ts_stopping=ts_stopping,
        max_iter=max_iter, cov_type=SETTINGS["cov_type"],
    )  # fmt: skip
    errors = np.hypot(out["stat_err"], out["sys_err"])[inner]
    settings = {**SETTINGS, "ts_stopping": ts_stopping, "max_iter": max_iter}
    return IBUResult(np.asarray(out["unfolded"])[inner], errors, int(out["num_iterations"]),
                     edges, settings)  # fmt: skip


def _with_flow(edges: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, slice]:
    """Edges with an underflow and an overflow bin added where ``values`` fall outside.

    Returns the edges and the slice of the original bins in the extended histogram.
    """
    lo = values.min(initial=np.inf) < edges[0]
    hi = values.max(initial=-np.inf) >= edges[-1]
    out = np.concatenate((
        [values.min() - 1.0] if lo else [], edges, [values.max() + 1.0] if hi else [],
    ))  # fmt: skip
    return out, slice(1 if lo else 0, len(edges) - 1 + (1 if lo else 0))
