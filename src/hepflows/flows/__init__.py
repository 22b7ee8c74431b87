"""The flow core: splines, coupling and autoregressive flows, convolutional coupling flows on
cylindrical grids, conditional flows, Bayesian layers.

Quick use::

    from hepflows.flows import CouplingFlow
    flow = CouplingFlow(features=2, transforms=6, bins=8, hidden=(128, 128))
    loss = -flow.log_prob(x).mean()          # x: (N, 2)
    samples = flow.sample(10_000)            # (10000, 2)
"""

from hepflows.flows.autoregressive import InverseAutoregressive, MaskedAutoregressive
from hepflows.flows.bayesian import VBLinear
from hepflows.flows.conv import ConvCouplingFlow, GridCoupling
from hepflows.flows.coupling import Coupling
from hepflows.flows.distill import DistillationLoss, distillation_loss
from hepflows.flows.distributions import BaseDistribution, StandardNormal, UnitUniform
from hepflows.flows.elementwise import AffineMap, ElementwiseMap, SplineMap
from hepflows.flows.flow import Flow
from hepflows.flows.flows import IAF, MAF, ConfiguredFlow, CouplingFlow
from hepflows.flows.nets import MADE, MLP, MaskedLinear
from hepflows.flows.saving import load, save
from hepflows.flows.transforms import Compose, Inverse, Logit, Permutation, Sigmoid, Transform

__all__ = [
    "IAF", "MADE", "MAF", "MLP", "AffineMap", "BaseDistribution", "Compose", "ConfiguredFlow",
    "ConvCouplingFlow", "Coupling", "CouplingFlow", "GridCoupling", "DistillationLoss",
    "ElementwiseMap", "Flow", "Inverse", "InverseAutoregressive", "Logit",
    "MaskedAutoregressive", "MaskedLinear", "Permutation", "Sigmoid", "SplineMap",
    "StandardNormal", "Transform", "UnitUniform", "VBLinear", "distillation_loss", "load",
    "save",
]  # fmt: skip
