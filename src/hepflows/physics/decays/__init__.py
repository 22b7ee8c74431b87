"""Three-body decays with differentiable amplitudes: Dalitz phase space from the unit
square, the pi(1800) -> 3pi isobar model (torch) and Lambda_c+ -> p K- pi+ (the LHCb
model via the optional ``polarimetry-lc2pkpi`` package and JAX)."""

from hepflows.physics.decays.dalitz import DalitzPlot, breakup_momentum, kallen
from hepflows.physics.decays.decay import ThreeBodyDecay
from hepflows.physics.decays.lambda_c import lc2pkpi
from hepflows.physics.decays.three_pion import Pi1800Parameters, Resonance, pi1800

#: The decays of ``hepflows generate decay``: name -> factory of the decay density.
DECAYS = {"lambda-c": lc2pkpi, "pi1800": pi1800}


def get_decay(name: str) -> ThreeBodyDecay:
    """The decay density named ``name`` in :data:`DECAYS`, built with its defaults.

    Raises:
        ConfigError: an unknown name; the message lists the known ones.
    """
    from hepflows.errors import ConfigError

    if name not in DECAYS:
        raise ConfigError(f"unknown decay {name!r}: choose one of {', '.join(DECAYS)}")
    return DECAYS[name]()


__all__ = ["DECAYS", "DalitzPlot", "Pi1800Parameters", "Resonance", "ThreeBodyDecay",
           "breakup_momentum", "get_decay", "kallen", "lc2pkpi", "pi1800"]  # fmt: skip
