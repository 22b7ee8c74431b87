"""Observables onto the real line, standardised: the coordinates flows see.

Each observable gets a bijection by name (:data:`MAPS`), then a shift and a
scale fitted on training data. Bounded observables thus stay inside their
range when mapped back: a mass stays positive (``log``), cos theta* inside
(-1, 1) (``atanh``), a pair pT non-negative (``log1p``). Other names (toys)
are only standardised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError

#: Largest |cos| before atanh (keeps the map finite at the boundary).
_EDGE = 1 - 1e-7


def _atanh(x: Tensor) -> Tensor:
    """atanh(x) = (log1p(x) - log1p(-x)) / 2, clamped to |x| <= _EDGE (this form exports to
    ONNX; torch's TorchScript exporter has no ``aten::atanh``)."""
    x = x.clamp(-_EDGE, _EDGE)
    return 0.5 * (torch.log1p(x) - torch.log1p(-x))


def _logit(x: Tensor) -> Tensor:
    """log(x / (1 - x)), clamped to [1 - _EDGE, _EDGE] (finite at the ends of [0, 1])."""
    x = x.clamp(1 - _EDGE, _EDGE)
    return torch.log(x) - torch.log1p(-x)


def _logit_log_det(x: Tensor) -> Tensor:
    x = x.clamp(1 - _EDGE, _EDGE)
    return -torch.log(x) - torch.log1p(-x)


#: kind -> (forward, inverse, log |d forward / dx|).
_KINDS = {
    "identity": (lambda x: x, lambda z: z, torch.zeros_like),
    "log": (torch.log, torch.exp, lambda x: -torch.log(x)),
    "log1p": (torch.log1p, torch.expm1, lambda x: -torch.log1p(x)),
    "atanh": (
        _atanh,
        torch.tanh,
        lambda x: -torch.log1p(-(x.clamp(-_EDGE, _EDGE) ** 2)),
    ),
    "logit": (_logit, torch.sigmoid, _logit_log_det),
}
#: The bijection of each known observable (unknown names: ``identity``).
MAPS = {"m_ll": "log", "pt_ll": "log1p", "cos_cs": "atanh", "y_ll": "identity", "pt": "log",
        "pt_minus": "log", "pt_plus": "log"}  # fmt: skip


class Scaler:
    """Maps (n, k) observables to standardised real coordinates and back.

    Args:
        names: the k observable names (their bijection from :data:`MAPS`).
        kinds: explicit bijections per observable (``identity``, ``log``,
            ``log1p``, ``atanh``, ``logit`` on [0, 1]), overriding the names.
    """

    def __init__(self, names: Sequence[str], kinds: Sequence[str] | None = None) -> None:
        self.names = tuple(names)
        self.kinds = (
            tuple(kinds)
            if kinds is not None
            else tuple(MAPS.get(n, "identity") for n in self.names)
        )
        if len(self.kinds) != len(self.names) or any(k not in _KINDS for k in self.kinds):
            raise ConfigError(
                f"kinds must be one of {', '.join(_KINDS)} per observable, got "
                f"{list(self.kinds)} for {list(self.names)}"
            )
        self.shift = torch.zeros(len(self.names), dtype=torch.float64, device="cpu")
        self.scale = torch.ones(len(self.names), dtype=torch.float64, device="cpu")

    def _check(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != len(self.names):
            raise InputError(
                f"expected (n, {len(self.names)}) values of {list(self.names)}, got "
                f"shape {tuple(x.shape)}"
            )
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"values of {list(self.names)} contain NaN or infinite entries")
        for j, kind in enumerate(self.kinds):
            col = x[:, j]
            if kind == "log" and bool((col <= 0).any()):
                raise InputError(f"{self.names[j]} must be > 0 (it is mapped by a log)")
            if kind == "log1p" and bool((col < 0).any()):
                raise InputError(f"{self.names[j]} must be >= 0 (it is mapped by log1p)")
            if kind == "atanh" and bool((col.abs() > 1).any()):
                raise InputError(f"{self.names[j]} must lie in [-1, 1] (it is mapped by atanh)")
            if kind == "logit" and bool(((col < 0) | (col > 1)).any()):
                raise InputError(f"{self.names[j]} must lie in [0, 1] (it is mapped by a logit)")
        return x.double()

    def _mapped(self, x: Tensor) -> Tensor:
        return torch.stack([_KINDS[k][0](x[:, j]) for j, k in enumerate(self.kinds)], -1)

    def fit(self, x: Tensor) -> Scaler:
        """Fit shift and scale to (n, k) training values; returns ``self``."""
        z = self._mapped(self._check(x))
        self.shift, self.scale = z.mean(0), z.std(0).clamp_min(1e-12)
        return self

    def forward(self, x: Tensor) -> Tensor:
        """(n, k) observables -> (n, k) standardised coordinates (float32)."""
        return ((self._mapped(self._check(x)) - self.shift) / self.scale).float()

    def inverse(self, z: Tensor) -> Tensor:
        """(n, k) standardised coordinates -> (n, k) observables (float64)."""
        u = z.double() * self.scale + self.shift
        return torch.stack([_KINDS[k][1](u[:, j]) for j, k in enumerate(self.kinds)], -1)

    def log_abs_det(self, x: Tensor) -> Tensor:
        """log |det d forward / dx| at (n, k) observables: (n,) (density of x = of z times it)."""
        x = self._check(x)
        terms = torch.stack([_KINDS[k][2](x[:, j]) for j, k in enumerate(self.kinds)], -1)
        return terms.sum(-1) - self.scale.log().sum()

    def state(self) -> dict[str, Any]:
        """JSON-ready state (names, kinds, shift, scale)."""
        return {
            "names": list(self.names),
            "kinds": list(self.kinds),
            "shift": self.shift.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Scaler:
        """Rebuild from :meth:`state`."""
        s = cls(state["names"], state["kinds"])
        s.shift = torch.tensor(state["shift"], dtype=torch.float64, device="cpu")
        s.scale = torch.tensor(state["scale"], dtype=torch.float64, device="cpu")
        if not (s.scale > 0).all() or not all(map(math.isfinite, state["shift"])):
            raise InputError("scaler state has a non-positive scale or a non-finite shift")
        return s
