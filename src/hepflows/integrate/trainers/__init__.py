"""Training strategies of :class:`~hepflows.integrate.NeuralIntegrator`, one module each.

========================  ====================================================
:class:`ImportanceTrainer` importance-weighted losses (variance, KL, reverse KL,
                           moment<p>) on fresh and buffered samples (default)
:class:`FAB`               flow annealed importance sampling bootstrap (grad f)
:class:`PathwiseKL`        reverse KL through the flow's samples (grad f)
========================  ====================================================

Write your own against :class:`Trainer` (see :mod:`.base`).
"""

from hepflows.integrate.trainers.base import (
    REGISTRY,
    Trainer,
    TrainingHistory,
    make_trainer,
    trainer_fields,
)
from hepflows.integrate.trainers.fab import FAB, FABHistory, normalised_ess
from hepflows.integrate.trainers.importance import ImportanceTrainer
from hepflows.integrate.trainers.pathwise import PathwiseKL

__all__ = [
    "FAB", "FABHistory", "REGISTRY", "ImportanceTrainer", "PathwiseKL", "Trainer",
    "TrainingHistory", "make_trainer", "normalised_ess", "trainer_fields",
]  # fmt: skip
