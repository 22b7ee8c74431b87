"""Supervised fitting of a network on (x, y) pairs, on the engine: epochs, holdout, best weights.

Classifiers and regressions (the unfolding's efficiency, the calorimeter's
energy regression) share this loop: shuffled mini-batches per epoch, the
held-out loss after every epoch, the weights of the best one kept
(:class:`~hepflows.training.KeepBest`) and a stop after ``patience`` epochs
without improvement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hepflows.errors import ConfigError
from hepflows.progress import progress_bar
from hepflows.training.callbacks import EarlyStopping, KeepBest
from hepflows.training.engine import Engine


@dataclass
class Fitted:
    """What :func:`fit_supervised` did: epochs run and the best held-out loss."""

    epochs_run: int
    val_loss: float


def fit_supervised(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    epochs: int = 50,
    batch_size: int = 2048,
    lr: float = 1e-3,
    patience: int = 5,
    val_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = False,
    name: str = "training",
) -> Fitted:
    """Minimise ``loss_fn(net(x_batch), y_batch)`` over (n, ...) x and (n, ...) y.

    A seeded ``val_fraction`` of the pairs is held out; the network ends with
    the weights of the lowest held-out loss; training stops after ``patience``
    epochs without improvement (or at ``epochs``). Adam with cosine decay.
    """
    if not 0 < val_fraction < 1 or min(epochs, batch_size, patience) < 1:
        raise ConfigError("need 0 < val_fraction < 1 and epochs, batch_size, patience >= 1")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    n_val = max(1, int(val_fraction * len(x)))
    val, train = perm[:n_val], perm[n_val:]
    steps = math.ceil(len(train) / batch_size)
    engine = Engine(net.parameters(), lr=lr, total_steps=epochs * steps, name=name)
    keep = KeepBest(net)
    order = train

    def iteration(i: int) -> None:
        nonlocal order
        if i % steps == 0:
            order = train[torch.randperm(len(train), generator=g)]
        idx = order[(i % steps) * batch_size : (i % steps + 1) * batch_size]
        engine.step(loss_fn(net(x[idx]), y[idx]))

    def end_of_epoch(epoch: int) -> dict[str, float]:
        with torch.no_grad():
            loss = float(loss_fn(net(x[val]), y[val]))
        bar.advance(1, val_loss=loss)
        return {"val": loss}

    with progress_bar(epochs, name, enabled=progress) as bar:
        engine.run(iteration, epochs * steps, per_epoch=steps, end_of_epoch=end_of_epoch,
                   callbacks=[keep, EarlyStopping("val", patience, min_delta=1e-5)])  # fmt: skip
    return Fitted(engine.iteration // steps, keep.best)
