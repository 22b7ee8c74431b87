"""The matrix-element method for Drell-Yan: per-event likelihoods p(r | theta) and fits.

For measured leptons r (:mod:`hepflows.inference.leptons`) and process
parameters theta (any :class:`~hepflows.physics.DrellYanParameters` field:
``mzp``, ``wzp``, ``zprime_coupling``, ``sin2w``...),

    p(r | theta) = int dx dsigma(x | theta) eps(x) T(r | x) / sigma_fid(theta),
    sigma_fid(theta) = int dx dsigma(x | theta) eps(x),

with x the LO truth (pt, eta_minus, eta_plus). This module holds the parts
that do not depend on how T and eps are known:

* :class:`DrellYanModel`: dsigma(x | theta) in the lepton variables, with the
  parameter-free parton luminosities computed once per point;
* :meth:`DrellYanModel.sigma_fid`: Gauss-Legendre quadrature over m (a
  Breit-Wigner-mapped piece around the Z') and the (eta_minus, eta_plus)
  acceptance square. Why quadrature: a likelihood of N events moves by
  N delta sigma / sigma when sigma_fid is off by delta, so 1000 events need
  it to about 1e-5 across theta; its nodes are fixed, so it is smooth in theta;
* :class:`ExactTransfer`: the toy detector's closed-form T and eps, with a
  multi-channel importance sampler per event (eta from T's Gaussians; pT
  from a Student-t around the measured pT and, with a Z', a Breit-Wigner in
  m), the reference of the learned method;
* :func:`scan`/:func:`fit`: -2 Delta ln L on a grid of one parameter, the
  maximum, 68 % / 95 % intervals, and the per-event integration errors.

:func:`event_integrals`, :func:`profile` and :func:`fit` know no Drell-Yan:
they take any :class:`Model` (dsigma and sigma_fid) and any :class:`Transfer`
whose reco has ``RECO_DIM`` columns, e.g. the learned transfer of any process
in :mod:`hepflows.inference.flow_mem`.

The same uniform numbers are used for every theta of a scan (common random
numbers), so a scan is smooth in theta although each integral is a Monte Carlo
estimate.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.inference import leptons
from hepflows.inference.detector import ToyDetector
from hepflows.inference.pairs import SETUP

#: Parameters a scan can vary (fields of DrellYanParameters).
PARAMETERS = ("mzp", "wzp", "zprime_coupling", "sin2w")
#: Gauss-Legendre nodes of sigma_fid: m below / around / above the Z', and per eta.
QUADRATURE = {"low": 48, "peak": 128, "high": 64, "eta": 32}
#: Warn when integration noise moves -2 Delta ln L by more than this between grid points.
NOISE_WARNING = 0.25
#: Share of a sampler's Breit-Wigner channel for events whose mass window holds the Z'
#: (within 5 widths), and for the others.
BW_SHARE, BW_SHARE_LOW = 0.5, 0.02
#: Half-width (GeV) of the Breit-Wigner-mapped mass piece around the Z'.
PEAK_HALF_WIDTH = 30.0


def _gauss_legendre(n: int, a: float, b: float) -> tuple[Tensor, Tensor]:
    """n Gauss-Legendre nodes and weights on [a, b] (float64)."""
    x, w = np.polynomial.legendre.leggauss(n)
    mid, half = (a + b) / 2, (b - a) / 2
    return torch.tensor(mid + half * x, device="cpu"), torch.tensor(half * w, device="cpu")


class DrellYanModel:
    """d sigma(x | theta) of pp -> l- l+ in the LO lepton variables x = (pt, eta_minus, eta_plus).

    Args:
        parameters: the names of theta (fields of :class:`~hepflows.physics.DrellYanParameters`).
        **setup: the fixed process (default: the unfolding benchmark's
            :data:`~hepflows.inference.pairs.SETUP` with the Z' on).
    """

    def __init__(self, parameters: Sequence[str] = ("mzp",), **setup: Any) -> None:
        from hepflows.physics import DrellYan

        bad = [p for p in parameters if p not in PARAMETERS]
        if bad or not parameters:
            raise ConfigError(f"parameters must be among {', '.join(PARAMETERS)}, got "
                              f"{list(parameters)}")  # fmt: skip
        self.parameters = tuple(parameters)
        self.base = DrellYan(**{**SETUP, "zprime": True, **setup})

    def process(self, theta: Sequence[float]) -> Any:
        """The :class:`~hepflows.physics.DrellYan` at parameter values theta (shares the PDFs)."""
        from hepflows.physics import DrellYan

        if len(theta) != len(self.parameters):
            raise InputError(f"theta must give {list(self.parameters)}, got {list(theta)}")
        values = dict(zip(self.parameters, map(float, theta), strict=True))
        return DrellYan(replace(self.base.params, pdf=self.base.pdf, **values))

    def luminosities(self, x: Tensor) -> Tensor:
        """Parameter-free parton luminosities (2 F, n) at (n, 3) truth (reuse for every theta)."""
        m, y, _ = leptons.to_mass(x)
        return self.base.luminosities(m, y)

    def log_density(self, x: Tensor, theta: Sequence[float], lumi: Tensor | None = None) -> Tensor:
        """log d sigma / d(pt, eta_minus, eta_plus) in pb / GeV at (n, 3) truth -> (n,).

        ``lumi``: :meth:`luminosities` of the same points (computed if omitted).
        """
        m, _, c = leptons.to_mass(x)
        lumi = self.luminosities(x) if lumi is None else lumi
        d = self.process(theta).from_luminosities(lumi, m, c)
        return d.clamp_min(1e-300).log() + leptons.log_jacobian(x)

    def sigma_fid(
        self, thetas: Tensor | Sequence[Sequence[float]], efficiency: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """sigma_fid(theta) = int dsigma(x | theta) eps(x) dx in pb, by quadrature: (T, p) -> (T,).

        The eta integrals run over the acceptance square |eta| < 2.5 (eps
        must vanish outside) with QUADRATURE["eta"]^2 nodes; m over [cut,
        sqrt_s] in three pieces, the one around the Z' masses of the grid
        (+-PEAK_HALF_WIDTH) in the Breit-Wigner variable atan(2 (m - M) / Gamma).
        Luminosities and eps at nodes that do not move with theta are computed once.

        Args:
            thetas: (T, p) parameter values.
            efficiency: eps at (n, 3) truth -> (n,) (exact or learned).
        """
        thetas = torch.as_tensor(thetas, dtype=torch.float64, device="cpu")
        thetas = thetas.reshape(-1, len(self.parameters))
        procs = [self.process(t) for t in thetas.tolist()]
        p0 = self.base.params
        m_lo = p0.sqrt_s_hat_min
        m_hi = p0.sqrt_s if p0.sqrt_s_hat_max is None else p0.sqrt_s_hat_max
        masses = [q.params.mzp for q in procs]
        peak = (max(m_lo, min(masses) - PEAK_HALF_WIDTH), min(m_hi, max(masses) + PEAK_HALF_WIDTH))
        has_peak = p0.zprime and peak[0] < peak[1]
        fixed = [(m_lo, peak[0], "low"), (peak[1], m_hi, "high")] if has_peak else [
            (m_lo, m_hi, "high")]  # fmt: skip
        cache: dict[Any, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

        def piece(key: Any, m: Tensor, wm: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
            if key not in cache:
                cache[key] = self._eta_integrand(m, wm, efficiency)
            return cache[key]

        out = torch.empty(len(procs), dtype=torch.float64, device="cpu")
        for k, proc in enumerate(procs):
            p = proc.params
            parts = []
            for a, b, kind in fixed:
                if b > a:  # u = 1 / m^2 flattens the falling continuum
                    u, wu = _gauss_legendre(QUADRATURE[kind], 1 / b**2, 1 / a**2)
                    parts.append(piece((a, b), u**-0.5, wu * 0.5 * u**-1.5))
            if has_peak:
                g = p.wzp / 2
                t, wt = _gauss_legendre(QUADRATURE["peak"], math.atan((peak[0] - p.mzp) / g),
                                        math.atan((peak[1] - p.mzp) / g))  # fmt: skip
                parts.append(piece((p.mzp, p.wzp), p.mzp + g * torch.tan(t),
                                   wt * g / torch.cos(t) ** 2))  # fmt: skip
            out[k] = sum(float((proc.from_luminosities(lumi, m, c) * w).sum())
                         for m, c, lumi, w in parts)  # fmt: skip
        return out

    def _eta_integrand(
        self, m: Tensor, wm: Tensor, efficiency: Callable[[Tensor], Tensor]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Nodes (N,) m and cos, luminosities (2F, N) and weights (N,) of the (m, eta, eta) grid."""
        e, we = _gauss_legendre(QUADRATURE["eta"], -2.5, 2.5)
        eta_m, eta_p = (t.reshape(-1) for t in torch.meshgrid(e, e, indexing="ij"))
        w_eta = (we[:, None] * we[None, :]).reshape(-1)
        mm = m.repeat_interleave(len(eta_m))
        em, ep = eta_m.repeat(len(m)), eta_p.repeat(len(m))
        half = (em - ep) / 2
        x = torch.stack((mm / (2 * torch.cosh(half)), em, ep), -1)
        lumi = self.base.luminosities(mm, (em + ep) / 2)
        # dy dcos = d eta_minus d eta_plus / (2 cosh^2(Delta / 2))
        w = wm.repeat_interleave(len(eta_m)) * w_eta.repeat(len(m))
        w = w * efficiency(x).double() / (2 * torch.cosh(half) ** 2)
        keep = w > 0
        return mm[keep], torch.tanh(half)[keep], lumi[:, keep], w[keep]


def bw_share(lo: Tensor, hi: Tensor, p: Any) -> Tensor:
    """Share of the Breit-Wigner channel for mass windows [lo, hi] (...): BW_SHARE where
    the Z' of parameters ``p`` lies within 5 widths of the window, else BW_SHARE_LOW; 0
    without a Z'."""
    near = (p.mzp > lo - 5 * p.wzp) & (p.mzp < hi + 5 * p.wzp)
    return torch.where(near, BW_SHARE, BW_SHARE_LOW) * p.zprime


def bw_quantile(u: Tensor, lo: Tensor, hi: Tensor, p: Any) -> Tensor:
    """m (...) at uniforms u of the Z' Breit-Wigner truncated to [lo, hi]."""
    g = p.wzp / 2
    a, b = torch.atan((lo - p.mzp) / g), torch.atan((hi - p.mzp) / g)
    return p.mzp + g * torch.tan(a + (b - a) * u)


def bw_log_prob(m: Tensor, lo: Tensor, hi: Tensor, p: Any) -> Tensor:
    """log density per unit m of the Z' Breit-Wigner truncated to [lo, hi] (-inf outside)."""
    g = p.wzp / 2
    a, b = torch.atan((lo - p.mzp) / g), torch.atan((hi - p.mzp) / g)
    log_bw = -torch.log(g * (b - a) * (1 + ((m - p.mzp) / g) ** 2))
    return torch.where((m > lo) & (m < hi), log_bw, -math.inf)


class Model(Protocol):
    """What the MEM needs of a process (:class:`DrellYanModel`, or any other)."""

    #: The names of theta.
    parameters: tuple[str, ...]

    def log_density(self, x: Tensor, theta: Sequence[float]) -> Tensor:
        """log dsigma(x | theta) per unit x at (n, dx) truth -> (n,)."""
        ...

    def sigma_fid(
        self, thetas: Tensor | Sequence[Sequence[float]], efficiency: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """sigma_fid(theta) = int dsigma(x | theta) eps(x) dx: (T, p) -> (T,)."""
        ...


class Transfer(Protocol):
    """What the MEM needs of a detector model (:class:`ExactTransfer`, or learned:
    :class:`~hepflows.inference.learned_mem.LearnedTransfer`,
    :class:`~hepflows.inference.flow_mem.FlowTransfer`)."""

    #: Columns of a measured event r. (A transfer without it is taken to be a
    #: Drell-Yan one: reco in :data:`~hepflows.inference.leptons.RECO`.)
    RECO_DIM: int
    UNIFORMS: int

    def log_transfer(self, r: Tensor, x: Tensor) -> Tensor: ...

    def efficiency(self, x: Tensor) -> Tensor: ...

    def log_weights(self, model: Any, r: Tensor, uniforms: Tensor, thetas: Tensor) -> Tensor:
        """log(dsigma eps T / q) (T, S, n) at the sampler's points for reco (n, RECO_DIM),
        from uniforms (S, n, UNIFORMS), for every theta (T, p) (common random numbers).

        ``model``: a :class:`Model`; the Drell-Yan transfers need a :class:`DrellYanModel`
        (its luminosities and Z' parameters).
        """
        ...


@dataclass
class EventIntegrals:
    """Per-event integrals I_i(theta) = int dsigma eps T dx on a grid of theta.

    Attributes:
        theta: (T, p) parameter values.
        value: (T, n) the integrals (pb per unit of r).
        error: (T, n) their Monte Carlo standard errors.
        calls: integrand evaluations per event and theta.
        step_error: (T - 1, n) standard error of log(I(theta_k+1) / I(theta_k)) per
            event: what the common random numbers leave of the noise in a scan.
    """

    theta: Tensor
    value: Tensor
    error: Tensor
    calls: int
    step_error: Tensor = field(default_factory=lambda: torch.empty(0, device="cpu"))

    @property
    def relative_error(self) -> Tensor:
        """(T, n) error / value."""
        return self.error / self.value.clamp_min(1e-300)


class ExactTransfer:
    """The toy detector's closed-form T(r | x) and eps(x), with a per-event sampler.

    The sampler (multi-channel importance sampling) draws both eta from T's
    own Gaussians around the measured ones, and the common pT from a mixture:
    a normal around the measured mean pT, 1.1 times T's width (mean of two
    leptons), a Cauchy of the same width for the tails, and, with a Z', a
    Breit-Wigner in m at theta's Z' mass truncated to +-8 lepton resolutions.
    Weights dsigma eps T / q give each event's integral and its error.

    Args:
        detector: the toy detector (default settings).
    """

    #: Columns of reco: :data:`~hepflows.inference.leptons.RECO`.
    RECO_DIM = 4
    #: Uniforms per point: channel, eta_minus, eta_plus, pT.
    UNIFORMS = 4

    def __init__(self, detector: ToyDetector | None = None) -> None:
        self.detector = detector or ToyDetector(seed=0)

    def log_transfer(self, r: Tensor, x: Tensor) -> Tensor:
        """log T(r | x): (..., 4), (..., 3) -> (...)."""
        return leptons.log_transfer(self.detector, r, x)

    def efficiency(self, x: Tensor) -> Tensor:
        """eps(x) at (..., 3) truth."""
        return leptons.efficiency(self.detector, x)

    def sample(self, r: Tensor, uniforms: Tensor, proc: Any) -> tuple[Tensor, Tensor]:
        """Points (S, n, 3) and log q (S, n) for reco (n, 4) from uniforms (S, n, 4)."""
        s_eta = self.detector.settings.eta_sigma
        normal = torch.distributions.Normal(0.0, 1.0)
        z = normal.icdf(uniforms[..., 1:3].clamp(1e-12, 1 - 1e-12))
        eta = r[None, :, 2:4] + s_eta * z
        log_q_eta = (normal.log_prob(z) - math.log(s_eta)).sum(-1)
        ref = leptons.truth_reference(r)[:, 0][None]
        sig1 = ref * self.detector.resolution(ref)  # one lepton's pT resolution
        width = 1.1 * sig1 / math.sqrt(2)
        p = proc.params
        ch = 2 * torch.cosh((eta[..., 0] - eta[..., 1]) / 2)  # m = pT * ch
        lo, hi = (ref - 8 * sig1).clamp_min(1.0) * ch, (ref + 8 * sig1) * ch
        bw = bw_share(lo, hi, p)  # half the points where the Z' peak is in reach
        normal_share, cauchy_share = 0.9 * (1 - bw), 0.1 * (1 - bw)
        u, c = uniforms[..., 3].clamp(1e-12, 1 - 1e-12), uniforms[..., 0]
        pt = torch.where(c < normal_share, ref + width * normal.icdf(u),
                         ref + width * torch.tan(math.pi * (u - 0.5)))  # fmt: skip
        if p.zprime:
            pt = torch.where(c >= 1 - bw, bw_quantile(u, lo, hi, p) / ch, pt)
        d = (pt - ref) / width
        terms = [
            normal_share.log() + normal.log_prob(d) - width.log(),
            cauchy_share.log() - math.log(math.pi) - torch.log1p(d**2) - width.log(),
        ]
        if p.zprime:  # per unit pT: times dm / dpT = ch
            terms.append(bw.log() + bw_log_prob(pt * ch, lo, hi, p) + ch.log())
        log_q_pt = torch.logsumexp(torch.stack(terms), 0)
        x = torch.stack((pt, eta[..., 0], eta[..., 1]), -1)
        return x, log_q_pt + log_q_eta

    @torch.no_grad()
    def log_weights(
        self, model: DrellYanModel, r: Tensor, uniforms: Tensor, thetas: Tensor
    ) -> Tensor:
        """log(dsigma eps T / q) (T, S, n) at :meth:`sample`'s points, for every theta.

        Parton luminosities are recomputed only at the points that moved with
        theta (the Breit-Wigner channel's).
        """
        points = uniforms.shape[0]
        out = torch.empty(len(thetas), *uniforms.shape[:2], dtype=torch.float64, device="cpu")
        flat_prev = lumi = None
        for k, theta in enumerate(torch.as_tensor(thetas, device="cpu").tolist()):
            x, log_q = self.sample(r, uniforms, model.process(theta))
            flat = x.reshape(-1, 3)
            if lumi is None:
                lumi = model.luminosities(flat)
            else:
                moved = (flat != flat_prev).any(-1)
                if bool(moved.any()):
                    lumi[:, moved] = model.luminosities(flat[moved])
            flat_prev = flat
            log_f = model.log_density(flat, theta, lumi).view(points, -1)
            log_f = log_f + self.efficiency(x).clamp_min(1e-300).log()
            out[k] = log_f + self.log_transfer(r[None].expand(points, -1, -1), x) - log_q
        return out


def check_reco(reco: Tensor, transfer: Transfer) -> Tensor:
    """Measured events (n, RECO_DIM) as float64, or an InputError naming the problem.

    A transfer without ``RECO_DIM`` is a Drell-Yan one: reco must be
    :data:`~hepflows.inference.leptons.RECO`.
    """
    dim = getattr(transfer, "RECO_DIM", None)
    if dim is None:
        return leptons._check(reco, leptons.RECO, "reco")
    name = type(transfer).__name__
    if not isinstance(reco, Tensor) or reco.ndim != 2 or reco.shape[1] != dim:
        got = tuple(reco.shape) if isinstance(reco, Tensor) else type(reco).__name__
        raise InputError(f"reco must be (n, {dim}) measured events, the columns {name} "
                         f"was built for, got {got}")  # fmt: skip
    if reco.is_complex() or reco.dtype == torch.bool:
        raise InputError(f"reco must hold real numbers, got dtype {reco.dtype}")
    if not bool(torch.isfinite(reco).all()):
        raise InputError("reco contain NaN or infinite values: drop or fix those events")
    return reco.to(torch.float64)


def event_integrals(
    model: Model,
    transfer: Transfer,
    reco: Tensor,
    thetas: Tensor,
    points: int = 2048,
    seed: int = 0,
    chunk: int = 256,
) -> EventIntegrals:
    """Exact per-event integrals I_i(theta) on a grid (common random numbers over theta).

    Args:
        model: the process.
        transfer: T, eps and the per-event sampler (exact or learned).
        reco: (n, transfer.RECO_DIM) measured events (:func:`check_reco`).
        thetas: (T, p) parameter values.
        points: sampler points per event and theta.
        seed: seeds the uniforms.
        chunk: events per pass.
    """
    reco = check_reco(reco, transfer)
    thetas = torch.as_tensor(thetas, dtype=torch.float64, device="cpu")
    thetas = thetas.reshape(-1, len(model.parameters))
    g = torch.Generator().manual_seed(seed)
    values = torch.empty(len(thetas), len(reco), dtype=torch.float64, device="cpu")
    errors = torch.empty_like(values)
    steps = torch.zeros(max(len(thetas) - 1, 0), len(reco), dtype=torch.float64, device="cpu")
    for i in range(0, len(reco), chunk):
        r = reco[i : i + chunk]
        u = torch.rand(points, len(r), transfer.UNIFORMS, generator=g, dtype=torch.float64,
                       device="cpu")  # fmt: skip
        previous = None
        log_w = transfer.log_weights(model, r, u, thetas)
        for k in range(len(thetas)):
            w = torch.exp(log_w[k])
            w = torch.where(torch.isfinite(w), w, torch.zeros_like(w))
            values[k, i : i + chunk] = w.mean(0)
            errors[k, i : i + chunk] = w.std(0) / math.sqrt(points)
            normalised = w / w.mean(0).clamp_min(1e-300)
            if previous is not None:  # delta method on the paired points
                steps[k - 1, i : i + chunk] = (normalised - previous).std(0) / math.sqrt(points)
            previous = normalised
    return EventIntegrals(thetas, values, errors, points, steps)


@dataclass
class FitResult:
    """A one-parameter MEM fit.

    Attributes:
        parameter: its name; grid: (T,) scanned values; nll2: (T,) -2 Delta ln L.
        best: the maximum-likelihood value (parabola through the lowest points).
        interval68, interval95: where -2 Delta ln L crosses 1 and 3.84 (linear
            interpolation on the grid; NaN where the scan ends first).
        event_errors: (n,) relative integration error per event at the best grid point.
        sigma_fid: (T,) pb.
    """

    parameter: str
    grid: np.ndarray
    nll2: np.ndarray
    best: float
    interval68: tuple[float, float]
    interval95: tuple[float, float]
    event_errors: np.ndarray
    sigma_fid: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sigma(self) -> float:
        """Half the 68 % interval's width."""
        return (self.interval68[1] - self.interval68[0]) / 2

    def summary(self) -> str:
        """θ̂ ± σ and the intervals, one line each."""
        lo, hi = self.interval68
        lo95, hi95 = self.interval95
        return (f"{self.parameter} = {self.best:.5g} +{hi - self.best:.3g} -{self.best - lo:.3g} "
                f"(68 %); 95 %: [{lo95:.5g}, {hi95:.5g}]; median event integration error "
                f"{np.median(self.event_errors):.2%}")  # fmt: skip


def crossings(grid: np.ndarray, nll2: np.ndarray, level: float) -> tuple[float, float]:
    """Where a scan (T,) crosses ``level`` left and right of its minimum (NaN if it does not)."""
    k = int(np.argmin(nll2))
    out = []
    for side in (range(k, 0, -1), range(k, len(grid) - 1)):
        value = math.nan
        for j in side:
            j2 = j - 1 if side.step == -1 else j + 1
            if (nll2[j] - level) * (nll2[j2] - level) <= 0 and nll2[j2] != nll2[j]:
                f = (level - nll2[j]) / (nll2[j2] - nll2[j])
                value = float(grid[j] + f * (grid[j2] - grid[j]))
                break
        out.append(value)
    return out[0], out[1]


def profile(integrals: EventIntegrals, sigma_fid: Tensor, parameter: str) -> FitResult:
    """The fit from per-event integrals on a one-parameter grid and sigma_fid there."""
    grid = integrals.theta[:, 0].numpy()
    log_l = integrals.value.clamp_min(1e-300).log().sum(1) - integrals.value.shape[1] * (
        sigma_fid.log()
    )
    nll2 = (-2 * (log_l - log_l.max())).numpy()
    k = int(np.argmin(nll2))
    best = float(grid[k])
    if 0 < k < len(grid) - 1:  # parabola through the three lowest points
        x, y = grid[k - 1 : k + 2], nll2[k - 1 : k + 2]
        a, b, _ = np.polyfit(x, y, 2)
        if a > 0:
            best = float(-b / (2 * a))
    rel = integrals.relative_error[k].numpy()
    result = FitResult(parameter, grid, nll2 - nll2.min(), best, crossings(grid, nll2, 1.0),
                       crossings(grid, nll2, 3.84), rel, sigma_fid.numpy())  # fmt: skip
    # the integration noise of -2 Delta ln L between neighbouring grid points (the
    # common random numbers cancel most of each integral's own error)
    noise = 2 * float((integrals.step_error**2).sum(1).sqrt().max()) if len(grid) > 1 else 0.0
    result.info["nll2_step_noise"] = noise
    if noise > NOISE_WARNING:
        warnings.warn(f"per-event integration errors move -2 ln L by {noise:.2f} between grid "
                      "points, against the 1.0 that sets the 68 % interval: use more points "
                      "per event", stacklevel=2)  # fmt: skip
    return result


def fit(
    reco: Tensor,
    parameter: str,
    bounds: tuple[float, float],
    grid: int = 21,
    model: Model | None = None,
    transfer: Transfer | None = None,
    points: int = 2048,
    seed: int = 0,
) -> FitResult:
    """Fit one parameter of the process to measured events by the (exact) MEM.

    Args:
        reco: (n, transfer.RECO_DIM) detected events (default transfer:
            :data:`~hepflows.inference.leptons.RECO`).
        parameter: the parameter (by default one of :data:`PARAMETERS`).
        bounds: its scan range.
        grid: scan points.
        model: the process (default: the Drell-Yan benchmark set-up, with ``parameter`` free).
        transfer: T, eps and the sampler (default: the exact toy detector's).
        points: sampler points per event.
        seed: seeds the sampler.
    """
    model = model or DrellYanModel((parameter,))
    if model.parameters != (parameter,):
        raise ConfigError(f"the model's parameters are {list(model.parameters)}, not "
                          f"[{parameter!r}]")  # fmt: skip
    lo, hi = map(float, bounds)
    if not lo < hi or grid < 3:
        raise ConfigError(f"need bounds low < high and grid >= 3, got {bounds}, {grid}")
    transfer = transfer or ExactTransfer()
    thetas = torch.linspace(lo, hi, grid, dtype=torch.float64, device="cpu")[:, None]
    integrals = event_integrals(model, transfer, reco, thetas, points, seed)
    return profile(integrals, model.sigma_fid(thetas, transfer.efficiency), parameter)
