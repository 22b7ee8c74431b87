"""A resonant parametrisation of e+e- -> t tbar -> W+ b W- bbar phase space (reference integrals).

In the flat variables of :class:`~hepflows.physics.processes.ttbar.EEToTTbarWWbb`
the two top resonances are narrow, curved ridges, and VEGAS's separable grid
cannot follow them: 10 x 10^5 evaluations give a result 8 standard errors low
(tests/physics/test_ttbar.py). Here the eight variables y in [0, 1]^8 are the
two top virtualities (Breit-Wigner maps, the second bounded by what the first
leaves), the production angles and both decays' angles,

    d Phi_4 = ds_t / (2 pi) ds_tbar / (2 pi) Phi_2(s; m_t*, m_tbar*) Phi_2(s_t) Phi_2(s_tbar),

in which the same density is nearly flat: VEGAS integrates it to 0.05 % with
3 * 10^5 evaluations. The benchmark (benchmarks/fab_highdim.py) takes its
reference cross-section from here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hepflows.errors import InputError
from hepflows.physics.phasespace import two_body
from hepflows.physics.processes.ttbar import GEV2_TO_PB, EEToTTbarWWbb

__all__ = ["resonant_density", "resonant_final_state"]


def breit_wigner_s(
    r: Tensor, mass: float, width: float, lo: Tensor, hi: Tensor
) -> tuple[Tensor, Tensor]:
    """s = M^2 + M G tan(a0 + r (a1 - a0)) on [lo, hi] from (n,) r in [0, 1], and ds/dr (n,)."""
    mg = mass * width
    a0, a1 = torch.atan((lo - mass**2) / mg), torch.atan((hi - mass**2) / mg)
    s = mass**2 + mg * torch.tan(a0 + r * (a1 - a0))
    return s, (a1 - a0) * ((s - mass**2) ** 2 + mg**2) / mg


def resonant_final_state(y: Tensor, target: EEToTTbarWWbb) -> tuple[Tensor, Tensor]:
    """y (n, 8) in [0, 1]^8 -> final-state momenta (n, 4, 4) (W+, b, W-, bbar) and
    d Phi_4 / dy (n,) in GeV^4 (the convention of :mod:`hepflows.physics.rambo`)."""
    if y.ndim != 2 or y.shape[1] != 8:
        raise InputError(f"y must be (n, 8), got {tuple(y.shape)}")
    y = y.to(torch.float64)
    par = target.params
    mw, mb, mt, wt, rs = target.mw, par.mb, par.mt, par.wt, par.sqrt_s
    lo = torch.full_like(y[:, 0], (mw + mb) ** 2)
    st, jt = breit_wigner_s(y[:, 0], mt, wt, lo, torch.full_like(lo, (rs - mw - mb) ** 2))
    stb, jtb = breit_wigner_s(y[:, 1], mt, wt, lo, (rs - torch.sqrt(st)) ** 2)
    beams = torch.zeros_like(y[:, :4])
    beams[:, 0] = rs
    pt, ptb, phi_tt = two_body(beams, st.sqrt(), stb.sqrt(), y[:, 2], y[:, 3])
    wp, b, phi_t = two_body(pt, mw, mb, y[:, 4], y[:, 5])
    wm, bb, phi_tb = two_body(ptb, mw, mb, y[:, 6], y[:, 7])
    jac = jt * jtb / (2 * math.pi) ** 2 * phi_tt * phi_t * phi_tb  # the Phi_2 of each decay
    return torch.stack((wp, b, wm, bb), dim=1), jac


def resonant_density(target: EEToTTbarWWbb, y: Tensor) -> Tensor:
    """The cross-section density in the resonant variables, (n, 8) -> (n,) pb: its integral
    over [0, 1]^8 is the same sigma as that of ``target`` over its flat variables."""
    final, jac = resonant_final_state(y, target)
    em, ep = target.beams(len(y), y.device)
    p = torch.cat((em[:, None], ep[:, None], final), dim=1)
    s = target.params.sqrt_s ** 2
    return target.matrix_element_squared(p) * jac / (2 * s) * GEV2_TO_PB
