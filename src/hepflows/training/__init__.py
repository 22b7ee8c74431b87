"""The one training engine every trainer in hepflows runs on (below every pillar).

:class:`Engine` owns the optimiser (Adam by default, any factory accepted), the
learning-rate schedule (cosine by default, any torch scheduler accepted),
gradient clipping, callbacks and resumable state; flow fitting, every
integrator trainer and the CaloFlow stages are iterations handed to it.
"""

from hepflows.training.callbacks import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    History,
    KeepBest,
    ProgressCallback,
)
from hepflows.training.engine import Engine, adam, cosine

__all__ = [
    "CSVLogger", "Callback", "Checkpoint", "EarlyStopping", "Engine", "History", "KeepBest",
    "ProgressCallback", "adam", "cosine",
]  # fmt: skip
