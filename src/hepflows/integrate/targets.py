"""Sampling targets on R^d with an exact log Z and exact samples: Many-Well, Gaussian mixtures.

The benchmark densities of the FAB paper (Midgley et al., arXiv:2208.01893)
and its code (fab-torch). Each is an integrand for
``NeuralIntegrator(target, target.dims, domain="real")``: ``target(x)`` is the
unnormalised density p~(x), ``target.log_prob(x)`` its logarithm (the gradient
trainers use it directly), ``target.log_z`` the exact log of its integral and
``target.sample(n, generator)`` exact draws, against which a sampler's
forward ESS and mode coverage are measured
(:mod:`hepflows.integrate.metrics`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError

#: Integral of exp(-x^4 + 6 x^2 + x / 2) over the real line (the design note's value,
#: checked by quadrature in tests/integrate/test_targets.py).
DOUBLE_WELL_Z = 11784.50927
#: The double well's two maxima, roots of -4 x^3 + 12 x + 1/2.
_WELLS = (1.7525198623099463, -1.7108290410295461)
#: Share of its mass at x > 0 (quadrature).
_RIGHT = 0.8443070962111393
#: Width of each Gaussian of the rejection sampler's envelope (acceptance about 0.5).
_ENVELOPE_SIGMA = 0.4


class Target:
    """An unnormalised density on R^d with exact log Z and exact samples.

    Subclasses set ``name``, ``dims`` and ``log_z`` and implement
    :meth:`log_prob` and :meth:`sample`.
    """

    name: str
    dims: int
    log_z: float

    def log_prob(self, x: Tensor) -> Tensor:
        """log p~(x): (n, d) -> (n,)."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact draws (n, d) float64 (on the generator's device)."""
        raise NotImplementedError

    @property
    def exact(self) -> float:
        """The integral Z = exp(log Z) (what an integrator estimates)."""
        return math.exp(self.log_z)

    def __call__(self, x: Tensor) -> Tensor:
        """p~(x): (n, d) -> (n,) (0 where exp underflows; :meth:`log_prob` keeps the tails)."""
        return self.log_prob(x).exp()

    def _check(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.dims:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"{self.name} takes points (n, {self.dims}), got {got}")
        return x


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"the number of samples must be an int >= 0, got {n!r}")
    return n


class ManyWell(Target):
    """The Many-Well: d / 2 independent double wells, 2^(d/2) modes.

    log p~(x) = sum_i [-x_i^4 + 6 x_i^2 + x_i / 2 - y_i^2 / 2] over the pairs
    (x_i, y_i) = (x[2i], x[2i+1]); each x_i has two wells near -1.71 and +1.75
    (84 % of the mass on the right), each y_i is a standard normal.
    log Z = (d / 2) (ln 11784.50927 + ln(2 pi) / 2). The 32-D case has 65,536
    modes.

    Args:
        dims: d, even (32 in the FAB paper; 4 gives 4 modes, a quick check).
    """

    def __init__(self, dims: int = 32) -> None:
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 2 or dims % 2:
            raise ConfigError(f"the Many-Well needs an even dims >= 2, got {dims!r}")
        self.name, self.dims = f"many-well-{dims}", dims
        self.wells = dims // 2
        self.log_z = self.wells * (math.log(DOUBLE_WELL_Z) + 0.5 * math.log(2 * math.pi))
        self._log_bound: float | None = None

    def log_prob(self, x: Tensor) -> Tensor:
        """log p~(x): (n, d) -> (n,), in x's dtype (differentiable)."""
        pairs = self._check(x).reshape(len(x), self.wells, 2)
        a, b = pairs[..., 0], pairs[..., 1]
        return (-(a**4) + 6 * a**2 + 0.5 * a - 0.5 * b**2).sum(-1)

    def modes(self, x: Tensor) -> Tensor:
        """The mode each point sits in: the sign pattern of its x_i as an int (n,) in
        [0, 2^(d/2)) (bit i set where x_i > 0)."""
        signs = (self._check(x)[:, 0::2] > 0).to(torch.int64)
        powers = 2 ** torch.arange(self.wells, dtype=torch.int64, device=x.device)
        return (signs * powers).sum(-1)

    # ---------------------------------------------------------------- sampling
    @staticmethod
    def _log_envelope(x: Tensor) -> Tensor:
        """log of the rejection envelope's density: two Gaussians at the wells (1-D)."""
        s = _ENVELOPE_SIGMA
        norm = -math.log(s * math.sqrt(2 * math.pi))
        right = math.log(_RIGHT) + norm - 0.5 * ((x - _WELLS[0]) / s) ** 2
        left = math.log(1 - _RIGHT) + norm - 0.5 * ((x - _WELLS[1]) / s) ** 2
        return torch.logaddexp(right, left)

    @staticmethod
    def _log_well(x: Tensor) -> Tensor:
        return -(x**4) + 6 * x**2 + 0.5 * x

    def log_bound(self) -> float:
        """log M with p~_x <= M g everywhere (g the envelope): the maximum of the ratio on a
        fine grid over [-6, 6] (outside, the quartic makes it negligible) plus 2 %."""
        if self._log_bound is None:
            grid = torch.linspace(-6.0, 6.0, 240_001, dtype=torch.float64, device="cpu")
            ratio = self._log_well(grid) - self._log_envelope(grid)
            self._log_bound = float(ratio.max()) + math.log(1.02)
        return self._log_bound

    def _double_well(self, n: int, generator: torch.Generator | None, device: torch.device
                     ) -> Tensor:  # fmt: skip
        """n exact draws of one x_i (rejection from the two-Gaussian envelope)."""
        log_m, out, have = self.log_bound(), [], 0
        kw = {"generator": generator, "dtype": torch.float64, "device": device}
        while have < n:
            m = max(2 * (n - have) + 64, 1024)
            right = torch.rand(m, **kw) < _RIGHT
            centre = torch.where(right, _WELLS[0], _WELLS[1])
            prop = centre + _ENVELOPE_SIGMA * torch.randn(m, **kw)
            log_accept = self._log_well(prop) - self._log_envelope(prop) - log_m
            keep = torch.log(torch.rand(m, **kw)) < log_accept
            out.append(prop[keep])
            have += int(keep.sum())
        return torch.cat(out)[:n]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact draws (n, d) float64: rejection-sampled wells, normal y's."""
        n = _check_n(n)
        device = generator.device if generator is not None else torch.device("cpu")
        x = self._double_well(n * self.wells, generator, device).view(n, self.wells)
        y = torch.randn(n, self.wells, generator=generator, dtype=torch.float64, device=device)
        return torch.stack([x, y], -1).reshape(n, self.dims)


class GaussianMixture(Target):
    """An equal-weight mixture of K isotropic Gaussians (normalised: log Z = 0).

    Args:
        means: (K, d) component means.
        std: the components' standard deviation.
        name: a short name.
    """

    def __init__(self, means: Tensor, std: float, name: str = "gmm") -> None:
        if means.ndim != 2 or len(means) < 1 or not std > 0:
            raise ConfigError(f"need means (K, d) and std > 0, got {tuple(means.shape)} and {std}")
        self.means = means.to(torch.float64)
        self.std, self.name, self.dims, self.log_z = float(std), name, means.shape[1], 0.0

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x): (n, d) -> (n,) (differentiable)."""
        k, d = self.means.shape
        diff = (self._check(x)[:, None, :] - self.means.to(x)) / self.std
        log_comp = -0.5 * (diff**2).sum(-1) - d * math.log(self.std * math.sqrt(2 * math.pi))
        return torch.logsumexp(log_comp, -1) - math.log(k)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact draws (n, d) float64."""
        n = _check_n(n)
        device = generator.device if generator is not None else torch.device("cpu")
        k = torch.randint(len(self.means), (n,), generator=generator, device=device)
        noise = torch.randn(n, self.dims, generator=generator, dtype=torch.float64, device=device)
        return self.means.to(device)[k] + self.std * noise


def gmm40(dims: int = 2) -> GaussianMixture:
    """The FAB paper's GMM: 40 Gaussians, means uniform in [-40, 40]^d drawn from a
    generator of its own seeded 0 (the same stream as the paper's global seed 0; the global
    RNG is not touched), std softplus(1) = 1.313."""
    g = torch.Generator(device="cpu").manual_seed(0)
    means = (torch.rand(40, dims, generator=g, device="cpu") - 0.5) * 2 * 40.0
    return GaussianMixture(means.to(torch.float64), math.log1p(math.e), name=f"gmm40-{dims}d")
