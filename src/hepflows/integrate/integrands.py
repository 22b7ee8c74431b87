"""Integrands on the unit cube and the i-flow test suite with exact integrals.

An integrand is any batched callable ``f(x)`` with ``x`` of shape (n, d) in
[0, 1]^d (or R^d, for ``NeuralIntegrator(domain="real")``) returning (n,)
values (signed values allowed). :func:`evaluate`
calls it and checks what comes back: a wrong shape or a NaN/inf stops with a
clear error naming how many points and where, unless dropping is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError

Integrand = Callable[[Tensor], Tensor]


class IntegrandError(InputError):
    """The integrand returned a wrong shape, NaN or inf."""


def evaluate(f: Integrand, x: Tensor, drop_nonfinite: bool = False) -> tuple[Tensor, int]:
    """Evaluate ``f`` on a batch and check the values.

    Args:
        f: the integrand.
        x: (n, d) points in the unit cube.
        drop_nonfinite: set NaN/inf values to zero (the point then counts with
            weight 0) instead of raising; the count is returned.

    Returns:
        ``(values, n_dropped)``: (n,) values in the dtype of ``x``, and how
        many were non-finite and set to zero.
    """
    values = f(x)
    if not isinstance(values, Tensor):
        values = torch.as_tensor(values, device=x.device)
    if values.shape != (x.shape[0],):
        raise IntegrandError(
            f"the integrand must return shape ({x.shape[0]},) for x of shape {tuple(x.shape)}, "
            f"got {tuple(values.shape)}: return one value per row of x"
        )
    values = values.to(x.dtype)
    bad = ~torch.isfinite(values)
    n_bad = int(bad.sum())
    if n_bad:
        if not drop_nonfinite:
            where = x[bad][: min(3, n_bad)].tolist()
            raise IntegrandError(
                f"the integrand returned NaN or inf at {n_bad} of {len(values)} points, e.g. "
                f"x = {where}; fix the integrand there, or pass drop_nonfinite=True to count "
                "those points with weight 0 (the count is reported)"
            )
        values = torch.where(bad, torch.zeros_like(values), values)
    return values, n_bad


def evaluate_differentiable(f: Integrand, x: Tensor) -> Tensor:
    """Call ``f`` on points that carry an autograd graph, for gradient-based trainers.

    Args:
        f: the integrand, written in torch operations.
        x: (n, d) points that require grad (or come from a flow with gradient).

    Returns:
        (n,) values with their autograd graph (not checked for NaN: the caller decides).

    Raises:
        IntegrandError: autograd failed inside ``f`` (e.g. a numpy round trip), or ``f``
            did not return a torch tensor of shape (n,).
    """
    try:
        fx = f(x)
    except RuntimeError as err:  # e.g. numpy() on a tensor that requires grad
        raise IntegrandError(
            f"the integrand is differentiated with torch autograd and that failed: {err}; "
            "write f in torch operations (no numpy round trip)"
        ) from err
    if not isinstance(fx, Tensor) or fx.shape != (len(x),):
        shape = tuple(fx.shape) if isinstance(fx, Tensor) else type(fx).__name__
        raise IntegrandError(
            f"a gradient-based trainer needs f to return a torch tensor of shape ({len(x)},) "
            f"with autograd, got {shape}: write the integrand in torch"
        )
    return fx


def log_density(f: Integrand, x: Tensor) -> Tensor:
    """log f at (n, d) points, float64 (n,), with its autograd graph (for gradient trainers).

    Uses ``f.log_prob(x)`` when f has one (a density known in log form: no
    underflow of exp in the tails, where the gradient of log f stays finite),
    else log of ``f(x)``. f = 0 gives -inf; NaN is left for the caller to judge.

    Raises:
        IntegrandError: f is negative somewhere (a density is needed), or the
            call or its autograd fails (see :func:`evaluate_differentiable`).
    """
    log_prob = getattr(f, "log_prob", None)
    if callable(log_prob):
        return evaluate_differentiable(log_prob, x).to(torch.float64)
    fx = evaluate_differentiable(f, x)
    if bool((fx.detach() < 0).any()):
        raise IntegrandError(
            "this trainer samples a density: f returned negative values; use the "
            "importance trainer (loss='variance') for signed integrands"
        )
    return torch.log(fx.to(torch.float64))


@dataclass
class KnownIntegrand:
    """A test integrand with a known integral: call it as ``f(x)``.

    Attributes:
        name: short name.
        dims: d.
        exact: the exact integral over [0, 1]^d.
        channels: suggested integration channels (multi-channel cases), or ``None``.
    """

    name: str
    dims: int
    exact: float
    func: Callable[[Tensor], Tensor]
    channels: list | None = None

    def __call__(self, x: Tensor) -> Tensor:
        """(n, d) -> (n,)."""
        return self.func(x)


def _normal_mass(mu: float, sigma: float) -> float:
    """Mass of N(mu, sigma) inside [0, 1]."""
    s = sigma * math.sqrt(2)
    return 0.5 * (math.erf((1 - mu) / s) - math.erf(-mu / s))


def _log_normal_product(x: Tensor, mu: float, sigma: float) -> Tensor:
    d = x.shape[-1]
    return -0.5 * (((x - mu) / sigma) ** 2).sum(-1) - d * math.log(sigma * math.sqrt(2 * math.pi))


def gaussian(dims: int, mu: float = 0.5, sigma: float = 0.2 / math.sqrt(2)) -> KnownIntegrand:
    """prod_i N(x_i; mu, sigma); exact = erf(0.5 / (sigma sqrt 2))^d for mu = 0.5 (i-flow)."""
    exact = _normal_mass(mu, sigma) ** dims
    return KnownIntegrand(
        "gaussian", dims, exact, lambda x: _log_normal_product(x, mu, sigma).exp()
    )


def camel(dims: int, alpha: float = 0.2) -> KnownIntegrand:
    """1/2 [prod N(x_i; 1/3, s) + prod N(x_i; 2/3, s)], s = alpha / sqrt 2 (i-flow)."""
    s = alpha / math.sqrt(2)
    exact = 0.5 * (_normal_mass(1 / 3, s) ** dims + _normal_mass(2 / 3, s) ** dims)

    def f(x: Tensor) -> Tensor:
        a = _log_normal_product(x, 1 / 3, s)
        b = _log_normal_product(x, 2 / 3, s)
        return 0.5 * (a.exp() + b.exp())

    return KnownIntegrand("camel", dims, exact, f)


def polynomial(dims: int) -> KnownIntegrand:
    """sum_i (x_i - x_i^2); exact = d / 6."""
    return KnownIntegrand("polynomial", dims, dims / 6, lambda x: (x - x * x).sum(-1))


def signed(dims: int) -> KnownIntegrand:
    """prod_i cos(2 pi x_i) + 0.5 prod_i x_i: changes sign; exact = 0.5 / 2^d."""
    return KnownIntegrand(
        "signed", dims, 0.5 / 2**dims,
        lambda x: torch.cos(2 * math.pi * x).prod(-1) + 0.5 * x.prod(-1),
    )  # fmt: skip


def _cauchy_mass(center: float, width: float) -> float:
    """Mass of the normalised Cauchy peak inside [0, 1]."""
    return (math.atan((1 - center) / width) - math.atan(-center / width)) / math.pi


def resonances(dims: int, width: float = 0.002) -> KnownIntegrand:
    """Two narrow Breit-Wigner ridges on different axes: the multi-channel test case.

    f = 1/2 BW(x_0; 0.3, g) 2 x_1 + 1/2 BW(x_1; 0.7, g) (d >= 2), BW the
    normalised Cauchy peak of half width g. A single mapping can flatten one
    ridge but not both; :func:`resonance_channels` gives one channel per
    ridge. Exact integral from arctan.
    """
    if dims < 2:
        raise ConfigError(f"resonances needs dims >= 2, got {dims}")
    exact = 0.5 * _cauchy_mass(0.3, width) + 0.5 * _cauchy_mass(0.7, width)

    def bw(t: Tensor, m: float) -> Tensor:
        return width / math.pi / ((t - m) ** 2 + width**2)

    def f(x: Tensor) -> Tensor:
        return 0.5 * bw(x[:, 0], 0.3) * 2 * x[:, 1] + 0.5 * bw(x[:, 1], 0.7)

    out = KnownIntegrand("resonances", dims, exact, f)
    out.channels = resonance_channels(width)
    return out


def resonance_channels(width: float = 0.002) -> list:
    """The two Breit-Wigner channels of :func:`resonances` (with their peaks as priors)."""
    from hepflows.integrate.channels import breit_wigner_channel

    return [breit_wigner_channel(0, 0.3, width, "ridge x0"),
            breit_wigner_channel(1, 0.7, width, "ridge x1")]  # fmt: skip


def comb(dims: int, peaks: int = 60, width: float = 1e-3, faint: int = 3) -> KnownIntegrand:
    """A comb of ``peaks`` narrow Breit-Wigner peaks on x_0, one channel each: the test case
    of many-channel integration and channel dropping.

    f = sum_k c_k BW(x_0; m_k, g) 2 x_1 (d >= 2) with m_k = (k + 1) / (peaks + 1); every
    ``faint``-th peak has c_k = 1e-6 (a channel worth dropping), the others c_k = 1 +
    k / peaks. :func:`comb_channels` gives the channels. Exact integral from arctan.
    """
    if dims < 2:
        raise ConfigError(f"comb needs dims >= 2, got {dims}")
    if peaks < 1 or not 0 < width < 0.5 / (peaks + 1):
        raise ConfigError(f"need peaks >= 1 and 0 < width < {0.5 / (peaks + 1):.3g} (the "
                          f"peaks must not overlap), got {peaks}, {width}")  # fmt: skip
    centers = [(k + 1) / (peaks + 1) for k in range(peaks)]
    strengths = [1e-6 if faint and k % faint == faint - 1 else 1 + k / peaks
                 for k in range(peaks)]  # fmt: skip
    exact = sum(c * _cauchy_mass(m, width) for c, m in zip(strengths, centers, strict=True))
    m_t = torch.tensor(centers, dtype=torch.float64)
    c_t = torch.tensor(strengths, dtype=torch.float64)

    def f(x: Tensor) -> Tensor:
        t = x[:, :1]
        peak = width / math.pi / ((t - m_t.to(x.device)) ** 2 + width**2)
        return (peak * c_t.to(x.device)).sum(1) * 2 * x[:, 1]

    out = KnownIntegrand("comb", dims, exact, f)
    out.channels = comb_channels(peaks, width)
    return out


def comb_channels(peaks: int = 60, width: float = 1e-3) -> list:
    """One Breit-Wigner channel per peak of :func:`comb` (its peak as the prior)."""
    from hepflows.integrate.channels import breit_wigner_channel

    return [breit_wigner_channel(0, (k + 1) / (peaks + 1), width, f"peak {k}")
            for k in range(peaks)]  # fmt: skip


#: Built-in test integrands by name (used by ``hepflows integrate NAME``).
BUILTIN: dict[str, Callable[[int], KnownIntegrand]] = {
    "gaussian": gaussian,
    "camel": camel,
    "polynomial": polynomial,
    "signed": signed,
    "resonances": resonances,
    "comb": comb,
}


def builtin(name: str, dims: int) -> KnownIntegrand:
    """A built-in test integrand by name."""
    if name not in BUILTIN:
        raise ConfigError(f"unknown integrand {name!r}: choose from {sorted(BUILTIN)}")
    if dims < 1:
        raise ConfigError(f"dims must be >= 1, got {dims}")
    return BUILTIN[name](dims)
