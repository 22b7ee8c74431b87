"""Physics processes: integrands on the unit cube with their channels and event records."""

from hepflows.physics.processes.drell_yan import (
    LEPTONS,
    DrellYan,
    DrellYanParameters,
    lepton_id,
    pythia_alpha_em,
    pythia_parameters,
)
from hepflows.physics.processes.drell_yan_jets import (
    DrellYanJets,
    DrellYanJetsParameters,
    lepton_jet_subprocesses,
)
from hepflows.physics.processes.multijet import (
    MultiJet,
    MultiJetParameters,
    SubprocessClass,
    jet_subprocesses,
)
from hepflows.physics.processes.ttbar import (
    EEToTTbarWWbb,
    TTbarParameters,
    top_width,
    ttbar_cross_section,
)

__all__ = ["LEPTONS", "DrellYan", "DrellYanJets", "DrellYanJetsParameters", "DrellYanParameters",
           "EEToTTbarWWbb", "MultiJet",
           "MultiJetParameters", "SubprocessClass", "TTbarParameters", "jet_subprocesses",
           "lepton_id", "lepton_jet_subprocesses", "pythia_alpha_em", "pythia_parameters",
           "top_width", "ttbar_cross_section"]  # fmt: skip
