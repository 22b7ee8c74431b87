"""Calorimeter showers: geometry and shower files, a toy simulator, CaloFlow, layer-to-layer
flows (L2LFlow) for granular geometries, evaluation."""

from hepflows.calo.caloflow import CaloFlow
from hepflows.calo.classifier import ClassifierResult, classifier_test, gbdt_test
from hepflows.calo.evaluate import evaluate, plot_features
from hepflows.calo.features import (
    feature_matrix,
    feature_names,
    fpd,
    high_level_features,
    kpd,
    separation_power,
)
from hepflows.calo.geometry import Geometry, Layer
from hepflows.calo.l2lflow import L2LFlow
from hepflows.calo.showerfiles import read_showers, write_showers
from hepflows.calo.showers import Showers
from hepflows.calo.showerstream import ShowerWriter, count_showers, iter_showers
from hepflows.calo.simulator import Material, ToySimulator
from hepflows.calo.training import TrainingPlan, train

__all__ = [
    "CaloFlow",
    "ClassifierResult",
    "Geometry",
    "L2LFlow",
    "Layer",
    "Material",
    "ShowerWriter",
    "Showers",
    "ToySimulator",
    "TrainingPlan",
    "classifier_test",
    "count_showers",
    "evaluate",
    "feature_matrix",
    "feature_names",
    "gbdt_test",
    "fpd",
    "high_level_features",
    "iter_showers",
    "kpd",
    "plot_features",
    "read_showers",
    "separation_power",
    "train",
    "write_showers",
]
