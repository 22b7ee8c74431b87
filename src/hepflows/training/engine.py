"""The training loop every trainer in hepflows runs on.

An :class:`Engine` owns the optimiser, the learning-rate schedule, gradient
clipping, the callbacks and the loop counters. A trainer gives it a function
that performs one *iteration* (draw data, compute one or more losses and hand
each to :meth:`Engine.step`); the engine repeats it, calls the callbacks
(progress, logging, checkpoints, early stopping) and can save and restore its
whole state (optimiser moments, schedule position, counters) as tensors, so a
run that is cut off resumes where it stopped.

Example::

    from hepflows.training import Engine, History

    engine = Engine(flow.parameters(), lr=1e-3, total_steps=1000)
    log = History()

    def iteration(i: int) -> dict[str, float]:
        x = data[torch.randint(len(data), (512,), generator=g)]     # (512, F)
        return {"loss": engine.step(-flow.log_prob(x).mean())}

    engine.run(iteration, 1000, callbacks=[log], progress="fit")

Defaults are those every trainer in hepflows used before the engine: Adam, a
cosine decay to ``floor * lr`` over ``total_steps`` optimiser steps, and the
gradient norm clipped to 10. ``optimizer`` and ``scheduler`` accept factories
for anything torch offers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from hepflows.distributed import average_gradients, broadcast_tensors, is_distributed
from hepflows.errors import ConfigError, InputError
from hepflows.training.callbacks import Callback, ProgressCallback
from hepflows.training.state import load_optimizer_tensors, optimizer_tensors

#: A factory of optimisers: ``optimizer(parameters, lr)``.
OptimizerFactory = Callable[[list[torch.nn.Parameter], float], torch.optim.Optimizer]
#: A factory of torch schedulers: ``scheduler(optimizer, total_steps)``.
SchedulerFactory = Callable[[torch.optim.Optimizer, int], Any]


def adam(parameters: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """The default optimiser: ``torch.optim.Adam(parameters, lr)``."""
    return torch.optim.Adam(parameters, lr=lr)


def cosine(step: int, total: int, floor: float = 0.0) -> float:
    """Cosine decay factor at ``step`` of ``total``: from 1 to ``floor`` (then flat)."""
    t = min(max(step, 0), total) / max(total, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


class Engine:
    """Optimiser, schedule, clipping, callbacks and counters of one training.

    Args:
        parameters: the parameters to optimise.
        lr: initial learning rate.
        total_steps: optimiser steps the schedule spans.
        optimizer: ``optimizer(parameters, lr)`` factory (default :func:`adam`).
        scheduler: ``"cosine"`` (default: decay to ``floor * lr``, computed
            from the step counter so that a resumed run continues it),
            ``None`` (constant), or a factory ``scheduler(optimizer,
            total_steps)`` of a torch scheduler, stepped after every
            optimiser step.
        floor: final learning rate over ``lr`` of the cosine schedule.
        period: steps per schedule tick: the cosine rate changes every
            ``period`` steps (e.g. the steps of an epoch: a per-epoch decay).
        clip: clip the gradient norm to this value (``None``: no clipping).
        nonfinite: what a NaN/inf loss or gradient norm does: ``"skip"`` the
            step (counted in :attr:`skipped`) or ``"raise"`` an
            :class:`~hepflows.InputError`.
        name: what is trained, for messages.
    """

    def __init__(
        self,
        parameters: Iterable[torch.nn.Parameter],
        lr: float,
        total_steps: int,
        optimizer: OptimizerFactory | None = None,
        scheduler: str | SchedulerFactory | None = "cosine",
        floor: float = 0.0,
        clip: float | None = 10.0,
        nonfinite: str = "skip",
        name: str = "training",
        period: int = 1,
    ) -> None:
        self.parameters = [p for p in parameters if p.requires_grad]
        if not self.parameters:
            raise ConfigError(f"{name}: nothing to train (no parameters with requires_grad)")
        if not (lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"{name}: the learning rate must be a positive number, got {lr}")
        if total_steps < 1:
            raise ConfigError(f"{name}: total_steps must be >= 1, got {total_steps}")
        if nonfinite not in ("skip", "raise"):
            raise ConfigError(f"nonfinite must be 'skip' or 'raise', got {nonfinite!r}")
        if clip is not None and not clip > 0:
            raise ConfigError(f"clip must be > 0 or None, got {clip}")
        self.lr, self.total_steps, self.floor = float(lr), int(total_steps), float(floor)
        if period < 1:
            raise ConfigError(f"period must be >= 1, got {period}")
        self.clip, self.nonfinite, self.name, self.period = clip, nonfinite, name, int(period)
        #: Under ``torchrun`` (a group of > 1 ranks): every rank starts from rank 0's
        #: parameters and each step averages the gradients over ranks, so each rank's
        #: loss is its share of the global batch.
        self.distributed = is_distributed()
        if self.distributed:
            broadcast_tensors(self.parameters)
        self.optimizer = (optimizer or adam)(self.parameters, self.lr)
        self.schedule: str | None
        self.torch_scheduler: Any = None
        if scheduler == "cosine" or scheduler is None:
            self.schedule = scheduler
        elif callable(scheduler):
            self.schedule = "torch"
            self.torch_scheduler = scheduler(self.optimizer, self.total_steps)
        else:
            raise ConfigError(
                f"scheduler must be 'cosine', None or a factory (optimizer, total_steps) -> "
                f"scheduler, got {scheduler!r}"
            )
        #: Optimiser steps attempted (the schedule's clock), skipped ones included.
        self.step_count = 0
        #: Steps skipped because the loss or the gradient norm was not finite.
        self.skipped = 0
        #: Iterations completed by :meth:`run`.
        self.iteration = 0
        #: Set to True (e.g. by a callback) to end :meth:`run` after this iteration.
        self.stop = False

    # ------------------------------------------------------------------ steps
    def learning_rate(self) -> float:
        """The learning rate of the next step."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, loss: Tensor) -> float:
        """One optimiser step on a scalar ``loss`` (with gradient); returns its value.

        Zeroes the gradients, back-propagates, clips, sets the scheduled
        learning rate and steps. A NaN/inf loss or gradient norm skips the
        step (or raises, with ``nonfinite="raise"``).
        """
        value = float(loss.detach())
        self.optimizer.zero_grad()
        if self.schedule == "cosine":
            tick, ticks = self.step_count // self.period, max(self.total_steps // self.period, 1)
            lr = self.lr * cosine(tick, ticks, self.floor)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        self.step_count += 1
        if not math.isfinite(value):
            if self.distributed:  # the other ranks wait for this rank's vote
                average_gradients(self.parameters, skip=True)
            return self._skip(f"the loss is {value}")
        loss.backward()
        if self.distributed and average_gradients(self.parameters):
            return self._skip("the loss of another rank is not finite", value)
        if self.clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.clip)
            if not bool(torch.isfinite(norm)):
                return self._skip(f"the gradient norm is {float(norm)}", value)
        self.optimizer.step()
        if self.torch_scheduler is not None:
            self.torch_scheduler.step()
        return value

    def _skip(self, why: str, value: float = math.nan) -> float:
        self.optimizer.zero_grad()
        if self.nonfinite == "raise":
            raise InputError(
                f"{self.name}: {why} at step {self.step_count}: lower the learning rate "
                "(a checkpoint, if written, holds the last good state)"
            )
        self.skipped += 1
        return value

    # ------------------------------------------------------------------- loop
    def run(
        self,
        iteration: Callable[[int], dict[str, float] | None],
        iterations: int,
        callbacks: Sequence[Callback] = (),
        progress: str | None = None,
        per_epoch: int | None = None,
        end_of_epoch: Callable[[int], dict[str, float]] | None = None,
    ) -> None:
        """Run ``iteration(i)`` for i from :attr:`iteration` up to ``iterations``.

        Args:
            iteration: performs iteration i (calling :meth:`step` as often as it
                wants) and returns figures to log (e.g. ``{"loss": ...}``) or None.
            iterations: the last iteration (exclusive); a resumed engine starts
                at its :attr:`iteration`.
            callbacks: :class:`~hepflows.training.callbacks.Callback` objects.
            progress: a description to show a progress bar with (``None``: none;
                plain lines when the output is not a terminal).
            per_epoch: iterations per epoch; with ``end_of_epoch(epoch)`` (whose
                figures, e.g. a validation loss, go to the callbacks'
                ``on_epoch``) called after each.
            end_of_epoch: see ``per_epoch``.
        """
        cbs = list(callbacks)
        if progress is not None:
            cbs.insert(0, ProgressCallback(progress, iterations))
        self.stop = False
        for cb in cbs:
            cb.on_start(self)
        try:
            while self.iteration < iterations and not self.stop:
                logs = iteration(self.iteration) or {}
                self.iteration += 1
                for cb in cbs:
                    cb.on_iteration(self, logs)
                if per_epoch and self.iteration % per_epoch == 0:
                    epoch = self.iteration // per_epoch - 1
                    figures = end_of_epoch(epoch) if end_of_epoch is not None else {}
                    for cb in cbs:
                        cb.on_epoch(self, epoch, figures)
        finally:
            for cb in cbs:
                cb.on_end(self)

    # ------------------------------------------------------------------ state
    def state(self, prefix: str = "engine.") -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The resumable state: optimiser tensors and JSON-able counters."""
        tensors, opt_meta = optimizer_tensors(self.optimizer, prefix=f"{prefix}opt.")
        meta: dict[str, Any] = {
            "opt": opt_meta, "step_count": self.step_count, "skipped": self.skipped,
            "iteration": self.iteration,
        }  # fmt: skip
        if self.torch_scheduler is not None:
            try:
                sched = self.torch_scheduler.state_dict()
                json.dumps(sched)
                meta["scheduler"] = sched
            except (TypeError, ValueError, AttributeError):
                meta["scheduler"] = None  # not JSON-able: the resumed run restarts its clock
        return tensors, meta

    def load_state(
        self, tensors: dict[str, Tensor], meta: dict[str, Any], prefix: str = "engine."
    ) -> None:
        """Restore :meth:`state` output (in place)."""
        if meta.get("opt", {}).get("n_state"):
            load_optimizer_tensors(self.optimizer, tensors, meta["opt"], prefix=f"{prefix}opt.")
        self.step_count = int(meta.get("step_count", 0))
        self.skipped = int(meta.get("skipped", 0))
        self.iteration = int(meta.get("iteration", 0))
        if self.torch_scheduler is not None and meta.get("scheduler"):
            self.torch_scheduler.load_state_dict(meta["scheduler"])
