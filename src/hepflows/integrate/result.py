"""Result of an integration: value, error and the figures a user looks at."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from hepflows.integrate.unweighting import quantile_of


@dataclass
class ChannelResult:
    """Contribution of one channel of a multi-channel integration.

    Attributes:
        index: channel number.
        value: its integral I_i = int alpha_i f.
        error: its standard error.
        calls: points it got (in proportion to its weight spread).
        name: its name.
    """

    index: int
    value: float
    error: float
    calls: int
    name: str = ""


@dataclass
class IntegrationResult:
    """An unbiased Monte-Carlo estimate from fresh weighted samples.

    Attributes:
        value: the integral estimate, mean of the weights.
        error: its standard error.
        calls: integrand calls used for this estimate.
        ess: effective sample size (sum w)^2 / sum w^2.
        unweighting_efficiency: <|w|> / max|w| over this sample.
        unweighting_efficiency_quantile: <|w|> / w_q with w_q the
            ``quantile`` of |w| (MadNIS-style, robust to one outlier).
        quantile: the quantile used for the above.
        overweight_fraction: fraction of points with |w| > w_q.
        dropped: points whose integrand value was NaN/inf and counted as 0.
        exact: the exact value when known (test integrands).
        channels: per-channel contributions (multi-channel integration).
        total_calls: all integrand calls of the integrator so far, training included.
    """

    value: float
    error: float
    calls: int
    ess: float
    unweighting_efficiency: float
    unweighting_efficiency_quantile: float
    quantile: float
    overweight_fraction: float
    dropped: int = 0
    exact: float | None = None
    channels: list[ChannelResult] = field(default_factory=list)
    total_calls: int = 0

    @property
    def relative_error(self) -> float:
        """error / |value|."""
        return self.error / abs(self.value) if self.value else math.inf

    @property
    def sigma_sqrt_n(self) -> float:
        """error * sqrt(calls) / |value|: the per-point relative spread (lower is better)."""
        return self.relative_error * math.sqrt(self.calls)

    @property
    def pull(self) -> float | None:
        """(value - exact) / error when the exact value is known."""
        if self.exact is None or self.error == 0:
            return None
        return (self.value - self.exact) / self.error

    def summary(self) -> str:
        """A table a person reads."""
        lines = [
            f"integral      = {self.value:.8g} +- {self.error:.3g}  "
            f"(relative {self.relative_error:.3g})",
        ]
        if self.exact is not None:
            pull = "exact estimate" if self.pull is None else f"pull {self.pull:+.2f} sigma"
            lines.append(f"exact         = {self.exact:.8g}  ({pull})")
        lines += [
            f"calls         = {self.calls:,} for this estimate ({self.total_calls:,} in all)",
            f"sigma*sqrt(N)/I = {self.sigma_sqrt_n:.4g}",
            f"ESS           = {self.ess:,.0f} ({self.ess / max(self.calls, 1):.1%} of calls)",
            f"unweighting   = {self.unweighting_efficiency:.4g} (w_max = max), "
            f"{self.unweighting_efficiency_quantile:.4g} (w_max = {self.quantile:g} quantile, "
            f"{self.overweight_fraction:.2g} overweight)",
        ]
        if self.dropped:
            lines.append(f"dropped       = {self.dropped} points with NaN/inf integrand (as 0)")
        width = max([14, *(len(ch.name or str(ch.index)) + 2 for ch in self.channels)])
        if self.channels:
            lines.append(f"{'channel':<{width}}{'integral':>14}{'error':>11}{'share':>8}"
                         f"{'calls':>11}")  # fmt: skip
        for ch in self.channels:
            name = f"{ch.name or ch.index!s:<{width}}"
            if ch.calls == 0:  # dropped in training (NeuralIntegrator(drop_channels=...))
                lines.append(f"{name}{'dropped':>14}")
                continue
            share = ch.value / self.value if self.value else math.nan
            lines.append(f"{name}{ch.value:>14.6g}{ch.error:>11.3g}{share:>8.1%}"
                         f"{ch.calls:>11,}")  # fmt: skip
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def weight_statistics(w: Tensor, quantile: float = 0.999) -> dict[str, float]:
    """ESS, unweighting efficiencies and overweight fraction of weights (n,)."""
    aw = w.abs().to(torch.float64)
    mean = aw.mean().item()
    w_max = aw.max().item() if len(aw) else 0.0
    w_q = quantile_of(aw, quantile) if len(aw) else 0.0
    s2 = (w.to(torch.float64) ** 2).sum().item()
    return {
        "ess": w.to(torch.float64).sum().item() ** 2 / s2 if s2 > 0 else 0.0,
        "unweighting_efficiency": mean / w_max if w_max > 0 else 0.0,
        "unweighting_efficiency_quantile": min(mean / w_q, 1.0) if w_q > 0 else 0.0,
        "overweight_fraction": (aw > w_q).to(torch.float64).mean().item() if len(aw) else 0.0,
        "quantile": quantile,
    }
