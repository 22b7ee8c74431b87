"""Importance-weighted losses on fresh and buffered samples (i-flow, MadNIS).

:class:`ImportanceTrainer` draws a fresh batch from the flow every
iteration, takes one optimiser step on it and ``buffered_steps`` more on
points drawn again from a buffer of recent batches, each re-weighted to the
current flow (MadNIS 2212.06172 sec. 3). The loss is any of
:mod:`hepflows.integrate.losses` (variance, forward/reverse KL, the p-th
moment of the weights). With several channels it learns every channel's
flow (and the channel weights when they are learned); with mixture weights
the loss is that of f / g, g the mixture of the channel densities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.integrate.buffer import Batch, SampleBuffer
from hepflows.integrate.losses import channel_variance, get_loss
from hepflows.integrate.trainers.base import Trainer, TrainingHistory

if TYPE_CHECKING:  # pragma: no cover
    from hepflows.integrate.integrator import NeuralIntegrator
    from hepflows.training import Engine


@dataclass
class ImportanceTrainer(Trainer):
    """Train on importance-weighted losses with a sample buffer (the integrator's default).

    Attributes:
        loss: ``"variance"`` (default), ``"moment<p>"`` (e.g. ``"moment32"``:
            shorter weight tails, higher unweighting efficiency; measured better
            on Drell-Yan, worse on camel d = 8), ``"kl"`` (forward) or ``"rkl"``.
        lr: initial learning rate.
        batch_size: fresh points per iteration (default calls / 500 in [1000, 20000]).
        buffered_steps: extra optimiser steps per iteration on buffered points.
        buffer_batches: how many recent fresh batches the buffer keeps.
        clip: gradient-norm clip.
    """

    name = "importance"
    label = "importance-sampling"

    loss: str = "variance"
    lr: float = 5e-3
    batch_size: int | None = None
    buffered_steps: int = 7
    buffer_batches: int = 5
    clip: float | None = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        get_loss(self.loss)
        for key, low in (("buffered_steps", 0), ("buffer_batches", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{key} must be an int >= {low}, got {value!r}")
        self.buffer: SampleBuffer | None = None

    def steps_per_iteration(self) -> int:
        return 1 + self.buffered_steps

    def start(self, integ: NeuralIntegrator, batch: int) -> None:
        self.buffer = SampleBuffer(integ.dims, self.buffer_batches * batch)

    def iteration(
        self, integ: NeuralIntegrator, engine: Engine, batch: int, history: TrainingHistory
    ) -> dict[str, float]:
        fresh = integ.draw(batch)
        value, rel = integ.update_shares(fresh)
        history.integral.append(value)
        history.relative_error.append(rel)
        self.buffer.add(fresh)
        loss = engine.step(self.loss_of(integ, fresh))
        history.loss.append(loss)
        for _ in range(self.buffered_steps):
            engine.step(self.loss_of(integ, self.buffer.sample(batch, integ.generator,
                                                               integ.flow.dtype)))  # fmt: skip
        return {"loss": loss, "rel_err": rel}

    def loss_of(self, integ: NeuralIntegrator, batch: Batch) -> Tensor:
        """The loss of a batch (with gradients through the flow and the channel weights)."""
        if integ.mixture:
            return self._mixture_loss(integ, batch)
        return self._channel_loss(integ, batch)

    def _channel_loss(self, integ: NeuralIntegrator, batch: Batch) -> Tensor:
        """The loss of each channel's alpha_c f J / q_c (learned or prior channel weights)."""
        n_ch = len(integ.channels)
        log_q = integ.log_q(batch)
        g = batch.fj * torch.exp(integ.log_alpha(batch))
        if self.loss == "variance":
            return channel_variance(g, batch.log_qs, log_q, batch.channel, n_ch)
        loss_fn = get_loss(self.loss)
        parts = [
            loss_fn(g.detach()[m], batch.log_qs[m], log_q[m])
            for m in (batch.channel == i for i in range(n_ch))
            if bool(m.any())
        ]
        loss = torch.stack(parts).mean()
        if integ.channel_weights is not None:  # the channel weights learn from the variance
            loss = loss + channel_variance(g, batch.log_qs, log_q.detach(), batch.channel, n_ch)
        return loss

    def _mixture_loss(self, integ: NeuralIntegrator, batch: Batch) -> Tensor:
        """The loss of f / g with g = sum_j p_j q_j(x), gradients through every channel flow."""
        log_p = torch.log(integ.fractions)
        log_g_old = torch.logsumexp(log_p + batch.log_prior, dim=1)
        log_g = torch.logsumexp(log_p + integ.channel_log_densities(batch.x), dim=1)
        # f(x) = f J_c / J_c with log J_c = log q_c(r) - log q_c(x) at drawing.
        own = batch.log_prior.gather(1, batch.channel[:, None])[:, 0]
        fx = batch.fj * torch.exp(own - batch.log_qs)
        return get_loss(self.loss)(fx, log_g_old, log_g)

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        if self.buffer is None or self.buffer.rows is None:
            return {}, {}
        return {"buffer": self.buffer.rows.contiguous()}, {}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        if "buffer" in tensors and self.buffer is not None:
            self.buffer.rows = tensors["buffer"]
