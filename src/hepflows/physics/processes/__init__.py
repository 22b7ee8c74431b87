"""Physics processes: integrands on the unit cube with their channels and event records."""

from hepflows.physics.processes.drell_yan import (
    LEPTONS,
    DrellYan,
    DrellYanParameters,
    lepton_id,
    pythia_alpha_em,
    pythia_parameters,
)

__all__ = ["LEPTONS", "DrellYan", "DrellYanParameters", "lepton_id", "pythia_alpha_em",
           "pythia_parameters"]  # fmt: skip
