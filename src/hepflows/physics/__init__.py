"""Particle physics for hepflows: parton distribution functions read from LHAPDF6 grids
(the sets Pythia 8 ships, or any set in ``LHAPDF_DATA_PATH``) and interpolated in torch
as LHAPDF does, with alpha_s; physics processes as integrands on the unit cube (Drell-Yan,
with Pythia 8's conventions for comparisons; e+ e- -> t tbar -> W+ b W- bbar from helicity
amplitudes, :mod:`hepflows.physics.helicity`, on the flat phase space of
:mod:`hepflows.physics.rambo`); and three-body decays with differentiable amplitudes
(:mod:`hepflows.physics.decays`: Lambda_c+ -> p K- pi+, pi(1800) -> 3 pi) for
gradient-aware samplers such as FAB."""

from hepflows.physics.pdf import KNOWN_SETS, PDF, find_pdf_member, load_pdf
from hepflows.physics.processes import (
    DrellYan,
    DrellYanParameters,
    EEToTTbarWWbb,
    TTbarParameters,
    pythia_alpha_em,
    pythia_parameters,
)

__all__ = [
    "KNOWN_SETS",
    "PDF",
    "DrellYan",
    "DrellYanParameters",
    "EEToTTbarWWbb",
    "TTbarParameters",
    "find_pdf_member",
    "load_pdf",
    "pythia_alpha_em",
    "pythia_parameters",
]
