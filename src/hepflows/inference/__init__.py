"""Inference: unfolding, and the tools that check posteriors (the pillar is being built).

* :mod:`~hepflows.inference.detector`: a toy lepton detector (smearing,
  efficiency, acceptance) with its transfer function in closed form;
* :mod:`~hepflows.inference.observables`: dilepton observables by name;
* :mod:`~hepflows.inference.calibration`: PIT calibration curves, TARP
  coverage, chi^2 of histograms.
"""

from hepflows.inference.calibration import (
    calibration_curve,
    calibration_deviation,
    histogram_chi2,
    pit,
    tarp,
)
from hepflows.inference.detector import Detected, DetectorSettings, ToyDetector
from hepflows.inference.observables import LO, OBSERVABLES, observables

__all__ = ["LO", "OBSERVABLES", "Detected", "DetectorSettings", "ToyDetector",
           "calibration_curve", "calibration_deviation", "histogram_chi2", "observables", "pit",
           "tarp"]  # fmt: skip
