"""Neural importance sampling: integrate functions on the unit cube, generate events.

Quick use::

    from hepflows.integrate import NeuralIntegrator, camel
    f = camel(8)                                   # exact value in f.exact
    integ = NeuralIntegrator(f, dims=8, seed=1)
    integ.train(calls=1_000_000)
    print(integ.integrate(calls=1_000_000).summary())
    events = integ.generate(10_000)                # unweighted events

How the flow learns is a trainer object (:mod:`hepflows.integrate.trainers`):
``NeuralIntegrator(f, d, trainer=FAB())`` trains it with Flow Annealed
Importance Sampling Bootstrap (HMC, AIS towards p^2/q, a prioritised replay
buffer) on differentiable densities and counts gradient calls apart
(:class:`FABIntegrator` is the same under its familiar name).

Densities on R^d (sampling targets such as the Many-Well of
:mod:`hepflows.integrate.targets`) take ``domain="real"``: a Gaussian base
instead of the uniform one; :mod:`hepflows.integrate.metrics` measures the
forward ESS on a target's exact samples.
"""

from hepflows.integrate.channels import Channel, ChannelWeights
from hepflows.integrate.integrands import (
    BUILTIN,
    IntegrandError,
    KnownIntegrand,
    builtin,
    camel,
    comb,
    evaluate,
    gaussian,
    polynomial,
    signed,
)
from hepflows.integrate.integrator import NeuralIntegrator
from hepflows.integrate.losses import channel_variance, forward_kl, moment, reverse_kl, variance
from hepflows.integrate.metrics import forward_ess, log_z_estimate, normalised_ess
from hepflows.integrate.presets import FABIntegrator, ReparamKLIntegrator
from hepflows.integrate.result import IntegrationResult
from hepflows.integrate.targets import GaussianMixture, ManyWell, Target, gmm40
from hepflows.integrate.trainers import (
    FAB,
    FABHistory,
    ImportanceTrainer,
    PathwiseKL,
    Trainer,
    TrainingHistory,
)
from hepflows.integrate.unweighting import choose_wmax, unweight
from hepflows.integrate.vegas_map import VegasMap, adapt_vegas
from hepflows.io.events import Events

__all__ = [
    "BUILTIN", "Events", "FABHistory", "FABIntegrator", "IntegrandError", "IntegrationResult",
    "KnownIntegrand", "ReparamKLIntegrator",
    "NeuralIntegrator", "TrainingHistory", "VegasMap", "adapt_vegas", "builtin", "camel", "comb",
    "choose_wmax", "evaluate", "forward_kl", "gaussian", "moment", "polynomial", "reverse_kl",
    "signed",
    "Channel", "ChannelWeights", "channel_variance", "unweight", "variance",
    "FAB", "ImportanceTrainer", "PathwiseKL", "Trainer",
    "GaussianMixture", "ManyWell", "Target", "gmm40", "forward_ess", "log_z_estimate",
    "normalised_ess",
]  # fmt: skip
