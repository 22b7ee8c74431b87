"""Summary networks: an observation x to a short vector the posterior flow is conditioned on.

Trained together with the flow (the NLL of theta given the summary is their
common loss), so the summary learns what in x informs theta.

* :class:`MLPSummary`: a fixed-length x (a histogram, a few observables), (n, D) -> (n, E).
* :class:`SetSummary`: an event list, permutation invariant (Deep Sets,
  Zaheer et al. 1703.06114): phi per event, a masked mean over events and the
  log of their number, then rho. (n, N, F) -> (n, E); rows of NaN pad lists
  shorter than N.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hepflows.errors import ConfigError


def mlp(features: int, out: int, hidden: Sequence[int]) -> nn.Sequential:
    """Linear layers with SiLU between them: (*, features) -> (*, out)."""
    sizes = [features, *hidden, out]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


class MLPSummary(nn.Module):
    """(n, D) observations -> (n, E) summaries.

    Args:
        features: D.
        out: E.
        hidden: widths of the hidden layers.
    """

    def __init__(self, features: int, out: int, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        self.net = mlp(features, out, hidden)

    def forward(self, x: Tensor) -> Tensor:
        """(n, D) -> (n, E)."""
        return self.net(x)


class SetSummary(nn.Module):
    """(n, N, F) event lists (NaN rows: padding) -> (n, E) summaries, invariant under
    permutations of the events.

    Args:
        features: F, observables per event.
        out: E.
        hidden: widths of the hidden layers of phi and of rho.
        latent: width of the per-event representation phi.
    """

    def __init__(
        self, features: int, out: int, hidden: Sequence[int] = (128, 128), latent: int = 64
    ) -> None:
        super().__init__()
        self.phi = mlp(features, latent, hidden)
        self.rho = mlp(latent + 1, out, hidden)

    def forward(self, x: Tensor) -> Tensor:
        """(n, N, F) -> (n, E)."""
        valid = ~torch.isnan(x).any(-1, keepdim=True)  # (n, N, 1)
        h = self.phi(torch.where(valid, x, 0.0)) * valid
        count = valid.sum(1).clamp_min(1)  # (n, 1)
        pooled = h.sum(1) / count
        return self.rho(torch.cat([pooled, count.log().to(pooled.dtype)], -1))


#: The summary kinds by name.
KINDS = ("none", "mlp", "set")


def build_summary(
    kind: str, features: int, out: int, hidden: Sequence[int] = (128, 128)
) -> tuple[nn.Module, int]:
    """A summary network and its output width.

    Args:
        kind: ``"none"`` (x itself), ``"mlp"`` or ``"set"``.
        features: D (``none``, ``mlp``) or F per event (``set``).
        out: E (``mlp``, ``set``).
        hidden: hidden widths.
    """
    if kind == "none":
        return nn.Identity(), features
    if kind == "mlp":
        return MLPSummary(features, out, hidden), out
    if kind == "set":
        return SetSummary(features, out, hidden), out
    raise ConfigError(f"summary must be one of {', '.join(KINDS)}, got {kind!r}")
