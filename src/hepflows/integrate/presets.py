"""Integrators with another trainer under the names users know: FAB and the pathwise reverse KL.

Each is a :class:`~hepflows.integrate.NeuralIntegrator` built with a trainer
object and nothing else: ``FABIntegrator(f, 2, seed=1, intermediate=2)`` is
``NeuralIntegrator(f, 2, seed=1, trainer=FAB(intermediate=2))``. Options are
split by name between the trainer and the integrator (flow architecture,
``drop_nonfinite``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from hepflows.errors import CheckpointError
from hepflows.integrate.integrands import Integrand
from hepflows.integrate.integrator import NeuralIntegrator
from hepflows.integrate.replay import PrioritisedReplayBuffer
from hepflows.integrate.trainers import FAB, PathwiseKL, Trainer, trainer_fields


class _Preset(NeuralIntegrator):
    """A NeuralIntegrator whose trainer class is fixed (see the module docstring)."""

    TRAINER: ClassVar[type[Trainer]]

    def __init__(self, f: Integrand, dims: int, seed: int | None = None, **options: Any) -> None:
        keys = trainer_fields(self.TRAINER)
        trainer = self.TRAINER(**{k: v for k, v in options.items() if k in keys})
        rest = {k: v for k, v in options.items() if k not in keys}
        super().__init__(f, dims, seed=seed, trainer=trainer, **rest)

    @classmethod
    def load(cls, path: Any, f: Integrand, channels: Any = None) -> NeuralIntegrator:
        """Rebuild a saved integrator of this kind (``NeuralIntegrator.load`` takes any)."""
        integ = super().load(path, f, channels)
        if not isinstance(integ.trainer, cls.TRAINER):
            raise CheckpointError(
                f"{path} holds a NeuralIntegrator trained by {integ.trainer.name!r}, not "
                f"{cls.TRAINER.name!r}: use NeuralIntegrator.load"
            )
        return integ


class FABIntegrator(_Preset):
    """``NeuralIntegrator`` with the :class:`~hepflows.integrate.trainers.FAB` trainer.

    Args:
        f: batched non-negative integrand on [0, 1]^d, (n, d) float64 -> (n,),
            differentiable in torch (its gradient drives HMC).
        dims: d.
        seed: seed of the flow and of every random draw.
        options: the :class:`FAB` options (``lr``, ``batch_size``,
            ``intermediate``, ``leapfrog``, ``step_size``, ``target_accept``,
            ``replay_steps``, ``buffer_batches``, ``w_adjust_clip``) and the
            integrator's (``transforms``, ``bins``, ``hidden``, ``drop_nonfinite``).

    Example:
        >>> from hepflows.physics.decays import pi1800
        >>> fab = FABIntegrator(pi1800(), 2, seed=1)
        >>> fab.train(calls=100_000)
        >>> print(fab.integrate(calls=100_000).summary())
    """

    TRAINER = FAB

    def calls_per_chain(self) -> int:
        """Calls one AIS chain costs (see :meth:`FAB.calls_per_chain`)."""
        return self.trainer.calls_per_chain()

    @property
    def step_sizes(self) -> list[float]:
        """The HMC step sizes (adapted during training)."""
        return self.trainer.step_sizes

    @property
    def replay(self) -> PrioritisedReplayBuffer | None:
        """The prioritised replay buffer."""
        return self.trainer.replay


class ReparamKLIntegrator(_Preset):
    """``NeuralIntegrator`` with the :class:`~hepflows.integrate.trainers.PathwiseKL` trainer.

    Args:
        f: batched non-negative integrand on [0, 1]^d, differentiable in torch.
        dims: d.
        seed: seed of the flow and of every draw.
        options: ``lr``, ``batch_size`` (points per step, default calls / 1000
            in [128, 2048]) and the integrator's (``transforms``, ``bins``, ``hidden``).
    """

    TRAINER = PathwiseKL
