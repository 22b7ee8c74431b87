"""The event record: unweighted events and how they were made (below every pillar)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class Events:
    """Unweighted events and how they were made.

    Attributes:
        x: (n, d) event coordinates in the unit cube (float64).
        weights: (n,) event weights: +-1, or > 1 for overweight events.
        sigma: integral estimate used to normalise (sum of weights * sigma / n
            estimates the integral).
        sigma_error: its error.
        w_max: the reference weight.
        rule: the w_max rule (``"quantile"`` or ``"max"``) and its quantile.
        efficiency: <|w|> / w_max.
        overweight_fraction: fraction of accepted events with |weight| > 1.
        calls: integrand calls spent on w_max estimation and generation.
        channel: (n,) int64 channel that produced each event (multi-channel), or ``None``.
        channel_names: names of the channels.
        result: the run's one integration result (an ``IntegrationResult`` of
            :mod:`hepflows.integrate`: sigma, its error and the unweighting
            efficiency of each w_max rule, from every fresh sample of the run).
    """

    x: Tensor
    weights: Tensor
    sigma: float
    sigma_error: float
    w_max: float
    rule: str
    quantile: float
    efficiency: float
    overweight_fraction: float
    calls: int
    channel: Tensor | None = None
    channel_names: list[str] = field(default_factory=list)
    result: Any = None

    def __len__(self) -> int:
        return len(self.x)

    def summary(self) -> str:
        """A few lines a person reads."""
        rule = f"{self.quantile:g} quantile of |w|" if self.rule == "quantile" else "max |w|"
        return "\n".join(
            [
                f"events        = {len(self):,} unweighted",
                f"sigma         = {self.sigma:.6g} +- {self.sigma_error:.3g}",
                f"w_max rule    = {rule} (w_max = {self.w_max:.4g})",
                f"efficiency    = {self.efficiency:.4g} (<|w|>/w_max), "
                f"{self.overweight_fraction:.2%} overweight events",
                f"calls         = {self.calls:,} for the estimate and the events "
                f"({self.calls / max(len(self), 1):.1f} per event)",
            ]
        )
