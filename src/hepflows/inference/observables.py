"""Dilepton observables for unfolding: names, units, and their values from four-vectors.

======== ====== =============================================================
name     unit   meaning
======== ====== =============================================================
m_ll     GeV    invariant mass of the lepton pair
y_ll            rapidity of the pair
cos_cs          cos theta* of the lepton (l-) in the Collins-Soper frame
pt_ll    GeV    transverse momentum of the pair (0 at leading order)
pt_minus GeV    transverse momentum of the l- (the MEM's lepton variables)
pt_plus  GeV    transverse momentum of the l+
eta_minus       pseudorapidity of the l-
eta_plus        pseudorapidity of the l+
======== ====== =============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.physics.kinematics import (
    cos_theta_collins_soper,
    mass,
    pseudorapidity,
    pt,
    rapidity,
)

#: name -> (function of (lepton, antilepton) (n, 4) x2 -> (n,), unit).
OBSERVABLES: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], str]] = {
    "m_ll": (lambda a, b: mass(a + b), "GeV"),
    "y_ll": (lambda a, b: rapidity(a + b), ""),
    "cos_cs": (cos_theta_collins_soper, ""),
    "pt_ll": (lambda a, b: pt(a + b), "GeV"),
    "pt_minus": (lambda a, b: pt(a), "GeV"),
    "pt_plus": (lambda a, b: pt(b), "GeV"),
    "eta_minus": (lambda a, b: pseudorapidity(a), ""),
    "eta_plus": (lambda a, b: pseudorapidity(b), ""),
}
#: The leading-order set (no pair pT without a shower).
LO = ("m_ll", "y_ll", "cos_cs")


def check_observables(names: Sequence[str]) -> tuple[str, ...]:
    """The names as a tuple, or a :class:`ConfigError` naming the unknown ones and the choices."""
    names = tuple(names)
    bad = [n for n in names if n not in OBSERVABLES]
    if bad or not names or len(set(names)) != len(names):
        raise ConfigError(f"observables must be distinct names among {', '.join(OBSERVABLES)}, "
                          f"got {list(names)}")  # fmt: skip
    return names


def units(names: Sequence[str]) -> list[str]:
    """The unit of each observable ("" for dimensionless)."""
    return [OBSERVABLES[n][1] for n in check_observables(names)]


def observables(lepton: Tensor, antilepton: Tensor, names: Sequence[str] = LO) -> Tensor:
    """Observables of n events: (n, 4) x2 four-vectors (GeV) -> (n, len(names))."""
    names = check_observables(names)
    return torch.stack([OBSERVABLES[n][0](lepton, antilepton) for n in names], dim=-1)
