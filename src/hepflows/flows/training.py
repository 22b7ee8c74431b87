"""Maximum-likelihood training of a flow on samples, on the shared training engine.

:func:`fit` draws mini-batches (from a tensor or a sampler) and hands the
negative log-likelihood to :class:`hepflows.training.Engine` (Adam, cosine
decay, clipping, callbacks by default; any optimiser or scheduler factory).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from hepflows.distributed import is_main, rank, rank_generator, world_size
from hepflows.errors import ConfigError
from hepflows.flows.flow import Flow
from hepflows.training import Callback, EarlyStopping, Engine, History, KeepBest
from hepflows.training.engine import OptimizerFactory, SchedulerFactory

#: Held-out events per log-density call when validating (bounds the memory).
CHUNK = 65536


def fit(
    flow: Flow,
    data: Tensor | Callable[[int, torch.Generator], Tensor],
    steps: int = 1000,
    batch_size: int = 512,
    lr: float = 1e-3,
    context: Tensor | None = None,
    seed: int = 0,
    progress: bool = False,
    description: str = "training",
    optimizer: OptimizerFactory | None = None,
    scheduler: str | SchedulerFactory | None = "cosine",
    clip: float | None = 10.0,
    callbacks: Sequence[Callback] = (),
    validation: tuple[Tensor, Tensor | None] | None = None,
    validate_every: int = 100,
    patience: int | None = None,
) -> list[float]:
    """Fit ``flow`` by minimising the negative log-likelihood.

    Training runs where the flow is (``flow.to("cuda")`` first for a GPU): each
    batch moves there, so the data may stay on the CPU.

    Args:
        flow: the flow to train (in place).
        data: (N, F) training set (mini-batches drawn at random), or a sampler
            ``data(n, generator) -> (n, F)`` drawing fresh batches.
        steps: optimiser steps.
        batch_size: samples per step.
        lr: initial learning rate (cosine decay to 0 by default).
        context: (N, C) context aligned with a tensor ``data``.
        seed: seed of the batch draws.
        progress: show a progress bar with the running loss.
        description: label of the progress bar.
        optimizer: ``optimizer(parameters, lr)`` factory (default Adam).
        scheduler: ``"cosine"``, ``None`` or a torch scheduler factory
            (see :class:`~hepflows.training.Engine`).
        clip: gradient-norm clip (``None``: none).
        callbacks: extra :mod:`hepflows.training.callbacks` (logging, early stop...).
        validation: held-out ``(x, context)`` ((M, F) and (M, C) or ``None``):
            its mean NLL is the epoch figure ``"val"`` every ``validate_every``
            steps, and the flow ends with the weights of the best one
            (:class:`~hepflows.training.KeepBest`): the guard against fitting
            the training set's noise.
        validate_every: steps between validations.
        patience: with ``validation``, stop after this many validations
            without improvement (``None``: run all ``steps``).

    Returns:
        The loss (mean NLL per sample) of every step. The validation figures
        reach any :class:`~hepflows.training.History` in ``callbacks`` (``epochs``).
    """
    if steps < 1 or batch_size < 1:
        raise ConfigError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if context is not None and not isinstance(data, Tensor):
        raise ConfigError("context needs a data tensor whose rows it labels, not a sampler")
    if validate_every < 1 or (patience is not None and patience < 1):
        raise ConfigError(f"validate_every and patience must be >= 1, got {validate_every}, "
                          f"{patience}")  # fmt: skip
    # Under torchrun every rank draws the same global batch and keeps its slice of it
    # (a sampler draws its own share from a per-rank stream); the engine averages the
    # gradients, so a step equals one on the global batch in a single process.
    world, me = world_size(), rank()
    if batch_size % world:
        raise ConfigError(f"batch_size {batch_size} must be a multiple of the {world} ranks")
    g = torch.Generator().manual_seed(seed) if world == 1 else rank_generator(seed, me)
    g_index = torch.Generator().manual_seed(seed)
    dev = next(iter(flow.parameters())).device

    def placed(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(dev, non_blocking=True)

    engine = Engine(flow.parameters(), lr=lr, total_steps=steps, optimizer=optimizer,
                    scheduler=scheduler, clip=clip, name=description)  # fmt: skip
    history = History()

    def iteration(_: int) -> dict[str, float]:
        if isinstance(data, Tensor):
            idx = torch.randint(len(data), (batch_size,), generator=g_index,
                                device="cpu")[me::world]  # fmt: skip
            x, c = data[idx], None if context is None else context[idx]
        else:
            x, c = data(batch_size // world, g), None
        return {"loss": engine.step(-flow.log_prob(placed(x), placed(c)).mean())}

    extra: list[Callback] = []
    end_of_epoch = None
    if validation is not None:
        x_val, c_val = validation
        if len(x_val) == 0 or (c_val is not None and len(c_val) != len(x_val)):
            raise ConfigError("validation needs (x, context) with the same, non-zero length")

        def end_of_epoch(_: int) -> dict[str, float]:
            flow.eval()
            with torch.no_grad():
                total = sum(
                    float(-flow.log_prob(placed(x_val[i : i + CHUNK]),
                                         None if c_val is None
                                         else placed(c_val[i : i + CHUNK])).sum())
                    for i in range(0, len(x_val), CHUNK)
                )  # fmt: skip
            flow.train()
            return {"val": total / len(x_val)}

        extra.append(KeepBest(flow))
        if patience is not None:
            extra.append(EarlyStopping("val", patience))
    flow.train()
    engine.run(iteration, steps, callbacks=[history, *extra, *callbacks],
               progress=description if progress and is_main() else None,
               per_epoch=validate_every if validation is not None else None,
               end_of_epoch=end_of_epoch)  # fmt: skip
    flow.eval()
    return history.column("loss")
