"""The trainer interface of :class:`~hepflows.integrate.NeuralIntegrator`.

The integrator owns the flow, the channels, the estimates, unweighting and
checkpoints; *how* the flow learns is a :class:`Trainer` object. A new
training method is one small subclass:

* class attributes: ``name`` (registry key written into saved files),
  ``batch_rule`` (default batch: calls // divisor within [low, high]),
  ``gradient`` (whether it calls grad f), ``warm_start`` (whether a VEGAS
  grid may sit in front of the flow), ``multichannel`` (whether it handles
  several channels);
* dataclass fields: its options (``lr`` and ``batch_size`` at least), all
  JSON-able, so that ``type(trainer)(**trainer.options())`` rebuilds it;
* :meth:`Trainer.calls_per_iteration`, :meth:`Trainer.steps_per_iteration`,
  :meth:`Trainer.start` (a new plan: reset buffers) and
  :meth:`Trainer.iteration` (one iteration: draw with the integrator's public
  methods, hand each loss to ``engine.step``);
* :meth:`Trainer.state` / :meth:`Trainer.load_state` if it keeps state
  between iterations (a replay buffer, HMC step sizes).

Every trainer runs on the shared :class:`hepflows.training.Engine`, so
optimisers, schedules, callbacks and checkpoints work the same for all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor

from hepflows.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from hepflows.integrate.integrator import NeuralIntegrator
    from hepflows.training import Engine

#: Trainer classes by ``name`` (filled by subclassing), to rebuild saved integrators.
REGISTRY: dict[str, type[Trainer]] = {}


@dataclass
class TrainingHistory:
    """What happened during :meth:`NeuralIntegrator.train`.

    Attributes:
        loss: per iteration, the loss of its first optimiser step.
        integral: per iteration, the estimate of the integral from its fresh points.
        relative_error: per iteration, the estimated relative error of that estimate.
        calls: integrand calls of this training (density + gradient; VEGAS warm-up
            included).
        density_calls: density evaluations of this training.
        grad_calls: gradient evaluations of this training.
    """

    loss: list[float] = field(default_factory=list)
    integral: list[float] = field(default_factory=list)
    relative_error: list[float] = field(default_factory=list)
    calls: int = 0
    density_calls: int = 0
    grad_calls: int = 0


@dataclass
class Trainer:
    """Base class of the training strategies (see the module docstring).

    Attributes:
        lr: initial learning rate (cosine decay over the training by default).
        batch_size: points per iteration (``None``: :attr:`batch_rule`).
        clip: gradient-norm clip (``None``: none).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = "training"
    batch_rule: ClassVar[tuple[int, int, int]] = (500, 1000, 20_000)
    gradient: ClassVar[bool] = False
    warm_start: ClassVar[bool] = True
    multichannel: ClassVar[bool] = True

    lr: float = 5e-3
    batch_size: int | None = None
    clip: float | None = 10.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGISTRY[cls.name] = cls

    def __post_init__(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        b = self.batch_size
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise ConfigError(f"batch_size must be a positive int or None, got {b!r}")

    # ------------------------------------------------------------ description
    def options(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able): ``type(self)(**options())`` rebuilds it."""
        return {name: getattr(self, name) for name in trainer_fields(type(self))}

    def describe(self) -> dict[str, Any]:
        """``{"name": ..., "options": {...}}``, as written into saved integrators."""
        return {"name": self.name, "options": self.options()}

    # ---------------------------------------------------------------- planning
    def batch(self, calls: int) -> int:
        """Points per iteration for a budget of ``calls``."""
        if self.batch_size:
            return int(self.batch_size)
        divisor, low, high = self.batch_rule
        return int(min(max(calls // divisor, low), high))

    def calls_per_iteration(self, batch: int) -> int:
        """Integrand calls (density + gradient) one iteration of ``batch`` points costs."""
        return batch

    def steps_per_iteration(self) -> int:
        """Optimiser steps per iteration."""
        return 1

    def start(self, integ: NeuralIntegrator, batch: int) -> None:
        """A new plan starts: reset what depends on it (buffers)."""

    def new_history(self) -> TrainingHistory:
        """An empty history of this trainer's kind."""
        return TrainingHistory()

    # ---------------------------------------------------------------- training
    def iteration(
        self, integ: NeuralIntegrator, engine: Engine, batch: int, history: TrainingHistory
    ) -> dict[str, float]:
        """One iteration with ``batch`` points; returns figures for the progress bar."""
        raise NotImplementedError

    # ------------------------------------------------------------------- state
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Resumable state beyond the flow and the optimiser: tensors and JSON-able metadata."""
        return {}, {}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Restore :meth:`state` output (tensors without their ``trainer.`` prefix)."""


def make_trainer(spec: Trainer | str | dict[str, Any], **options: Any) -> Trainer:
    """A trainer from an object, a name or a saved description.

    Args:
        spec: a :class:`Trainer` (returned as is); a name: ``"fab"``,
            ``"pathwise-kl"``, or a loss of the importance trainer
            (``"variance"``, ``"kl"``, ``"rkl"``, ``"moment<p>"``); or the
            ``{"name", "options"}`` dict of :meth:`Trainer.describe`.
        options: constructor options for a name (``None`` values are left out).
    """
    options = {k: v for k, v in options.items() if v is not None}
    if isinstance(spec, Trainer):
        if options:
            raise ConfigError(
                f"options {sorted(options)} go to the trainer object itself, not to the "
                "integrator, when a Trainer is given"
            )
        return spec
    if isinstance(spec, dict):
        cls = REGISTRY.get(spec.get("name", ""))
        if cls is None:
            raise ConfigError(f"unknown trainer {spec.get('name')!r}: known {sorted(REGISTRY)}")
        return cls(**spec.get("options", {}))
    if not isinstance(spec, str):
        raise ConfigError(f"trainer must be a Trainer, a name or a description, got {spec!r}")
    if spec in REGISTRY:
        return REGISTRY[spec](**options)
    return REGISTRY["importance"](loss=spec, **options)


def trainer_fields(cls: type[Trainer]) -> tuple[str, ...]:
    """The option names of a trainer class, in declaration order."""
    return tuple(f.name for f in fields(cls) if f.init)


__all__ = ["REGISTRY", "Trainer", "TrainingHistory", "make_trainer", "trainer_fields"]
