"""Neural importance sampling: integrate functions on the unit cube, generate events.

Quick use::

    from hepflows.integrate import NeuralIntegrator, camel
    f = camel(8)                                   # exact value in f.exact
    integ = NeuralIntegrator(f, dims=8, seed=1)
    integ.train(calls=1_000_000)
    print(integ.integrate(calls=1_000_000).summary())
    events = integ.generate(10_000)                # unweighted events

For differentiable densities, :class:`FABIntegrator` trains the same flow with
Flow Annealed Importance Sampling Bootstrap (HMC, AIS towards p^2/q, a
prioritised replay buffer) and counts gradient calls apart.
"""

from hepflows.integrate.channels import Channel, ChannelWeights
from hepflows.integrate.fab import FABHistory, FABIntegrator
from hepflows.integrate.integrands import (
    BUILTIN,
    IntegrandError,
    KnownIntegrand,
    builtin,
    camel,
    evaluate,
    gaussian,
    polynomial,
    signed,
)
from hepflows.integrate.losses import channel_variance, forward_kl, moment, reverse_kl, variance
from hepflows.integrate.nis import NeuralIntegrator, TrainingHistory
from hepflows.integrate.reparam import ReparamKLIntegrator
from hepflows.integrate.result import IntegrationResult
from hepflows.integrate.unweighting import choose_wmax, unweight
from hepflows.integrate.vegas_map import VegasMap, adapt_vegas
from hepflows.io.events import Events

__all__ = [
    "BUILTIN", "Events", "FABHistory", "FABIntegrator", "IntegrandError", "IntegrationResult",
    "KnownIntegrand", "ReparamKLIntegrator",
    "NeuralIntegrator", "TrainingHistory", "VegasMap", "adapt_vegas", "builtin", "camel",
    "choose_wmax", "evaluate", "forward_kl", "gaussian", "moment", "polynomial", "reverse_kl",
    "signed",
    "Channel", "ChannelWeights", "channel_variance", "unweight", "variance",
]  # fmt: skip
