"""Multi-channel integration (MadNIS, 2212.06172): channels and learned channel weights.

A channel is a change of variables x = phi_i(u) from the unit cube onto the
unit cube with its Jacobian |d x / d u| (e.g. a Breit-Wigner mapping that
flattens one resonance) and, optionally, a prior weight g_i(x) >= 0 (e.g.
|M_i|^2 of the diagram the mapping follows). The integral splits as

    I = sum_i I_i,   I_i = int alpha_i(x) f(x) dx = int alpha_i(phi_i(u)) f(phi_i(u)) J_i(u) du

with channel weights sum_i alpha_i(x) = 1. Any alpha gives the right
integral; a good alpha makes every I_i easy for its channel's flow.
:class:`ChannelWeights` learns alpha_i(x) = softmax_i(log g_i(x) + NN_i(x)),
starting from the classic multi-channel weights g_i / sum_j g_j (or 1/C).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hepflows.errors import ConfigError, InputError

Mapping = Callable[[Tensor], tuple[Tensor, Tensor]]
Prior = Callable[[Tensor], Tensor]


@dataclass
class Channel:
    """One integration channel.

    Attributes:
        mapping: u (n, d) in [0, 1]^d -> (x (n, d) in [0, 1]^d, jac (n,) = |dx/du|);
            ``None`` is the identity.
        prior: x (n, d) -> (n,) non-negative prior weight g_i(x) (e.g. the
            squared amplitude of the diagram the mapping follows); ``None``
            means 1 everywhere.
        name: label for tables and events.
        inverse: x (n, d) -> (u (n, d), jac (n,) = |dx/du| at u), the inverse of
            ``mapping``; needed for mixture weights (each channel's density at
            points drawn by the others). ``None`` with ``mapping=None`` is the
            identity.
    """

    mapping: Mapping | None = None
    prior: Prior | None = None
    name: str = ""
    inverse: Mapping | None = None

    @property
    def invertible(self) -> bool:
        """Whether the channel's density can be evaluated at any point."""
        return self.mapping is None or self.inverse is not None


def breit_wigner_channel(
    axis: int, center: float, width: float, name: str = "", prior: bool = True
) -> Channel:
    """A channel that flattens a Cauchy (Breit-Wigner) peak on one axis of the unit cube.

    x_axis = m + g tan(a0 + u (a1 - a0)) with a0 = atan(-m/g), a1 = atan((1-m)/g)
    is the inverse CDF of 1 / ((x - m)^2 + g^2) truncated to [0, 1]; the other
    coordinates pass through. Jacobian: (a1 - a0) ((x - m)^2 + g^2) / g.

    Args:
        axis: coordinate the peak lives on.
        center: m in (0, 1).
        width: half width g > 0.
        name: channel name.
        prior: use the peak g / (pi ((x - m)^2 + g^2)) as prior weight.
    """
    if not 0 < center < 1 or width <= 0:
        raise ConfigError(f"need 0 < center < 1 and width > 0, got {center}, {width}")
    a0, a1 = math.atan(-center / width), math.atan((1 - center) / width)

    def peak(t: Tensor) -> Tensor:
        return width / math.pi / ((t - center) ** 2 + width**2)

    def mapping(u: Tensor) -> tuple[Tensor, Tensor]:
        t = center + width * torch.tan(a0 + u[:, axis] * (a1 - a0))
        x = u.clone()
        x[:, axis] = t.clamp(0, 1)
        return x, (a1 - a0) / math.pi / peak(t)

    def inverse(x: Tensor) -> tuple[Tensor, Tensor]:
        t = x[:, axis]
        u = x.clone()
        u[:, axis] = ((torch.atan((t - center) / width) - a0) / (a1 - a0)).clamp(0, 1)
        return u, (a1 - a0) / math.pi / peak(t)

    return Channel(mapping, (lambda x: peak(x[:, axis])) if prior else None,
                   name or f"bw{axis}@{center:g}", inverse)  # fmt: skip


def check_channels(channels: Sequence[Channel] | None) -> list[Channel]:
    """Validate a channel list (``None`` is one identity channel) and name unnamed channels."""
    if channels is None:
        return [Channel(name="0")]
    channels = list(channels)
    if not channels:
        raise ConfigError("channels is empty: pass None for one channel or a list of Channel")
    out = []
    for i, ch in enumerate(channels):
        if not isinstance(ch, Channel):
            raise ConfigError(
                f"channel {i} is a {type(ch).__name__}; wrap it as "
                "Channel(mapping=..., prior=..., name=...)"
            )
        if ch.mapping is not None and not callable(ch.mapping):
            raise ConfigError(f"channel {i}: mapping must be callable u -> (x, jac)")
        if ch.prior is not None and not callable(ch.prior):
            raise ConfigError(f"channel {i}: prior must be callable x -> (n,)")
        if ch.inverse is not None and not callable(ch.inverse):
            raise ConfigError(f"channel {i}: inverse must be callable x -> (u, jac)")
        out.append(Channel(ch.mapping, ch.prior, ch.name or str(i), ch.inverse))
    names = [ch.name for ch in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"channel names must be unique, got {names}")
    return out


def apply_mapping(channel: Channel, index: int, u: Tensor) -> tuple[Tensor, Tensor]:
    """Map (n, d) float64 points of one channel and check what the mapping returns.

    Returns:
        ``(x, jac)``: (n, d) points in [0, 1]^d and (n,) Jacobians |dx/du| >= 0.
    """
    if channel.mapping is None:
        return u, torch.ones(len(u), dtype=u.dtype, device=u.device)
    return _checked(channel.mapping, "mapping", channel, index, u)


def apply_inverse(channel: Channel, index: int, x: Tensor) -> tuple[Tensor, Tensor]:
    """Invert a channel's mapping at (n, d) float64 points, checked like :func:`apply_mapping`.

    Returns:
        ``(u, jac)``: (n, d) channel points in [0, 1]^d and (n,) Jacobians |dx/du| at u.
    """
    if channel.mapping is None:
        return x, torch.ones(len(x), dtype=x.dtype, device=x.device)
    if channel.inverse is None:
        raise ConfigError(
            f"channel {index} ({channel.name}) has a mapping but no inverse; mixture weights "
            "need Channel(inverse=...), or use weights='learned'"
        )
    u, jac = _checked(channel.inverse, "inverse", channel, index, x)
    if bool((jac == 0).any()):
        raise InputError(
            f"channel {index} ({channel.name}): the inverse returned |dx/du| = 0 at "
            f"{int((jac == 0).sum())} points, where the channel density would be infinite; "
            "return the Jacobian of the mapping at u"
        )
    return u, jac


def _checked(
    fn: Mapping, what: str, channel: Channel, index: int, u: Tensor
) -> tuple[Tensor, Tensor]:
    x, jac = fn(u)
    if not isinstance(x, Tensor) or x.shape != u.shape:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InputError(
            f"channel {index} ({channel.name}): the {what} must return points of shape "
            f"{tuple(u.shape)} and jac of shape ({len(u)},), got points {shape}"
        )
    if not isinstance(jac, Tensor) or jac.shape != (len(u),):
        shape = tuple(jac.shape) if isinstance(jac, Tensor) else type(jac).__name__
        raise InputError(
            f"channel {index} ({channel.name}): the {what}'s Jacobian must have shape "
            f"({len(u)},), got {shape}"
        )
    x, jac = x.to(u.dtype), jac.to(u.dtype)
    bad = ~torch.isfinite(jac) | (jac < 0) | ~torch.isfinite(x).all(-1)
    if bool(bad.any()):
        raise InputError(
            f"channel {index} ({channel.name}): the {what} returned a NaN/inf point or a "
            f"negative/NaN Jacobian at {int(bad.sum())} points, e.g. at "
            f"{u[bad][:2].tolist()}; return |dx/du| >= 0 and finite points"
        )
    outside = (x < -1e-12) | (x > 1 + 1e-12)
    if bool(outside.any()):
        raise InputError(
            f"channel {index} ({channel.name}): the {what} left the unit cube at "
            f"{int(outside.any(-1).sum())} points (e.g. {x[outside.any(-1)][:2].tolist()}); "
            "channel mappings go from [0, 1]^d to [0, 1]^d"
        )
    return x.clamp(0, 1), jac


def log_priors(channels: Sequence[Channel], x: Tensor) -> Tensor | None:
    """(n, C) log prior weights log g_i(x) at x (n, d); ``None`` if no channel has one.

    Channels without a prior count as g = 1; g = 0 gives -inf (the softmax
    then ignores that channel); if every g_i(x) is 0 the weights are uniform.
    """
    if all(ch.prior is None for ch in channels):
        return None
    cols = []
    for i, ch in enumerate(channels):
        if ch.prior is None:
            cols.append(torch.zeros(len(x), dtype=x.dtype, device=x.device))
            continue
        g = torch.as_tensor(ch.prior(x), device=x.device).to(x.dtype)
        if g.shape != (len(x),) or bool((~torch.isfinite(g) | (g < 0)).any()):
            raise InputError(
                f"channel {i} ({ch.name}): the prior must return ({len(x)},) finite values "
                f">= 0, got shape {tuple(g.shape)}"
                + (f" with {int((~torch.isfinite(g) | (g < 0)).sum())} bad values"
                   if g.shape == (len(x),) else "")
            )  # fmt: skip
        cols.append(torch.log(g))
    logs = torch.stack(cols, dim=1)
    none = torch.isinf(logs).all(dim=1, keepdim=True)
    return torch.where(none, torch.zeros_like(logs), logs)


class ChannelWeights(nn.Module):
    """Learned channel weights log alpha_i(x) = log_softmax_i(log g_i(x) + NN_i(x)).

    The network's last layer starts at zero, so training starts from the prior
    weights g_i / sum_j g_j (uniform without priors).

    Args:
        dims: d.
        channels: C.
        hidden: hidden widths of the network.
    """

    def __init__(self, dims: int, channels: int, hidden: Sequence[int] = (32, 32)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = dims
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        last = nn.Linear(width, channels)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor, log_prior: Tensor | None = None) -> Tensor:
        """(n, d) points and (n, C) log priors (or ``None``) -> (n, C) log alpha (float64)."""
        logits = self.net(x.to(self.net[-1].weight.dtype)).to(torch.float64)
        if log_prior is not None:
            logits = logits + log_prior.to(torch.float64)
        return torch.log_softmax(logits, dim=1)


def allocate(n: int, fractions: Tensor, minimum: int = 1) -> list[int]:
    """Split n points over channels in proportion to ``fractions`` (C,), each >= ``minimum``.

    Largest remainders get the leftover points, so the counts sum to n
    (n >= C * minimum). When some fractions are positive, channels with fraction 0
    (dropped) get no points and the minimum applies to the others.
    """
    share = fractions.to(torch.float64).clamp_min(0)
    live = share > 0 if bool((share > 0).any()) else torch.ones_like(share, dtype=torch.bool)
    c = int(live.sum())
    if n < c * minimum:
        raise ConfigError(f"{n} points cannot give each of {c} channels {minimum}: ask for more")
    if share.sum() > 0:
        share = share / share.sum()
    else:
        share = torch.full_like(share, 1.0 / len(share))
    raw = torch.where(live, minimum + share * (n - c * minimum), torch.zeros_like(share))
    counts = raw.floor().to(torch.int64)
    left = n - int(counts.sum())
    if left:
        remainder = torch.where(live, raw - counts, torch.full_like(raw, -1.0))
        counts[torch.argsort(remainder, descending=True)[:left]] += 1
    return counts.tolist()
