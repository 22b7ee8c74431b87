"""Flow Annealed Importance Sampling Bootstrap (FAB; Midgley et al. 2208.01893).

:class:`FAB` trains the integrator's flow q not on plain draws of q: each
iteration draws n points from q, moves them with annealed importance
sampling (:mod:`hepflows.integrate.ais`, HMC transitions) from q towards
p^2/q (the minimiser of the alpha = 2 divergence, i.e. of the importance
weights' variance), and stores the AIS points and weights in a prioritised
replay buffer (:mod:`hepflows.integrate.replay`). Several optimiser steps
per iteration draw from the buffer proportionally to the weights and
minimise -E[clip(q_old/q) log q]. HMC needs grad log p: the integrand must
be differentiable in torch (e.g. :mod:`hepflows.physics.decays`).

HMC runs in logit coordinates z = log(x / (1 - x)) of the unit cube, where
both densities pick up the same Jacobian, so the chains never leave [0, 1]^d;
for an integrand on R^d (``NeuralIntegrator(domain="real")``) it runs in x
itself.

Density evaluations (f at a point) and gradient evaluations (grad f at a
point) are counted apart (:attr:`NeuralIntegrator.calls`,
:attr:`NeuralIntegrator.grad_calls`); the training budget counts both, one
call each, as every comparison here does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.integrate.ais import annealed_importance_sampling, linear_betas
from hepflows.integrate.integrands import evaluate, log_density
from hepflows.integrate.metrics import normalised_ess
from hepflows.integrate.replay import PrioritisedReplayBuffer
from hepflows.integrate.trainers.base import Trainer, TrainingHistory

if TYPE_CHECKING:  # pragma: no cover
    from hepflows.integrate.integrator import NeuralIntegrator
    from hepflows.training import Engine

#: Points are kept this far from the cube's faces (amplitudes are singular on the boundary).
EDGE = 1e-12


@dataclass
class FABHistory(TrainingHistory):
    """What happened during FAB training (besides the common history).

    Attributes:
        ess_flow: per iteration, normalised ESS of p/q on the fresh flow draws.
        ess_ais: per iteration, normalised ESS of the AIS weights (towards p^2/q).
        accept: per iteration, mean HMC acceptance of each intermediate distribution.
        step_size: per iteration, the HMC step sizes after adaptation.
    """

    ess_flow: list[float] = field(default_factory=list)
    ess_ais: list[float] = field(default_factory=list)
    accept: list[list[float]] = field(default_factory=list)
    step_size: list[list[float]] = field(default_factory=list)


def log_density_and_gradient(integ: NeuralIntegrator, x: Tensor) -> tuple[Tensor, Tensor]:
    """(n, d) points -> log f (n,) and grad_x log f (n, d); counts n density + n gradient calls.

    Non-finite values stop with the integrand error, or count as f = 0
    (log f = -inf, zero gradient) with ``drop_nonfinite``.
    """
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        log_f = log_density(integ.f, xg)
        (grad,) = torch.autograd.grad(log_f.sum(), xg, allow_unused=True)
    integ.count(density=len(x), gradient=len(x))
    log_f = log_f.detach()
    if grad is None:
        grad = torch.zeros_like(x)
    bad = torch.isnan(log_f) | (log_f == math.inf)  # f NaN or inf (f = 0 is log f = -inf)
    if bool(bad.any()):
        if not integ.config["drop_nonfinite"]:
            evaluate(lambda _: log_f.exp(), x)  # raises the standard NaN/inf error
        integ.dropped += int(bad.sum())
        log_f = torch.where(bad, -math.inf, log_f)
    grad = torch.where(torch.isfinite(log_f)[:, None], grad.to(torch.float64), 0.0)
    return log_f, grad


@dataclass
class FAB(Trainer):
    """FAB: AIS towards p^2/q with HMC, a prioritised replay buffer (needs grad f).

    Attributes:
        lr: initial learning rate.
        batch_size: AIS chains per iteration, also the replay batch (default
            calls / 2000 in [256, 4096]).
        intermediate: intermediate AIS distributions (>= 1), each with one HMC move.
        leapfrog: leapfrog steps per HMC move.
        step_size: initial HMC step size in logit coordinates.
        target_accept: acceptance rate the step sizes adapt to.
        replay_steps: optimiser steps on replay batches per iteration.
        buffer_batches: replay buffer capacity, in batches.
        w_adjust_clip: clip of the weight correction q_old / q in the loss.
        clip: gradient-norm clip.

    Defaults were measured at equal calls on Lambda_c (README): one
    intermediate distribution, one leapfrog step, 16 replay steps, lr 1e-2.
    """

    name = "fab"
    label = "FAB"
    batch_rule = (2000, 256, 4096)
    gradient = True
    warm_start = False
    multichannel = False

    lr: float = 1e-2
    batch_size: int | None = None
    intermediate: int = 1
    leapfrog: int = 1
    step_size: float = 0.2
    target_accept: float = 0.65
    replay_steps: int = 16
    buffer_batches: int = 20
    w_adjust_clip: float = 10.0
    clip: float | None = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("intermediate", "leapfrog", "replay_steps", "buffer_batches"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be an int >= 1, got {value!r}")
        if not (self.step_size > 0 and math.isfinite(self.step_size)):
            raise ConfigError(f"step_size must be a positive number, got {self.step_size}")
        if not 0 < self.target_accept < 1:
            raise ConfigError(f"target_accept must lie in (0, 1), got {self.target_accept}")
        if not self.w_adjust_clip > 0:
            raise ConfigError(f"w_adjust_clip must be > 0, got {self.w_adjust_clip}")
        #: HMC step size of every intermediate distribution (adapted during training).
        self.step_sizes = [float(self.step_size)] * self.intermediate
        #: The replay buffer (created when a plan starts).
        self.replay: PrioritisedReplayBuffer | None = None

    def calls_per_chain(self) -> int:
        """Calls one AIS chain costs: value + gradient at the start and at every leapfrog step."""
        return 2 * (1 + self.intermediate * self.leapfrog)

    def calls_per_iteration(self, batch: int) -> int:
        return batch * self.calls_per_chain()

    def steps_per_iteration(self) -> int:
        return self.replay_steps

    def start(self, integ: NeuralIntegrator, batch: int) -> None:
        self.replay = PrioritisedReplayBuffer(integ.dims, batch * self.buffer_batches,
                                             integ.device)

    def new_history(self) -> FABHistory:
        return FABHistory()

    # ------------------------------------------------------------- densities
    @staticmethod
    def _log_q(integ: NeuralIntegrator, x: Tensor, grad: bool) -> tuple[Tensor, Tensor | None]:
        """Flow log q at (n, d) x, and its x-gradient (n, d) when asked (no target calls)."""
        dt = integ.flow.dtype
        if not grad:
            with torch.no_grad():
                return integ.flow.log_prob(x.to(dt)).to(torch.float64), None
        xg = x.detach().to(dt).requires_grad_(True)
        with torch.enable_grad():
            log_q = integ.flow.log_prob(xg)
            (g,) = torch.autograd.grad(log_q.sum(), xg)
        return log_q.detach().to(torch.float64), g.to(torch.float64)

    @staticmethod
    def _to_chain(integ: NeuralIntegrator, x: Tensor) -> Tensor:
        """(n, d) points -> HMC coordinates: logits on the unit cube, x itself on R^d."""
        if integ.domain == "real":
            return x
        x = x.clamp(EDGE, 1 - EDGE)
        return torch.log(x) - torch.log1p(-x)

    @staticmethod
    def _from_chain(integ: NeuralIntegrator, z: Tensor) -> Tensor:
        """HMC coordinates (n, d) -> points (inverse of :meth:`_to_chain`)."""
        return z if integ.domain == "real" else torch.sigmoid(z).clamp(EDGE, 1 - EDGE)

    def _densities(self, integ: NeuralIntegrator, z: Tensor) -> tuple[Tensor, ...]:
        """In HMC coordinates z (n, d): log q_z, its gradient, log (p^2/q)_z, its gradient."""
        x = self._from_chain(integ, z)
        if integ.domain == "real":
            dxdz, log_jac, grad_jac = 1.0, 0.0, 0.0
        else:
            dxdz = x * (1 - x)
            log_jac = torch.log(dxdz).sum(1)
            grad_jac = 1 - 2 * x
        log_q, gq = self._log_q(integ, x, grad=True)
        log_f, gf = log_density_and_gradient(integ, x)
        lb = log_q + log_jac
        gb = gq * dxdz + grad_jac
        lt = 2 * log_f - log_q + log_jac
        gt = (2 * gf - gq) * dxdz + grad_jac
        return lb, gb, lt, gt

    # ---------------------------------------------------------------- training
    def iteration(
        self, integ: NeuralIntegrator, engine: Engine, batch: int, history: TrainingHistory
    ) -> dict[str, float]:
        self._add_ais_batch(integ, batch, history)
        for _ in range(self.replay_steps):
            loss = self._replay_step(integ, engine, batch)
        history.loss.append(loss)
        return {"loss": loss, "ess": history.ess_flow[-1]}

    def _add_ais_batch(self, integ: NeuralIntegrator, n: int, history: FABHistory) -> None:
        """Draw n points from q, anneal them towards p^2/q, store them in the buffer."""
        gen = integ.generator
        with torch.no_grad():
            y, _ = integ.flow_sample(n, gen)
        ais = annealed_importance_sampling(
            self._to_chain(integ, y), lambda z: self._densities(integ, z),
            linear_betas(self.intermediate), self.step_sizes, self.leapfrog, gen,
            target_accept=self.target_accept,
        )  # fmt: skip
        x = self._from_chain(integ, ais.z)
        log_q, _ = self._log_q(integ, x, grad=False)
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

    def _replay_step(self, integ: NeuralIntegrator, engine: Engine, n: int) -> float:
        """One optimiser step on a batch drawn from the buffer proportionally to the weights."""
        x, log_q_old, idx = self.replay.sample(n, integ.generator)
        log_q = integ.flow.log_prob(x.to(integ.flow.dtype)).to(torch.float64)
        w_adjust = torch.exp(log_q_old - log_q.detach()).clamp_max(self.w_adjust_clip)
        loss = engine.step(-(w_adjust * log_q).mean())
        self.replay.adjust(idx, log_q.detach())
        return loss

    # ------------------------------------------------------------------- state
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {}
        if self.replay is not None:
            tensors = {f"replay.{k}": v.contiguous() for k, v in self.replay.state().items()}
        return tensors, {"step_sizes": self.step_sizes}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        self.step_sizes = list(meta.get("step_sizes", self.step_sizes))
        replay = {k[7:]: v for k, v in tensors.items() if k.startswith("replay.")}
        if replay:
            self.replay = PrioritisedReplayBuffer(len(replay["x"][0]), len(replay["x"]),
                                                 replay["x"].device)
            self.replay.load_state(replay)
