"""Calorimeter showers: geometry and shower files, a toy simulator, CaloFlow, evaluation."""

from hepflows.calo.geometry import Geometry, Layer

__all__ = ["Geometry", "Layer"]
