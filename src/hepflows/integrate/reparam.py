"""Reverse KL with the reparameterisation gradient, for differentiable densities.

:class:`ReparamKLIntegrator` trains the flow q by minimising KL(q || p) =
E_u[log q(x(u)) - log p(x(u))] with x = T(u) the flow's sample of a uniform
latent u, differentiating through T and through log p (the pathwise
gradient; the FAB paper's "reverse KL" baseline). Every training point costs
one density and one gradient evaluation, counted apart as in
:class:`~hepflows.integrate.fab.FABIntegrator`. Without a gradient of f, use
``NeuralIntegrator(loss="rkl")`` (score-function gradient) instead.
"""

from __future__ import annotations

import os

import torch

from hepflows.errors import ConfigError
from hepflows.integrate.fab import EDGE
from hepflows.integrate.integrands import Integrand, evaluate_differentiable
from hepflows.integrate.nis import NeuralIntegrator, TrainingHistory, cosine_lr
from hepflows.progress import progress_bar


class ReparamKLIntegrator(NeuralIntegrator):
    """Reverse-KL training through the flow's samples and the density's gradient.

    Args:
        f: batched non-negative integrand on [0, 1]^d, differentiable in torch.
        dims: d.
        seed: seed of the flow and of every draw.
        transforms, bins, hidden, lr, batch_size: as :class:`NeuralIntegrator`
            (batch: points per optimiser step, default calls / 1000 in [128, 2048]);
            lr 1e-2 measured better than 5e-3 on Lambda_c at 1e4-1e5 calls
            (benchmarks/fab.py).
    """

    BATCH_RULE = (1000, 128, 2048)  # points per optimiser step: calls // 1000 in [128, 2048]

    def __init__(
        self,
        f: Integrand,
        dims: int,
        seed: int | None = None,
        transforms: int | None = None,
        bins: int = 8,
        hidden: tuple[int, ...] = (32, 32),
        lr: float = 1e-2,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(f, dims, seed=seed, transforms=transforms, bins=bins, hidden=hidden,
                         lr=lr, batch_size=batch_size, buffered_steps=0, vegas=False)  # fmt: skip
        self.config.update(method="reparam-kl")

    def train(  # type: ignore[override]
        self,
        calls: int | float,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 20,
    ) -> TrainingHistory:
        """Train with about ``calls`` density plus gradient evaluations (2 per point).

        Returns:
            The :class:`TrainingHistory` (loss per step; ``calls`` counts both kinds).
        """
        calls = int(calls)
        batch = self._batch_size(calls)
        steps = calls // (2 * batch)
        if steps < 1:
            raise ConfigError(
                f"one step costs {2 * batch} calls ({batch} points, value + gradient); raise "
                "calls or lower batch_size"
            )
        if checkpoint is not None:
            raise ConfigError("ReparamKLIntegrator trains in one go: checkpoint is not supported")
        history = TrainingHistory()
        start = self.total_calls
        opt = torch.optim.Adam(self.flow.parameters(), lr=self.config["lr"])
        lr0 = self.config["lr"]
        self.flow.train()
        with progress_bar(steps, "reverse-KL training", enabled=progress) as bar:
            for k in range(steps):
                cosine_lr(opt, lr0, k, steps)
                u = torch.rand(batch, self.dims, generator=self.generator, dtype=torch.float64)
                x, ladj = self.flow.to_data(u.to(self.flow.dtype))
                log_q = -ladj.to(torch.float64)  # uniform base: log q(x) = -log|dx/du|
                x64 = x.to(torch.float64).clamp(EDGE, 1 - EDGE)
                fx = evaluate_differentiable(self.f, x64)
                self.calls += batch
                self.grad_calls += batch
                log_p = torch.log(fx.to(torch.float64))
                ok = torch.isfinite(log_p)
                loss = (log_q[ok] - log_p[ok]).mean()
                opt.zero_grad()
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(self.flow.parameters(), 10.0)
                if torch.isfinite(norm):
                    opt.step()
                history.loss.append(loss.item())
                bar.advance(loss=loss.item())
        self.flow.eval()
        history.calls = self.total_calls - start
        return history
