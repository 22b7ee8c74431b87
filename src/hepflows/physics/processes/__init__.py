"""Physics processes: integrands on the unit cube with their channels and event records."""

from hepflows.physics.processes.drell_yan import (
    DrellYan,
    DrellYanParameters,
    pythia_alpha_em,
    pythia_parameters,
)

__all__ = ["DrellYan", "DrellYanParameters", "pythia_alpha_em", "pythia_parameters"]
