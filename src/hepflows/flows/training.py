"""Maximum-likelihood training of a flow on samples, with a progress bar.

A deliberately small loop (Adam, cosine learning-rate decay, gradient
clipping) that the demos and tests share; pillars with their own losses
(importance sampling, distillation) write their own.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.flows.flow import Flow
from hepflows.progress import progress_bar


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
) -> list[float]:
    """Fit ``flow`` by minimising the negative log-likelihood.

    Args:
        flow: the flow to train (in place).
        data: (N, F) training set (mini-batches drawn at random), or a sampler
            ``data(n, generator) -> (n, F)`` drawing fresh batches.
        steps: optimiser steps.
        batch_size: samples per step.
        lr: initial Adam learning rate (cosine decay to 0).
        context: (N, C) context aligned with a tensor ``data``.
        seed: seed of the batch draws.
        progress: show a progress bar with the running loss.
        description: label of the progress bar.

    Returns:
        The loss (mean NLL per sample) of every step.
    """
    if steps < 1 or batch_size < 1:
        raise ConfigError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if context is not None and not isinstance(data, Tensor):
        raise ConfigError("context needs a data tensor whose rows it labels, not a sampler")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses: list[float] = []
    flow.train()
    with progress_bar(steps, description, enabled=progress) as bar:
        for _ in range(steps):
            if isinstance(data, Tensor):
                idx = torch.randint(len(data), (batch_size,), generator=g)
                x, c = data[idx], None if context is None else context[idx]
            else:
                x, c = data(batch_size, g), None
            loss = -flow.log_prob(x, c).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.advance(loss=losses[-1])
    flow.eval()
    return losses
