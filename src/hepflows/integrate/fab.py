"""Flow Annealed Importance Sampling Bootstrap (FAB; Midgley et al. 2208.01893).

:class:`FABIntegrator` trains the same bounded spline flow q as
:class:`~hepflows.integrate.nis.NeuralIntegrator`, but not on plain draws of
q: each iteration draws n points from q, moves them with annealed importance
sampling (:mod:`hepflows.integrate.ais`, HMC transitions) from q towards
p^2/q (the minimiser of the alpha = 2 divergence, i.e. of the importance
weights' variance), and stores the AIS points and weights in a prioritised
replay buffer (:mod:`hepflows.integrate.replay`). Several optimiser steps
per iteration draw from the buffer proportionally to the weights and
minimise -E[clip(q_old/q) log q]. HMC needs grad log p: the integrand must
be differentiable in torch (e.g. :mod:`hepflows.physics.decays`).

HMC runs in logit coordinates z = log(x / (1 - x)) of the unit cube, where
both densities pick up the same Jacobian, so the chains never leave [0, 1]^d.

Calls are counted separately: :attr:`FABIntegrator.calls` density
evaluations (f at a point) and :attr:`FABIntegrator.grad_calls` gradient
evaluations (grad f at a point). The budget of :meth:`FABIntegrator.train`
counts both, one call each, as every comparison here does. Integration and
event generation are those of the NeuralIntegrator (density calls only).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.integrate.ais import annealed_importance_sampling, linear_betas
from hepflows.integrate.integrands import (
    Integrand,
    IntegrandError,
    evaluate,
    evaluate_differentiable,
)
from hepflows.integrate.nis import NeuralIntegrator, TrainingHistory, _read_meta, cosine_lr
from hepflows.integrate.replay import PrioritisedReplayBuffer
from hepflows.progress import progress_bar

#: Points are kept this far from the cube's faces (amplitudes are singular on the boundary).
EDGE = 1e-12


@dataclass
class FABHistory(TrainingHistory):
    """What happened during :meth:`FABIntegrator.train` (besides the NIS history).

    Attributes:
        ess_flow: per iteration, normalised ESS of p/q on the fresh flow draws.
        ess_ais: per iteration, normalised ESS of the AIS weights (towards p^2/q).
        accept: per iteration, mean HMC acceptance of each intermediate distribution.
        step_size: per iteration, the HMC step sizes after adaptation.
        density_calls: density evaluations of this training.
        grad_calls: gradient evaluations of this training.
    """

    ess_flow: list[float] = field(default_factory=list)
    ess_ais: list[float] = field(default_factory=list)
    accept: list[list[float]] = field(default_factory=list)
    step_size: list[list[float]] = field(default_factory=list)
    density_calls: int = 0
    grad_calls: int = 0


def normalised_ess(log_w: Tensor) -> float:
    """(sum w)^2 / (n sum w^2) of (n,) log-weights (non-finite entries count as w = 0)."""
    lw = torch.nan_to_num(
        log_w.to(torch.float64), nan=-math.inf, posinf=-math.inf, neginf=-math.inf
    )
    if not bool(torch.isfinite(lw).any()):
        return 0.0
    return math.exp(2 * torch.logsumexp(lw, 0).item() - torch.logsumexp(2 * lw, 0).item()) / len(lw)


class FABIntegrator(NeuralIntegrator):
    """Train a flow on a differentiable density with FAB; integrate and generate like NIS.

    Args:
        f: batched non-negative integrand on [0, 1]^d, (n, d) float64 -> (n,),
            differentiable in torch (its gradient drives HMC).
        dims: d.
        seed: seed of the flow and of every random draw.
        transforms, bins, hidden: flow architecture (as NeuralIntegrator).
        lr: Adam learning rate (cosine decay over the training).
        batch_size: AIS chains per iteration, also the replay batch (default
            calls / 2000 between 256 and 4096).
        intermediate: intermediate AIS distributions (>= 1), each with one HMC move.
        leapfrog: leapfrog steps per HMC move.
        step_size: initial HMC step size in logit coordinates.
        target_accept: acceptance rate the step sizes adapt to.
        replay_steps: optimiser steps on replay batches per iteration.
        buffer_batches: replay buffer capacity, in batches.
        w_adjust_clip: clip of the weight correction q_old / q in the loss.
        drop_nonfinite: count NaN/inf density values as 0 instead of stopping.

    Example:
        >>> from hepflows.physics.decays import pi1800
        >>> fab = FABIntegrator(pi1800(), 2, seed=1)
        >>> fab.train(calls=100_000)
        >>> print(fab.integrate(calls=100_000).summary())
    """

    BATCH_RULE = (2000, 256, 4096)  # chains per AIS batch: calls // 2000 in [256, 4096]

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
        intermediate: int = 1,
        leapfrog: int = 1,
        step_size: float = 0.2,
        target_accept: float = 0.65,
        replay_steps: int = 16,
        buffer_batches: int = 20,
        w_adjust_clip: float = 10.0,
        drop_nonfinite: bool = False,
    ) -> None:
        for name, value, low in (("intermediate", intermediate, 1), ("leapfrog", leapfrog, 1),
                                 ("replay_steps", replay_steps, 1),
                                 ("buffer_batches", buffer_batches, 1)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
        if not (step_size > 0 and math.isfinite(step_size)):
            raise ConfigError(f"step_size must be a positive number, got {step_size}")
        if not 0 < target_accept < 1:
            raise ConfigError(f"target_accept must lie in (0, 1), got {target_accept}")
        if not w_adjust_clip > 0:
            raise ConfigError(f"w_adjust_clip must be > 0, got {w_adjust_clip}")
        super().__init__(f, dims, seed=seed, transforms=transforms, bins=bins, hidden=hidden,
                         lr=lr, batch_size=batch_size, buffered_steps=replay_steps,
                         buffer_batches=buffer_batches, vegas=False,
                         drop_nonfinite=drop_nonfinite)  # fmt: skip
        self.config.update(method="fab", intermediate=intermediate, leapfrog=leapfrog,
                           step_size=step_size, target_accept=target_accept,
                           w_adjust_clip=w_adjust_clip)  # fmt: skip
        self.step_sizes = [float(step_size)] * intermediate
        self.replay: PrioritisedReplayBuffer | None = None

    def calls_per_chain(self) -> int:
        """Calls one AIS chain costs: value + gradient at the start and at every leapfrog step."""
        return 2 * (1 + self.config["intermediate"] * self.config["leapfrog"])

    # ------------------------------------------------------------- densities
    def _log_f(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(n, d) points -> log f (n,) and grad_x log f (n, d); n density + n gradient calls."""
        xg = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            fx = evaluate_differentiable(self.f, xg)
            if bool((fx < 0).any()):
                raise IntegrandError(
                    "FAB samples a density: f returned negative values; use NeuralIntegrator "
                    "for signed integrands"
                )
            log_f = torch.log(fx.to(torch.float64))
            (grad,) = torch.autograd.grad(log_f.sum(), xg, allow_unused=True)
        self.calls += len(x)
        self.grad_calls += len(x)
        if grad is None:
            grad = torch.zeros_like(x)
        bad = ~torch.isfinite(fx.detach())
        if bool(bad.any()):
            if not self.config["drop_nonfinite"]:
                evaluate(lambda _: fx.detach(), x)  # raises the standard NaN/inf error
            self.dropped += int(bad.sum())
            log_f = torch.where(bad, -math.inf, log_f)
        grad = torch.where(torch.isfinite(log_f)[:, None], grad.to(torch.float64), 0.0)
        return log_f.detach(), grad

    def _log_q(self, x: Tensor, grad: bool) -> tuple[Tensor, Tensor | None]:
        """Flow log q at (n, d) x, and its x-gradient (n, d) when asked (no target calls)."""
        dt = self.flow.dtype
        if not grad:
            with torch.no_grad():
                return self.flow.log_prob(x.to(dt)).to(torch.float64), None
        xg = x.detach().to(dt).requires_grad_(True)
        with torch.enable_grad():
            log_q = self.flow.log_prob(xg)
            (g,) = torch.autograd.grad(log_q.sum(), xg)
        return log_q.detach().to(torch.float64), g.to(torch.float64)

    def _densities(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """In logit coordinates z (n, d): log q_z, its gradient, log (p^2/q)_z, its gradient."""
        x = torch.sigmoid(z).clamp(EDGE, 1 - EDGE)
        dxdz = x * (1 - x)
        log_jac = torch.log(dxdz).sum(1)
        grad_jac = 1 - 2 * x
        log_q, gq = self._log_q(x, grad=True)
        log_f, gf = self._log_f(x)
        lb = log_q + log_jac
        gb = gq * dxdz + grad_jac
        lt = 2 * log_f - log_q + log_jac
        gt = (2 * gf - gq) * dxdz + grad_jac
        return lb, gb, lt, gt

    # ---------------------------------------------------------------- training
    def _new_plan(self, calls: int) -> None:
        batch = self._batch_size(calls)
        per_iteration = batch * self.calls_per_chain()
        if calls < per_iteration:
            raise ConfigError(
                f"a FAB iteration costs {per_iteration:,} calls ({batch} chains x "
                f"{self.calls_per_chain()}); raise the training calls (--train-calls) above that "
                "or lower batch_size"
            )
        self._plan = {"budget": calls, "batch": batch, "iteration": 0,
                      "iterations": calls // per_iteration, "done": 0}  # fmt: skip
        self._opt = None
        self.replay = PrioritisedReplayBuffer(self.dims, batch * self.config["buffer_batches"])

    def train(  # type: ignore[override]
        self,
        calls: int | float,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 20,
    ) -> FABHistory:
        """Train with about ``calls`` density plus gradient evaluations.

        Args:
            calls: budget; one density or one gradient evaluation at a point is one call.
            progress: show a progress bar.
            checkpoint: file to write the state to (flow, optimiser, replay buffer,
                step sizes) every ``checkpoint_every`` iterations and at the end;
                an unfinished training of this configuration resumes from it.
            checkpoint_every: iterations between checkpoints.

        Returns:
            The :class:`FABHistory` of this call.
        """
        calls = int(calls)
        if calls < 1:
            raise ConfigError(f"calls must be >= 1, got {calls}")
        history = FABHistory()
        start = (self.calls, self.grad_calls)
        if checkpoint is not None and Path(checkpoint).exists():
            self._restore(checkpoint, training=True)
        if self._plan.get("budget") != calls or self._plan.get("done"):
            self._new_plan(calls)
        plan = self._plan
        opt = self._optimizer()
        steps = self.config["buffered_steps"]
        total_steps = plan["iterations"] * steps
        lr0 = self.config["lr"]
        betas = linear_betas(self.config["intermediate"])
        self.flow.train()
        with progress_bar(plan["iterations"], "FAB training", enabled=progress) as bar:
            bar.advance(plan["iteration"])
            while plan["iteration"] < plan["iterations"]:
                self._add_ais_batch(plan["batch"], betas, history)
                for k in range(steps):
                    done = plan["iteration"] * steps + k
                    cosine_lr(opt, lr0, done, total_steps)
                    loss = self._replay_step(opt, plan["batch"])
                history.loss.append(loss)
                plan["iteration"] += 1
                bar.advance(loss=loss, ess=history.ess_flow[-1])
                if checkpoint is not None and plan["iteration"] % checkpoint_every == 0:
                    self.save(checkpoint)
        plan["done"] = 1
        self.flow.eval()
        if checkpoint is not None:
            self.save(checkpoint)
        history.density_calls = self.calls - start[0]
        history.grad_calls = self.grad_calls - start[1]
        history.calls = history.density_calls + history.grad_calls
        return history

    def _add_ais_batch(self, n: int, betas: Tensor, history: FABHistory) -> None:
        """Draw n points from q, anneal them towards p^2/q, store them in the buffer."""
        gen = self.generator
        with torch.no_grad():
            u = torch.rand(n, self.dims, generator=gen, dtype=torch.float64)
            y, _ = self.flow.to_data(u.to(self.flow.dtype))
        x0 = y.to(torch.float64).clamp(EDGE, 1 - EDGE)
        z0 = torch.log(x0) - torch.log1p(-x0)
        ais = annealed_importance_sampling(
            z0, self._densities, betas, self.step_sizes, self.config["leapfrog"], gen,
            target_accept=self.config["target_accept"],
        )  # fmt: skip
        x = torch.sigmoid(ais.z).clamp(EDGE, 1 - EDGE)
        log_q, _ = self._log_q(x, grad=False)
        self.replay.add(x, ais.log_w, log_q)
        # On the fresh draws log(p^2/q) - log q = 2 log(p/q): an unbiased estimate for free.
        log_pq = ais.log_ratio_start / 2
        w = torch.exp(log_pq)
        history.integral.append(w.mean().item())
        rel = (w.std() / (w.mean() * math.sqrt(n))).item() if w.mean() > 0 else math.inf
        history.relative_error.append(rel)
        history.ess_flow.append(normalised_ess(log_pq))
        history.ess_ais.append(normalised_ess(ais.log_w))
        history.accept.append(ais.accept)
        history.step_size.append(list(self.step_sizes))

    def _replay_step(self, opt: torch.optim.Optimizer, n: int) -> float:
        """One optimiser step on a batch drawn from the buffer proportionally to the weights."""
        x, log_q_old, idx = self.replay.sample(n, self.generator)
        log_q = self.flow.log_prob(x.to(self.flow.dtype)).to(torch.float64)
        w_adjust = torch.exp(log_q_old - log_q.detach()).clamp_max(self.config["w_adjust_clip"])
        loss = -(w_adjust * log_q).mean()
        opt.zero_grad()
        if torch.isfinite(loss):
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self._parameters(), 10.0)
            if torch.isfinite(norm):
                opt.step()
        self.replay.adjust(idx, log_q.detach())
        return loss.item()

    # ------------------------------------------------------------ save / load
    def _extra_tensors(self) -> dict[str, Tensor]:
        if self.replay is None:
            return {}
        return {f"replay.{k}": v.contiguous() for k, v in self.replay.state().items()}

    def _extra_state(self) -> dict[str, Any]:
        return {"step_sizes": self.step_sizes}

    def _restore_extra(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        self.step_sizes = list(state.get("step_sizes", self.step_sizes))
        replay = {k[7:]: v for k, v in tensors.items() if k.startswith("replay.")}
        if replay:
            self.replay = PrioritisedReplayBuffer(self.dims, len(replay["x"]))
            self.replay.load_state(replay)

    @classmethod
    def load(  # type: ignore[override]
        cls, path: str | os.PathLike, f: Integrand, channels: Sequence | None = None
    ) -> FABIntegrator:
        """Rebuild a saved FAB integrator for the integrand ``f`` (no pickled code is run)."""
        import json

        config = json.loads(_read_meta(path)["config"])
        if config.get("method") != "fab":
            raise ConfigError(
                f"{path} holds a NeuralIntegrator, not FAB: use NeuralIntegrator.load"
            )
        keys = ("seed", "transforms", "bins", "lr", "batch_size", "intermediate", "leapfrog",
                "step_size", "target_accept", "w_adjust_clip", "drop_nonfinite")  # fmt: skip
        kwargs = {k: config[k] for k in keys}
        integ = cls(f, config["dims"], hidden=tuple(config["hidden"]),
                    replay_steps=config["buffered_steps"],
                    buffer_batches=config["buffer_batches"], **kwargs)  # fmt: skip
        integ._restore(path, training=True)
        return integ
