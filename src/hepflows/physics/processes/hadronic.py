"""Pieces every hadron-collider process shares: parton densities and alpha_s at an event's
scale; the (tau, y) map of the two partons' momentum fractions and two-body decays
(:mod:`hepflows.physics.phasespace`, re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from hepflows.physics.phasespace import tau_y_map, two_body

__all__ = ["parton_densities", "tau_y_map", "two_body"]


def parton_densities(pdf: object, pids: Sequence[int], x: Tensor, mu2: Tensor
                     ) -> dict[int, Tensor]:
    """f_i(x, mu^2) = xf / x per parton id, {pid: (N,)}, clipped at 0.

    The fits' grids dip below zero at large x for some flavours (NNPDF: ~1e-7 of a
    dijet sigma); clipped so that an integrand is a density (unweighting needs it).
    """
    values = (pdf.xfxQ2(list(pids), x, mu2) / x).clamp_min(0)
    return dict(zip(pids, values, strict=True))
