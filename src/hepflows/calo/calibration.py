"""Calorimeter energy calibration by flow likelihood (Du, Krause, Mikuni, Nachman, Pang, Shih,
arXiv:2404.18992), and the direct regression it is compared with.

CaloFlow's flow I models p(E_1..E_L, M | E_inc): the layer energies and lateral
moments of a shower given its incident energy. Read the other way it is the
likelihood of E_inc for a measured shower, and its maximum is an estimate of
E_inc that does not depend on the distribution of E_inc the flow was trained on
(the prior): the flow learns p(x | E), which is the same under any prior. A
regression trained by mean squared error learns E[E_inc | x] instead, a
posterior mean, which does depend on the prior (:class:`EnergyRegression`).

:func:`energy_log_likelihood` evaluates log p(x | E) on a grid of energies
(up to a term that does not depend on E: the Jacobian from the layer energies
to CaloFlow's u-variables depends on E only through u_0 = sum E_l / (s E),
whose -log(s E) is kept); :func:`calibrate` maximises it per shower (a scan
over the training range, then a finer one around the best point) and reads
the 68 % interval from -2 Delta ln L = 1.

Train the calibration flow on layer energies alone (``CaloFlow(moments=0)``,
Du et al.'s set-up): with the lateral moments, which flow I sees dequantised
by noise of 0.05 standard deviations, the likelihood in E is over-confident.
Measured on toy CaloGAN photons (12k showers, 40 epochs, 10-40 GeV tests):
the MLE moved by 0.67 % between two noise draws and the pulls were 1.30 wide;
on layer energies alone 0.06 % and 1.07, with a better resolution (2.09 %
against 2.22 %).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from hepflows.calo.caloflow import (
    ALPHA,
    MOMENT_NOISE,
    NOISE_MEV,
    CaloFlow,
    _logit,
    lateral_moments,
    layer_sums,
    voxel_layout,
)
from hepflows.calo.showers import Showers
from hepflows.errors import ConfigError, HepflowsWarning, InputError
from hepflows.flows.nets import MLP
from hepflows.progress import progress_bar
from hepflows.random import seeded
from hepflows.training.supervised import fit_supervised


@dataclass
class Calibration:
    """Maximum-likelihood incident energies of N showers (MeV).

    Attributes:
        energy: (N,) the maximum-likelihood E_inc.
        low, high: (N,) the 68 % interval, -2 Delta ln L <= 1 (clipped to the scan range).
        sigma: (N,) half its width, the likelihood-based uncertainty.
        at_edge: (N,) bool, the maximum sits at an end of the scan range (the
            training range): the estimate is a bound there.
    """

    energy: np.ndarray
    low: np.ndarray
    high: np.ndarray
    sigma: np.ndarray
    at_edge: np.ndarray


def _features(model: CaloFlow, showers: Showers, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per shower the E-independent pieces: u_1..u_{L-1} logits (standardised), moments,
    and the total layer energy (MeV)."""
    model._require_fitted()
    vox, e = model.tensors(showers)
    g = torch.Generator().manual_seed(seed)
    _, layers, _ = model._raw(vox, e, g)
    total = layers.sum(1)
    y_rest = (_logit(model._u_variables(layers, torch.ones_like(total))[:, 1:])
              - model.y1_mean[1:]) / model.y1_std[1:]  # fmt: skip
    moments = model._moment_variables(vox, g) if model.moments else total.new_zeros(len(vox), 0)
    return y_rest, moments, total


def energy_log_likelihood(
    model: CaloFlow,
    showers: Showers,
    energies_mev: Tensor | np.ndarray,
    seed: int = 0,
    batch_size: int = 65536,
) -> Tensor:
    """log p(shower | E_inc) of each shower at each energy (up to an E-independent term).

    Args:
        model: a trained CaloFlow (flow I is used).
        showers: N showers in the model's geometry.
        energies_mev: (G,) incident energies to evaluate, or (N, G) per shower.
        seed: seeds the 1 keV voxel noise and the moments' dequantisation noise
            (as in training).
        batch_size: flow evaluations per pass.

    Returns:
        (N, G) log-likelihoods.
    """
    y_rest, moments, total = _features(model, showers, seed)
    e = torch.as_tensor(energies_mev, dtype=torch.float32)
    n = len(total)
    grid = e.expand(n, -1) if e.ndim == 1 else e
    if grid.ndim != 2 or grid.shape[0] != n or not bool((grid > 0).all()):
        raise InputError(f"energies must be (G,) or ({n}, G) positive values in MeV, got "
                         f"shape {tuple(e.shape)}")  # fmt: skip
    g_count = grid.shape[1]
    out = torch.empty(n, g_count, dtype=torch.float64)
    rows = max(1, batch_size // g_count)
    scale = float(model.u0_scale)
    with torch.no_grad():
        for i in range(0, n, rows):
            eg = grid[i : i + rows]  # (m, G)
            m = len(eg)
            u0 = (total[i : i + rows, None] / (scale * eg)).clamp(0, 1)
            x0 = ALPHA + (1 - 2 * ALPHA) * u0
            y0 = (torch.log(x0) - torch.log1p(-x0) - model.y1_mean[0]) / model.y1_std[0]
            # log |dy0 / dE_tot| = log(1 - 2 alpha) - log(x0 (1 - x0)) - log std - log(s E)
            log_jac = -torch.log(x0) - torch.log1p(-x0) - torch.log(scale * eg)
            rest = torch.cat([y_rest[i : i + rows], moments[i : i + rows]], 1)
            y = torch.cat([y0.reshape(-1, 1), rest.repeat_interleave(g_count, 0)], 1)
            c = model._energy_context(eg.reshape(-1))
            lp = model.flow1.log_prob(y, c).view(m, g_count)
            out[i : i + rows] = (lp + log_jac).double()
    return out


def _interval(lp: Tensor, grid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Best point (parabola through the top three) and the -2 Delta ln L = 1 crossings,
    linearly interpolated, of (N, G) log-likelihoods on (N, G) increasing grids."""
    n, g_count = lp.shape
    k = lp.argmax(1).clamp(1, g_count - 2)
    rows = torch.arange(n)
    a, b, c = lp[rows, k - 1], lp[rows, k], lp[rows, k + 1]
    xa, xb, xc = grid[rows, k - 1], grid[rows, k], grid[rows, k + 1]
    denom = a - 2 * b + c
    step = (xc - xa) / 2
    shift = torch.where(denom < 0, 0.5 * (a - c) / denom.clamp(max=-1e-300), 0.0).clamp(-1, 1)
    best = xb + shift * step
    peak = lp.max(1).values
    inside = lp >= (peak - 0.5)[:, None]

    def crossing(first: bool) -> Tensor:
        idx = torch.arange(g_count).expand(n, -1)
        masked = torch.where(inside, idx, g_count if first else -1)
        j = masked.min(1).values if first else masked.max(1).values
        out_j = (j - 1).clamp(min=0) if first else (j + 1).clamp(max=g_count - 1)
        y_in, y_out = lp[rows, j], lp[rows, out_j]
        x_in, x_out = grid[rows, j], grid[rows, out_j]
        level = peak - 0.5
        frac = ((y_in - level) / (y_in - y_out).clamp_min(1e-12)).clamp(0, 1)
        return torch.where(out_j == j, x_in, x_in + frac * (x_out - x_in))

    return best, crossing(True), crossing(False)


def calibrate(
    model: CaloFlow,
    showers: Showers,
    energy_range_mev: tuple[float, float] | None = None,
    grid: int = 120,
    refine: int = 61,
    seed: int = 0,
    progress: bool = False,
    chunk: int = 4096,
) -> Calibration:
    """Maximum-likelihood E_inc and its 68 % interval for every shower.

    A scan of ``grid`` log-spaced energies over ``energy_range_mev`` (default:
    the model's training range) finds the best point; a second scan of
    ``refine`` points over +-4 coarse steps around it (in log E) gives the
    maximum (a parabola through the best three points) and the interval
    where -2 Delta ln L <= 1.

    Args:
        model: a trained CaloFlow.
        showers: N showers.
        energy_range_mev: the scan range (MeV).
        grid, refine: points of the coarse and the fine scan.
        seed: seeds the noise of the inputs (as in training).
        progress: progress bar.
        chunk: showers per pass.
    """
    model._require_fitted()
    if grid < 3 or refine < 5:
        raise ConfigError(f"grid >= 3 and refine >= 5 points needed, got {grid}, {refine}")
    if model.moments:
        warnings.warn(
            "this flow I also models the layers' lateral moments, dequantised with noise of "
            f"{MOMENT_NOISE} standard deviations: their sharp peaks make the likelihood in E "
            "over-confident (pull width 1.30 measured on toy photons, against 1.07 from the "
            "layer energies alone); train the calibration flow with CaloFlow(moments=0)",
            HepflowsWarning, stacklevel=2,
        )  # fmt: skip
    lo, hi = (10 ** float(v) for v in model.log_e_range) if energy_range_mev is None else (
        float(energy_range_mev[0]), float(energy_range_mev[1]))  # fmt: skip
    if not 0 < lo < hi:
        raise ConfigError(f"energy_range_mev must satisfy 0 < low < high, got ({lo}, {hi})")
    if len(showers) == 0:
        raise InputError("no showers to calibrate")
    log_grid = torch.linspace(math.log(lo), math.log(hi), grid, dtype=torch.float64)
    d = float(log_grid[1] - log_grid[0])
    parts: dict[str, list[Tensor]] = {k: [] for k in ("best", "low", "high", "edge")}
    with progress_bar(len(showers), "calibration", enabled=progress) as bar:
        for i in range(0, len(showers), chunk):
            sub = showers[i : i + chunk]
            lp = energy_log_likelihood(model, sub, log_grid.exp(), seed=seed + i)
            centre = log_grid[lp.argmax(1)]
            fine = centre[:, None] + torch.linspace(-4 * d, 4 * d, refine, dtype=torch.float64)
            fine = fine.clamp(math.log(lo), math.log(hi))
            lpf = energy_log_likelihood(model, sub, fine.exp(), seed=seed + i)
            best, low, high = _interval(lpf, fine)
            parts["best"].append(best.exp())
            parts["low"].append(low.exp())
            parts["high"].append(high.exp())
            parts["edge"].append((best <= math.log(lo) + d / 2) | (best >= math.log(hi) - d / 2))
            bar.advance(len(sub))
    cat = {k: torch.cat(v).numpy() for k, v in parts.items()}
    return Calibration(cat["best"], cat["low"], cat["high"], (cat["high"] - cat["low"]) / 2,
                       cat["edge"].astype(bool))  # fmt: skip


class EnergyRegression(nn.Module):
    """The direct regression baseline: an MLP trained by mean squared error on E_inc.

    Inputs: log10 of the L layer energies and the 4L lateral moments (centres
    and widths, mm), standardised on the training showers. Output: E_inc
    (MeV), learned in units of the training mean. Its optimum is E[E_inc | x]:
    a posterior mean, pulled toward where the training prior puts its weight.

    Args:
        geometry_layers: L, the number of voxelised layers.
        hidden: hidden widths.
        seed: seeds the initialisation.
    """

    def __init__(self, geometry_layers: int, hidden: tuple[int, ...] = (128, 128),
                 seed: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.n_layers = geometry_layers
        with seeded(seed):
            self.net = MLP(5 * geometry_layers, 1, 1, hidden, act="silu")
        self.register_buffer("mean", torch.zeros(5 * geometry_layers))
        self.register_buffer("std", torch.ones(5 * geometry_layers))
        self.register_buffer("e_unit", torch.ones(()))

    def inputs(self, showers: Showers) -> Tensor:
        """(N, 5L) raw inputs of N showers (log10 layer energies, moments)."""
        owner, xy = voxel_layout(showers.geometry)
        n_layers = len(showers.geometry.voxel_layers)
        if n_layers != self.n_layers:
            raise InputError(f"the showers have {n_layers} layers, the regression "
                             f"{self.n_layers}")  # fmt: skip
        vox = torch.as_tensor(showers.voxels, dtype=torch.float32)
        layers = layer_sums(vox, owner, n_layers)
        moments = lateral_moments(vox, layers, owner, xy)
        return torch.cat([torch.log10(layers + NOISE_MEV), moments], 1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 5L) raw inputs -> (N,) E_inc in MeV."""
        return self.net((x - self.mean) / self.std).view(-1) * self.e_unit

    def fit(
        self,
        showers: Showers,
        epochs: int = 100,
        batch_size: int = 512,
        lr: float = 1e-3,
        patience: int = 10,
        seed: int = 0,
        progress: bool = False,
    ) -> EnergyRegression:
        """Train on showers by MSE; keeps the best held-out weights. Returns ``self``."""
        x = self.inputs(showers)
        e = torch.as_tensor(showers.energy, dtype=torch.float32)
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))
        self.e_unit.fill_(float(e.mean()))
        unit = float(self.e_unit)
        def mse(out: Tensor, t: Tensor) -> Tensor:
            return ((out - t) / unit).pow(2).mean()

        fit_supervised(self, x, e, mse, epochs, batch_size, lr, patience, 0.1, seed, progress,
                       "energy regression")  # fmt: skip
        self.eval()
        return self

    @torch.no_grad()
    def predict(self, showers: Showers) -> np.ndarray:
        """(N,) predicted E_inc (MeV)."""
        return self(self.inputs(showers)).double().numpy()


def pull_width(pulls: np.ndarray) -> float:
    """Half the 16-84 % width of (N,) pulls: the standard deviation for a Gaussian, robust
    to tails."""
    q16, q84 = np.percentile(np.asarray(pulls, float), [16, 84])
    return float((q84 - q16) / 2)


def response_in_bins(
    e_true: np.ndarray, e_pred: np.ndarray, edges: np.ndarray
) -> dict[str, np.ndarray]:
    """Per bin of the true energy (B bins of ``edges``, MeV): the median response
    E_pred / E_true, the resolution (half the 16-84 % width of the response over its
    median) and the number of showers. Empty bins give NaN."""
    e_true, e_pred = np.asarray(e_true, float), np.asarray(e_pred, float)
    if e_true.shape != e_pred.shape or e_true.ndim != 1:
        raise InputError(f"true and predicted energies must be (N,) alike, got {e_true.shape} "
                         f"and {e_pred.shape}")  # fmt: skip
    which = np.digitize(e_true, edges) - 1
    bins = len(edges) - 1
    median, resolution, counts = np.full(bins, np.nan), np.full(bins, np.nan), np.zeros(bins)
    for b in range(bins):
        r = e_pred[which == b] / e_true[which == b]
        counts[b] = len(r)
        if len(r) >= 2:
            q16, q50, q84 = np.percentile(r, [16, 50, 84])
            median[b], resolution[b] = q50, (q84 - q16) / 2 / q50
    return {"median": median, "resolution": resolution, "counts": counts}


def plot_response(
    e_true: np.ndarray,
    estimates: dict[str, np.ndarray],
    path: str | os.PathLike,
    bins: int = 10,
    title: str = "",
) -> None:
    """Median response E_pred / E_true (and its 16-84 % band) against E_true for each
    estimate (label -> (N,) MeV), in ``bins`` log-spaced bins."""
    from hepflows.plots import pyplot, save_figure

    e_true = np.asarray(e_true, float)
    edges = np.geomspace(e_true.min(), e_true.max() * (1 + 1e-9), bins + 1)
    centres = np.sqrt(edges[1:] * edges[:-1]) / 1e3
    plt, _ = pyplot("Plotting the calibration response")
    fig, (top, low) = plt.subplots(2, 1, figsize=(6, 6), sharex=True, constrained_layout=True)
    for label, pred in estimates.items():
        r = response_in_bins(e_true, pred, edges)
        top.plot(centres, r["median"], "o-", label=label)
        low.plot(centres, r["resolution"], "o-", label=label)
    top.axhline(1.0, color="gray", lw=1)
    top.set_ylabel("median $E_{pred}/E_{inc}$")
    low.set_ylabel("resolution")
    low.set_xlabel("$E_{inc}$ [GeV]")
    low.set_xscale("log")
    top.legend(fontsize="small")
    save_figure(plt, fig, path, title)
