"""Priors over parameters theta: independent uniform or normal components, seeded.

Amortised posteriors are trained on simulations theta_i ~ prior, x_i ~ simulator;
the prior also bounds theta (a uniform component is the posterior's support).
Randomness comes from a ``torch.Generator`` passed in, never the global stream
(``torch.distributions`` draws from the global one).

Example:
    >>> prior = Prior(["mu", "alpha"], [Uniform(0.0, 3.0), Normal(1.0, 0.01)])
    >>> theta = prior.sample(1000, torch.Generator().manual_seed(0))  # (1000, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError


def _cpu_tensor(values: Tensor | object) -> Tensor:
    """``values`` as a tensor: a tensor unchanged, anything else on the CPU."""
    return values if isinstance(values, Tensor) else torch.as_tensor(values, device="cpu")


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ConfigError(f"a uniform prior needs finite low < high, got {self.low}, "
                              f"{self.high}")  # fmt: skip

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """(n,) draws."""
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)
        return self.low + (self.high - self.low) * u

    def log_prob(self, t: Tensor) -> Tensor:
        """(n,) log density (-inf outside)."""
        inside = (t >= self.low) & (t <= self.high)
        return torch.where(inside, -math.log(self.high - self.low), -math.inf)


@dataclass(frozen=True)
class Normal:
    """Normal N(mean, std^2), e.g. the Gaussian constraint of a nuisance parameter."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and self.std > 0 and math.isfinite(self.std)):
            raise ConfigError(f"a normal prior needs a finite mean and std > 0, got {self.mean}, "
                              f"{self.std}")  # fmt: skip

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """(n,) draws."""
        return self.mean + self.std * torch.randn(n, generator=generator, dtype=torch.float64,
                                                   device=generator.device)

    def log_prob(self, t: Tensor) -> Tensor:
        """(n,) log density."""
        z = (t - self.mean) / self.std
        return -0.5 * z**2 - math.log(self.std) - 0.5 * math.log(2 * math.pi)


Component = Uniform | Normal


class Prior:
    """Independent priors on d named parameters.

    Args:
        names: the d parameter names.
        components: one :class:`Uniform` or :class:`Normal` per parameter.
    """

    def __init__(self, names: Sequence[str], components: Sequence[Component]) -> None:
        self.names = tuple(names)
        self.components = tuple(components)
        if not self.names or len(self.names) != len(self.components):
            raise ConfigError(f"give one prior component per parameter, got {len(self.names)} "
                              f"names and {len(self.components)} components")  # fmt: skip
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"parameter names must differ, got {list(self.names)}")

    @property
    def bounds(self) -> list[tuple[float, float] | None]:
        """Per parameter the support (low, high) of a uniform component, else ``None``."""
        return [(c.low, c.high) if isinstance(c, Uniform) else None for c in self.components]

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """(n, d) draws (float64)."""
        if n < 1:
            raise ConfigError(f"draw at least one sample, got n = {n}")
        return torch.stack([c.sample(n, generator) for c in self.components], -1)

    def check(self, theta: Tensor, what: str = "theta") -> Tensor:
        """Refuse (n, d) values of the wrong width, NaN, or outside a uniform's support."""
        theta = _cpu_tensor(theta)
        d = len(self.names)
        if theta.ndim != 2 or theta.shape[1] != d:
            raise InputError(f"{what} must be (n, {d}) values of {list(self.names)}, got shape "
                             f"{tuple(theta.shape)}")  # fmt: skip
        if not bool(torch.isfinite(theta).all()):
            raise InputError(f"{what} contains NaN or infinite values")
        for j, b in enumerate(self.bounds):
            if b is not None and bool(((theta[:, j] < b[0]) | (theta[:, j] > b[1])).any()):
                raise InputError(f"{what}: {self.names[j]} outside its prior's support "
                                 f"[{b[0]}, {b[1]}]")  # fmt: skip
        return theta.double()

    def log_prob(self, theta: Tensor) -> Tensor:
        """(n, d) -> (n,) log prior density (-inf outside the support)."""
        theta = _cpu_tensor(theta).to(torch.float64)
        return sum(c.log_prob(theta[:, j]) for j, c in enumerate(self.components))  # type: ignore[return-value]

    def state(self) -> dict[str, Any]:
        """JSON-ready description."""
        comps = [{"kind": type(c).__name__.lower(), **vars(c)} for c in self.components]
        return {"names": list(self.names), "components": comps}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Prior:
        """Rebuild from :meth:`state`."""
        kinds = {"uniform": Uniform, "normal": Normal}
        comps = [kinds[c["kind"]](**{k: v for k, v in c.items() if k != "kind"})
                 for c in state["components"]]  # fmt: skip
        return cls(state["names"], comps)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n} ~ {c}" for n, c in zip(self.names, self.components, strict=True))
        return f"Prior({parts})"
