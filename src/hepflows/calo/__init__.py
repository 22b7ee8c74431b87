"""Calorimeter showers: geometry and shower files, a toy simulator, CaloFlow, evaluation."""

from hepflows.calo.geometry import Geometry, Layer
from hepflows.calo.showers import Showers

__all__ = ["Geometry", "Layer", "Showers"]
