"""The signal-strength problem: a Z' signal strength with a lepton energy-scale nuisance.

The benchmark of amortised posteriors (``../shared/design/inference.md``):
theta = (mu, alpha), x = the m_ll histogram (default 40 bins, 300-500 GeV) of
smeared Drell-Yan events,

    nu_b(mu, alpha) = L [B_b(alpha) + mu S_b(alpha)],   x_b ~ Poisson(nu_b),

with B the Standard-Model gamma*/Z background and S the Z' resonance alone
(|A_Z'|^2; interference left out so that nu >= 0 for every mu >= 0). The
templates B(alpha), S(alpha) are histograms of alpha * m_ll^reco of events made
once by hepflows' Drell-Yan matrix element and the toy detector, on a grid of
alpha, and interpolated linearly in between. The lepton energy scale alpha
multiplies both smeared leptons' momenta, hence m_ll (the detector's pT
threshold of 20 GeV is far below the leptons of a 300 GeV pair, so the
selection does not change with alpha).

Priors: mu ~ U(0, 3), alpha ~ N(1, 0.01^2) (the Gaussian constraint: 95 % in
[0.98, 1.02]; the templates cover +-6 sigma and are held constant beyond).

The exact posterior is the Poisson likelihood times the prior on a grid
(:meth:`SignalStrength.grid_posterior`), zoomed onto the region that holds
the probability; :meth:`SignalStrength.grid_samples` draws from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.inference.detector import ToyDetector, from_pt_eta_phi
from hepflows.inference.leptons import from_mass
from hepflows.inference.priors import Normal, Prior, Uniform


@dataclass(frozen=True)
class SignalStrengthSettings:
    """Settings of the problem (GeV, pb^-1).

    Attributes:
        bins, low, high: the reco m_ll histogram.
        luminosity: integrated luminosity L (pb^-1).
        mzp, wzp, zprime_coupling: the Z' (mass, width, couplings in units of the Z's).
        mu_max: mu ~ U(0, mu_max).
        alpha_std: alpha ~ N(1, alpha_std^2).
        alpha_points: grid points of the templates over 1 +- 6 alpha_std.
        events: generated events for the templates.
        seed: seeds the template events and the detector.
    """

    bins: int = 40
    low: float = 300.0
    high: float = 500.0
    luminosity: float = 10_000.0
    mzp: float = 400.0
    wzp: float = 4.0
    zprime_coupling: float = 0.13
    mu_max: float = 3.0
    alpha_std: float = 0.01
    alpha_points: int = 121
    events: int = 1_000_000
    seed: int = 0


class SignalStrength:
    """Templates, simulator, prior and exact grid posterior of the signal-strength problem.

    Args:
        settings: :class:`SignalStrengthSettings`.
        **overrides: any of its fields.

    Example:
        >>> problem = SignalStrength()
        >>> g = torch.Generator().manual_seed(0)
        >>> theta = problem.prior.sample(10, g)              # (10, 2): mu, alpha
        >>> x = problem.simulate(theta, g)                   # (10, 40) counts
        >>> log_post, mu, alpha = problem.grid_posterior(x[0])
    """

    names = ("mu", "alpha")

    def __init__(self, settings: SignalStrengthSettings | None = None, **overrides: float) -> None:
        from dataclasses import replace

        self.settings = s = replace(settings or SignalStrengthSettings(), **overrides)
        if s.bins < 1 or not s.low < s.high or s.luminosity <= 0 or s.alpha_points < 2:
            raise ConfigError(f"bad signal-strength settings {s}")
        self.prior = Prior(self.names, [Uniform(0.0, s.mu_max), Normal(1.0, s.alpha_std)])
        self.edges = torch.linspace(s.low, s.high, s.bins + 1, dtype=torch.float64)
        self.alphas = torch.linspace(1 - 6 * s.alpha_std, 1 + 6 * s.alpha_std, s.alpha_points,
                                     dtype=torch.float64)  # fmt: skip
        self.background, self.signal = self._templates()

    # ------------------------------------------------------------ templates
    def _templates(self) -> tuple[Tensor, Tensor]:
        """(A, bins) B and S in pb per bin on the alpha grid."""
        from hepflows.physics import DrellYan

        s = self.settings
        g = torch.Generator().manual_seed(s.seed)
        n = s.events
        a_lo, a_hi = float(self.alphas[0]), float(self.alphas[-1])
        # Truth masses that can land in the window: smearing of a few % around low/alpha.
        m_lo, m_hi = 0.9 * s.low / a_hi, 1.1 * s.high / a_lo
        y_max = 3.0
        u = torch.rand(n, 4, generator=g, dtype=torch.float64)
        m = m_lo + (m_hi - m_lo) * u[:, 0]
        y = y_max * (2 * u[:, 1] - 1)
        cos = 2 * u[:, 2] - 1
        phi = 2 * math.pi * u[:, 3] - math.pi
        volume = (m_hi - m_lo) * 2 * y_max * 2
        common = {"zprime": True, "mzp": s.mzp, "wzp": s.wzp, "sqrt_s_hat_min": m_lo * 0.99}
        sm = DrellYan(zprime=False, sqrt_s_hat_min=m_lo * 0.99)
        lumi = sm.luminosities(m, y)
        f0 = sm.from_luminosities(lumi, m, cos)
        f1 = DrellYan(**common, zprime_coupling=s.zprime_coupling).from_luminosities(lumi, m, cos)
        f2 = DrellYan(**common, zprime_coupling=math.sqrt(2) * s.zprime_coupling
                      ).from_luminosities(lumi, m, cos)  # fmt: skip
        # |A_SM + t A'|^2 = B + 2 t I + t^2 S' with t = g'^2: S = t^2 S' = (f2 - 2 f1 + f0) / 2.
        w_b = f0 * volume / n
        w_s = (f2 - 2 * f1 + f0) / 2 * volume / n
        truth = from_mass(m, y, cos)  # (pt, eta-, eta+)
        lep = from_pt_eta_phi(torch.stack((truth[:, 0], truth[:, 1], phi), -1))
        anti = from_pt_eta_phi(torch.stack((truth[:, 0], truth[:, 2], phi + math.pi), -1))
        det = ToyDetector(seed=s.seed + 1)
        reco = det(lep, anti)
        p = reco.lepton + reco.antilepton
        m_reco = (p[:, 0] ** 2 - (p[:, 1:] ** 2).sum(-1)).clamp_min(0).sqrt()
        keep = reco.passed
        m_reco, w_b, w_s = m_reco[keep], w_b[keep], w_s[keep]
        back, sig = [], []
        for a in self.alphas:
            idx = torch.bucketize(a * m_reco, self.edges) - 1
            ok = (idx >= 0) & (idx < s.bins)
            back.append(torch.bincount(idx[ok], w_b[ok], minlength=s.bins))
            sig.append(torch.bincount(idx[ok], w_s[ok], minlength=s.bins))
        return torch.stack(back), torch.stack(sig)

    # ------------------------------------------------------------ model
    def _interp(self, table: Tensor, alpha: Tensor) -> Tensor:
        """(A, bins) template at (n,) alpha, linear in alpha (held beyond the grid): (n, bins)."""
        a = alpha.clamp(float(self.alphas[0]), float(self.alphas[-1]))
        step = float(self.alphas[1] - self.alphas[0])
        pos = (a - float(self.alphas[0])) / step
        i = pos.floor().long().clamp(0, len(self.alphas) - 2)
        f = (pos - i).unsqueeze(-1)
        return table[i] * (1 - f) + table[i + 1] * f

    def expected(self, theta: Tensor) -> Tensor:
        """Expected counts nu (n, bins) at (n, 2) theta = (mu, alpha)."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.ndim != 2 or theta.shape[1] != 2:
            raise InputError(f"theta must be (n, 2) values of (mu, alpha), got "
                             f"{tuple(theta.shape)}")  # fmt: skip
        mu, alpha = theta[:, :1], theta[:, 1]
        lumi = self.settings.luminosity
        return lumi * (self._interp(self.background, alpha) + mu * self._interp(self.signal, alpha))

    def simulate(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        """Poisson histograms (n, bins) (float64 counts) at (n, 2) theta."""
        return torch.poisson(self.expected(theta), generator=generator)

    def log_likelihood(self, x: Tensor, theta: Tensor) -> Tensor:
        """Poisson log-likelihood (n,) of one histogram x (bins,) at (n, 2) theta."""
        nu = self.expected(theta).clamp_min(1e-300)
        return (x * nu.log() - nu - torch.lgamma(x + 1)).sum(-1)

    def _check_x(self, x: Tensor) -> Tensor:
        x = torch.as_tensor(x, dtype=torch.float64)
        bins = self.settings.bins
        if x.shape != (bins,) or not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
            raise InputError(f"x must be one histogram of {bins} non-negative counts, got "
                             f"shape {tuple(x.shape)}")  # fmt: skip
        return x

    # ------------------------------------------------------------ exact posterior
    def grid_posterior(
        self, x: Tensor, points: int = 200, zoom: bool = True
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The exact posterior of one histogram on a grid.

        A first pass over the whole prior box (mu in [0, mu_max], alpha within
        6 sigma) finds where the posterior exceeds 1e-9 of its maximum; with
        ``zoom`` a second grid of ``points`` x ``points`` cell centres covers
        that region.

        Returns:
            log posterior (points, points), normalised so that sum(exp) * cell area = 1,
            and the cell centres mu (points,) and alpha (points,).
        """
        x = self._check_x(x)
        s = self.settings
        box = [(0.0, s.mu_max), (float(self.alphas[0]), float(self.alphas[-1]))]
        lp, mu, al = self._grid(x, box, points)
        if zoom:
            keep = lp > lp.max() - math.log(1e9)
            rows, cols = keep.any(1), keep.any(0)
            dm, da = float(mu[1] - mu[0]), float(al[1] - al[0])
            lo_m = max(0.0, float(mu[rows].min()) - dm)
            hi_m = min(s.mu_max, float(mu[rows].max()) + dm)
            lo_a = max(box[1][0], float(al[cols].min()) - da)
            hi_a = min(box[1][1], float(al[cols].max()) + da)
            lp, mu, al = self._grid(x, [(lo_m, hi_m), (lo_a, hi_a)], points)
        return lp, mu, al

    def _grid(
        self, x: Tensor, box: list[tuple[float, float]], points: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        (m0, m1), (a0, a1) = box
        mu = m0 + (m1 - m0) * (torch.arange(points, dtype=torch.float64) + 0.5) / points
        al = a0 + (a1 - a0) * (torch.arange(points, dtype=torch.float64) + 0.5) / points
        grid = torch.cartesian_prod(mu, al)
        lp = self.log_likelihood(x, grid) + self.prior.log_prob(grid)
        lp = lp.view(points, points)
        cell = (mu[1] - mu[0]) * (al[1] - al[0])
        lp = lp - torch.logsumexp(lp.flatten(), 0) - cell.log()
        return lp, mu, al

    def grid_samples(
        self, x: Tensor, n: int, generator: torch.Generator, points: int = 200
    ) -> Tensor:
        """n draws (n, 2) from the exact grid posterior of one histogram x (uniform in a cell)."""
        lp, mu, al = self.grid_posterior(x, points)
        prob = torch.softmax(lp.flatten(), 0)
        idx = torch.multinomial(prob, n, replacement=True, generator=generator)
        i, j = idx // points, idx % points
        jitter = torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5
        dm, da = float(mu[1] - mu[0]), float(al[1] - al[0])
        return torch.stack((mu[i] + jitter[:, 0] * dm, al[j] + jitter[:, 1] * da), -1)
