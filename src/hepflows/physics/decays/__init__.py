"""Three-body decays with differentiable amplitudes: Dalitz phase space from the unit
square, the pi(1800) -> 3pi isobar model (torch) and Lambda_c+ -> p K- pi+ (the LHCb
model via the optional ``polarimetry-lc2pkpi`` package and JAX)."""

from hepflows.physics.decays.dalitz import DalitzPlot, breakup_momentum, kallen
from hepflows.physics.decays.decay import ThreeBodyDecay
from hepflows.physics.decays.lambda_c import lc2pkpi
from hepflows.physics.decays.three_pion import Pi1800Parameters, Resonance, pi1800

__all__ = ["DalitzPlot", "Pi1800Parameters", "Resonance", "ThreeBodyDecay", "breakup_momentum",
           "kallen", "lc2pkpi", "pi1800"]  # fmt: skip
