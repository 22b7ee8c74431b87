"""Neural importance sampling on the unit cube (i-flow 2001.05486, MadNIS 2212.06172).

:class:`NeuralIntegrator` trains a bounded rational-quadratic spline coupling
flow q(x) on [0, 1]^d towards |f|, then estimates I = E_q[f / q] from fresh
samples and generates unweighted events. Optional pieces:

* multi-channel integration (MadNIS): user channels (mappings with their
  Jacobians and prior weights, :mod:`hepflows.integrate.channels`), one flow
  conditioned on the channel, learned channel weights alpha_i(x), samples
  allocated per channel by its standard deviation (stratified), per-channel
  contributions in the result;
* a VEGAS warm start: a grid adapted by the ``vegas`` package (one per
  channel) becomes a fixed change of variables in front of the flow, which
  then learns what a separable grid cannot;
* buffered training: every fresh batch is stored and re-used for further
  optimiser steps with importance weights, so expensive integrands are called
  less often per optimiser step;
* stratified estimates: the flow's latent unit cube is split into
  hypercubes (:mod:`hepflows.integrate.stratified`), as VEGAS does in its
  own variables;
* checkpoints: ``train(..., checkpoint=path)`` writes the whole state
  atomically and resumes from it after a crash.

All integrand calls are counted in :attr:`NeuralIntegrator.calls`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

import hepflows
from hepflows.errors import CheckpointError, ConfigError
from hepflows.flows import MAF, CouplingFlow
from hepflows.flows.flows import ConfiguredFlow
from hepflows.integrate.channels import (
    Channel,
    ChannelWeights,
    allocate,
    apply_inverse,
    apply_mapping,
    check_channels,
    log_priors,
)
from hepflows.integrate.integrands import Integrand, evaluate
from hepflows.integrate.losses import channel_variance, get_loss
from hepflows.integrate.result import ChannelResult, IntegrationResult, weight_statistics
from hepflows.integrate.stratified import (
    hypercube_assignment,
    points_in_cubes,
    stratified_estimate,
)
from hepflows.integrate.unweighting import choose_wmax, unweight
from hepflows.integrate.vegas_map import VegasMap, adapt_vegas
from hepflows.io.atomic import atomic_write, read_metadata
from hepflows.io.events import Events
from hepflows.progress import progress_bar
from hepflows.training.state import load_optimizer_tensors, optimizer_tensors

FORMAT = "hepflows-integrator"
#: No channel gets less than this share of the channel allocation, over C.
MIN_CHANNEL_SHARE = 0.1


@dataclass
class TrainingHistory:
    """What happened during :meth:`NeuralIntegrator.train`.

    Attributes:
        loss: loss of every optimiser step on a fresh batch.
        integral: per fresh batch, the batch estimate of the integral.
        relative_error: per fresh batch, the estimated relative error of one
            batch, std(w) / (mean(w) sqrt(n)).
        calls: integrand calls made by this training (VEGAS warm-up included).
    """

    loss: list[float] = field(default_factory=list)
    integral: list[float] = field(default_factory=list)
    relative_error: list[float] = field(default_factory=list)
    calls: int = 0


@dataclass
class Batch:
    """Points with everything the losses and estimates need.

    Attributes:
        y: (n, d) flow points (flow dtype).
        channel: (n,) int64 channel of each point.
        x: (n, d) float64 integrand points.
        fj: (n,) f(x) times the Jacobians of the VEGAS map and channel mapping.
        log_qs: (n,) float64 log-density the points were drawn from.
        log_prior: (n, C) log channel weights before normalisation: the log prior
            weights at x, or with mixture weights log q_j(x) of every channel
            density at x when drawn; ``None`` without either.
    """

    y: Tensor
    channel: Tensor
    x: Tensor
    fj: Tensor
    log_qs: Tensor
    log_prior: Tensor | None


def cosine_lr(opt: torch.optim.Optimizer, lr0: float, done: int, total: int) -> None:
    """Set every group's learning rate to lr0 (1 + cos(pi done / total)) / 2 (cosine decay)."""
    for group in opt.param_groups:
        group["lr"] = lr0 * 0.5 * (1 + math.cos(math.pi * done / total))


def default_transforms(dims: int) -> int:
    """Coupling blocks by dimension: enough for every pair of features to meet."""
    return max(4, 2 * math.ceil(math.log2(max(dims, 2))) + 2)


class NeuralIntegrator:
    """Integrate ``f`` over [0, 1]^d and generate events with a normalizing flow.

    Args:
        f: batched integrand, (n, d) float64 in [0, 1]^d -> (n,); may be signed.
        dims: d.
        seed: seed of the flow initialisation and of every random draw.
        channels: multi-channel integration: a list of :class:`Channel`
            (mapping with Jacobian, optional prior weight, name); ``None``
            is one channel without mapping.
        weights: the channel weights alpha_i(x) (MadNIS notation):
            ``"mixture"``: alpha_i = p_i q_i(x) / sum_j p_j q_j(x) from the channel
            densities themselves (Kleiss-Pittau multi-channel, the balance
            heuristic): every weight is f / g with g the mixture of the channel
            flows, and regions one channel misses are covered by the others; it
            needs each channel's inverse mapping and costs C flow passes per point.
            ``"learned"``: a network times the prior weights (MadNIS).
            ``"prior"``: the prior weights g_i / sum_j g_j.
            ``"auto"`` (default): mixture when every channel is invertible, else
            learned. On Drell-Yan with a Z' the mixture cut the largest weight
            from 2.4 to 1.8 times the mean (benchmarks/drell_yan.py).
        loss: ``"variance"`` (default), ``"moment<p>"`` (the p-th moment of the
            weights, e.g. ``"moment32"``: shorter weight tails, a higher
            unweighting efficiency; measured better on Drell-Yan, worse on camel
            d = 8), ``"kl"`` (forward) or ``"rkl"`` (reverse).
        transforms: coupling blocks (default grows with log2 d).
        bins: spline bins.
        hidden: conditioner hidden widths.
        lr: Adam learning rate (cosine decay over the training).
        batch_size: fresh points per training iteration (default: calls / 500,
            between 1000 and 20000).
        buffered_steps: extra optimiser steps per iteration on stored samples.
        buffer_batches: how many recent fresh batches the buffer keeps.
        vegas: warm start from VEGAS grids (default: for one channel in
            d <= 4, where a separable grid captures most of the structure
            cheaply; channel mappings already do that job, and a grid per
            channel from a split budget was measured to hurt).
        vegas_fraction: share of the training calls spent adapting VEGAS
            (default 0.5 for d <= 2, where the grid does most of the work,
            else 0.25; measured on camel, benchmarks/integration.py).
        drop_nonfinite: count NaN/inf integrand values as 0 (reported)
            instead of stopping with an error.

    Example:
        >>> from hepflows.integrate import NeuralIntegrator, camel
        >>> f = camel(4)
        >>> integ = NeuralIntegrator(f, 4, seed=1)
        >>> integ.train(calls=200_000)
        >>> print(integ.integrate(calls=100_000).summary())
    """

    def __init__(
        self,
        f: Integrand,
        dims: int,
        seed: int | None = None,
        channels: Sequence[Channel] | None = None,
        weights: str = "auto",
        loss: str = "variance",
        transforms: int | None = None,
        bins: int = 8,
        hidden: tuple[int, ...] = (32, 32),
        lr: float = 5e-3,
        batch_size: int | None = None,
        buffered_steps: int = 7,
        buffer_batches: int = 5,
        vegas: bool | None = None,
        vegas_fraction: float | None = None,
        drop_nonfinite: bool = False,
    ) -> None:
        if not callable(f):
            kind = type(f).__name__
            raise ConfigError(f"the integrand must be callable f(x) -> (n,), got {kind}")
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ConfigError(f"dims must be a positive int, got {dims!r}")
        get_loss(loss)
        if vegas_fraction is None:
            vegas_fraction = 0.5 if dims <= 2 else 0.25
        if not 0 < vegas_fraction < 1:
            raise ConfigError(f"vegas_fraction must lie in (0, 1), got {vegas_fraction}")
        self.f = f
        self.dims = dims
        self.channels = check_channels(channels)
        n_ch = len(self.channels)
        weights = self._weights_mode(weights)
        if weights == "mixture" and vegas:
            raise ConfigError(
                "mixture channel weights cannot be combined with a VEGAS warm start (its grid "
                "has no inverse here); pass vegas=False or weights='learned'"
            )
        self.config: dict[str, Any] = dict(
            dims=dims, seed=seed, channels=[ch.name for ch in self.channels],
            weights=weights, loss=loss,
            transforms=transforms or default_transforms(dims), bins=bins, hidden=list(hidden),
            lr=lr, batch_size=batch_size, buffered_steps=buffered_steps,
            buffer_batches=buffer_batches,
            vegas=(dims <= 4 and n_ch == 1) if vegas is None else bool(vegas),
            vegas_fraction=vegas_fraction, drop_nonfinite=drop_nonfinite,
        )  # fmt: skip
        if seed is not None:
            torch.manual_seed(seed)
        self.flow = self._make_flow()
        self.weights = ChannelWeights(dims, n_ch) if weights == "learned" else None
        self.maps: list[VegasMap | None] = [None] * n_ch
        #: Share of the points each channel gets: proportional to its weight spread
        #: (learned/prior weights), or the Kleiss-Pittau shares p_i (mixture weights).
        self.fractions = torch.full((n_ch,), 1.0 / n_ch, dtype=torch.float64)
        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else torch.seed())
        self.calls = 0
        #: Gradient evaluations of f (gradient-based trainers such as FAB; each counts as
        #: one call in budgets). Always 0 for the NeuralIntegrator's own losses.
        self.grad_calls = 0
        self.dropped = 0
        self._opt: torch.optim.Optimizer | None = None
        self._plan: dict[str, int] = {}
        self._buffer: Tensor | None = None

    # ----------------------------------------------------------- construction
    def _weights_mode(self, weights: str) -> str:
        modes = ("auto", "mixture", "learned", "prior")
        if len(self.channels) == 1 and weights in (*modes, "single"):
            return "single"  # one channel: nothing to weight ("single" is what save writes)
        if weights not in modes:
            raise ConfigError(f"weights must be one of {modes}, got {weights!r}")
        invertible = all(ch.invertible for ch in self.channels)
        if weights == "auto":
            return "mixture" if invertible else "learned"
        if weights == "mixture" and not invertible:
            names = [ch.name for ch in self.channels if not ch.invertible]
            raise ConfigError(
                f"mixture weights need every channel's inverse mapping; {names} have none: "
                "pass Channel(inverse=...) or weights='learned'"
            )
        return weights

    @property
    def total_calls(self) -> int:
        """Density plus gradient evaluations of f so far (training and estimates)."""
        return self.calls + self.grad_calls

    @property
    def mixture(self) -> bool:
        """Whether the channel weights come from the channel densities (Kleiss-Pittau)."""
        return self.config["weights"] == "mixture"

    def _make_flow(self) -> ConfiguredFlow:
        c = self.config
        n_ch = len(self.channels)
        common = dict(transforms=c["transforms"], bins=c["bins"], hidden=c["hidden"],
                      domain="unit", context=n_ch if n_ch > 1 else 0)  # fmt: skip
        if self.dims == 1:
            return MAF(1, **common)
        return CouplingFlow(self.dims, seed=c["seed"] or 0, **common)

    def _parameters(self) -> list[torch.nn.Parameter]:
        params = list(self.flow.parameters())
        return params + (list(self.weights.parameters()) if self.weights is not None else [])

    # ----------------------------------------------------------------- drawing
    def _context(self, channel: Tensor) -> Tensor | None:
        n_ch = len(self.channels)
        if n_ch == 1:
            return None
        return torch.nn.functional.one_hot(channel, n_ch).to(self.flow.dtype)

    def _map(self, y: Tensor, channel: Tensor) -> tuple[Tensor, Tensor | None]:
        """Flow points (n, d) float64 -> integrand points (n, d) and (n,) Jacobians (or None)."""
        if len(self.channels) == 1 and self.maps[0] is None and self.channels[0].mapping is None:
            return y, None
        x = torch.empty_like(y)
        jac = torch.ones(len(y), dtype=y.dtype)
        for i, ch in enumerate(self.channels):
            mask = channel == i
            if not bool(mask.any()):
                continue
            u, j = y[mask], None
            if self.maps[i] is not None:
                u, j = self.maps[i](u)
            x[mask], jc = apply_mapping(ch, i, u)
            jac[mask] = jc if j is None else jc * j
        return x, jac

    def _evaluate(self, z: Tensor, channel: Tensor) -> Batch:
        """Push latent points (n, d) through the flow and evaluate the integrand."""
        with torch.no_grad():
            y, ladj = self.flow.to_data(z.to(self.flow.dtype), self._context(channel))
            log_qs = (self.flow.base.log_prob(z.to(self.flow.dtype)) - ladj).to(torch.float64)
        x, jac = self._map(y.to(torch.float64), channel)
        fx, n_bad = evaluate(self.f, x, self.config["drop_nonfinite"])
        self.calls += len(x)
        self.dropped += n_bad
        fj = fx if jac is None else fx * jac
        if self.mixture:
            # The point's own channel density is known from the draw: log q_flow - log J.
            own = log_qs if jac is None else log_qs - torch.log(jac)
            with torch.no_grad():
                log_prior = self._channel_log_densities(x, channel, own)
        else:
            log_prior = log_priors(self.channels, x) if len(self.channels) > 1 else None
        return Batch(y, channel, x, fj, log_qs, log_prior)

    def _channel_log_densities(
        self, x: Tensor, channel: Tensor | None = None, own: Tensor | None = None
    ) -> Tensor:
        """(n, C) log q_j(x): every channel's density at points x (n, d), in x-space.

        With ``channel`` (n,) and ``own`` (n,), each point's log-density in its
        own channel (known from drawing it), only the other channels are evaluated.
        """
        cols = []
        for j, ch in enumerate(self.channels):
            col = torch.empty(len(x), dtype=torch.float64) if own is None else own.clone()
            rows = torch.ones(len(x), dtype=torch.bool) if channel is None else channel != j
            if bool(rows.any()):
                u, jac = apply_inverse(ch, j, x[rows])
                ctx = self._context(torch.full((len(u),), j, dtype=torch.int64))
                log_q = self.flow.log_prob(u.to(self.flow.dtype), ctx).to(torch.float64)
                col[rows] = log_q - torch.log(jac)
            cols.append(col)
        return torch.stack(cols, dim=1)

    def _draw(self, n: int) -> Batch:
        """n fresh points, split over the channels by :attr:`fractions`."""
        return self._draw_counts(allocate(n, self.fractions))

    @staticmethod
    def _channel_labels(counts: list[int]) -> Tensor:
        return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))

    def _log_alpha(self, batch: Batch) -> Tensor:
        """(n,) log alpha_c(x) of each point's channel (with gradient when learned)."""
        if len(self.channels) == 1:
            return torch.zeros(len(batch.x), dtype=torch.float64)
        if self.weights is not None:
            log_a = self.weights(batch.x, batch.log_prior)
        elif self.mixture:
            log_a = torch.log_softmax(torch.log(self.fractions) + batch.log_prior, dim=1)
        elif batch.log_prior is not None:
            log_a = torch.log_softmax(batch.log_prior, dim=1)
        else:
            return torch.full((len(batch.x),), -math.log(len(self.channels)), dtype=torch.float64)
        return log_a.gather(1, batch.channel[:, None])[:, 0]

    def _weights(self, batch: Batch) -> Tensor:
        """(n,) weights alpha_c f J / q of a batch, each an estimate of its channel's I_c."""
        with torch.no_grad():
            return torch.exp(self._log_alpha(batch) - batch.log_qs) * batch.fj

    def _weighted_batches(self, n: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Yield ``(x, W, channel)``: points, weights whose mean estimates I, channels; n in all.

        Each batch is split over the channels by :attr:`fractions`; W = w b / n_c
        undoes that split, so every batch is an unbiased sample of the total.
        """
        n_ch = len(self.channels)
        if n < n_ch:
            raise ConfigError(f"ask for at least {n_ch} points (one per channel), got {n}")
        n_batches = max(math.ceil(n / batch_size), 1)
        sizes = [n // n_batches + (k < n % n_batches) for k in range(n_batches)]
        for b in sizes:
            counts = allocate(b, self.fractions)
            batch = self._draw_counts(counts)
            scale = torch.tensor([b / max(k, 1) for k in counts], dtype=torch.float64)
            yield batch.x, self._weights(batch) * scale[batch.channel], batch.channel

    def _draw_counts(self, counts: list[int]) -> Batch:
        n = sum(counts)
        z = torch.rand(n, self.dims, generator=self.generator, dtype=torch.float64)
        return self._evaluate(z, self._channel_labels(counts))

    def sample(self, n: int, batch_size: int = 100_000) -> tuple[Tensor, Tensor]:
        """Weighted samples: points and weights whose mean estimates I (n integrand calls).

        With one channel the weights are f / q.

        Args:
            n: number of points.
            batch_size: points per flow pass.

        Returns:
            ``(x, w)``: (n, d) float64 points in [0, 1]^d and (n,) weights.
        """
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        xs, ws = [], []
        for x, w, _ in self._weighted_batches(n, batch_size):
            xs.append(x)
            ws.append(w)
        return torch.cat(xs), torch.cat(ws)

    # ---------------------------------------------------------------- training
    #: Default points per training iteration: calls // divisor, clipped to [low, high]
    #: (subclasses with costlier points set their own).
    BATCH_RULE: tuple[int, int, int] = (500, 1000, 20_000)

    def _batch_size(self, calls: int) -> int:
        """Points per training iteration: ``batch_size`` if set, else :attr:`BATCH_RULE`."""
        b = self.config["batch_size"]
        divisor, low, high = self.BATCH_RULE
        return int(b) if b else int(min(max(calls // divisor, low), high))

    def train(
        self,
        calls: int | float,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 20,
    ) -> TrainingHistory:
        """Train the flow (and channel weights) with about ``calls`` integrand evaluations.

        Args:
            calls: integrand-call budget (VEGAS warm-up included).
            progress: show a progress bar.
            checkpoint: file to write the state to every ``checkpoint_every``
                iterations and at the end; if it exists and holds an unfinished
                training of this configuration, training resumes from it.
            checkpoint_every: iterations between checkpoints.

        Returns:
            The :class:`TrainingHistory` of this call.
        """
        calls = int(calls)
        if calls < 1:
            raise ConfigError(f"calls must be >= 1, got {calls}")
        history = TrainingHistory()
        start_calls = self.calls
        if checkpoint is not None and Path(checkpoint).exists():
            self._restore(checkpoint, training=True)
        if self._plan.get("budget") != calls or self._plan.get("done"):
            self._new_plan(calls)
        plan = self._plan
        if self.config["vegas"] and all(m is None for m in self.maps):
            used = self._adapt_vegas(int(self.config["vegas_fraction"] * calls))
            plan["iterations"] = max((calls - used) // plan["batch"], 1)
        opt = self._optimizer()
        steps_per_it = 1 + self.config["buffered_steps"]
        total_steps = plan["iterations"] * steps_per_it
        lr0 = self.config["lr"]

        def step(k: int, batch: Batch) -> float:
            # Cosine decay, computed from the iteration so that a resumed run continues it.
            done = min(plan["iteration"] * steps_per_it + k, total_steps)
            cosine_lr(opt, lr0, done, total_steps)
            return self._step(opt, batch)

        self.flow.train()
        with progress_bar(plan["iterations"], "training", enabled=progress) as bar:
            bar.advance(plan["iteration"])
            while plan["iteration"] < plan["iterations"]:
                batch = self._draw(plan["batch"])
                rel = self._record(batch, history)
                self._store(batch)
                loss = step(0, batch)
                history.loss.append(loss)
                for k in range(1, steps_per_it):
                    step(k, self._from_buffer(plan["batch"]))
                plan["iteration"] += 1
                bar.advance(loss=loss, rel_err=rel)
                if checkpoint is not None and plan["iteration"] % checkpoint_every == 0:
                    self.save(checkpoint)
        plan["done"] = 1
        self.flow.eval()
        if checkpoint is not None:
            self.save(checkpoint)
        history.calls = self.calls - start_calls
        return history

    def _record(self, batch: Batch, history: TrainingHistory) -> float:
        """Log a fresh batch's estimate and update the channel shares (see :attr:`fractions`)."""
        w = self._weights(batch)
        n_ch = len(self.channels)
        counts = torch.bincount(batch.channel, minlength=n_ch).to(torch.float64)
        zero = torch.zeros(n_ch, dtype=torch.float64)
        mean = zero.index_add(0, batch.channel, w) / counts.clamp_min(1)
        sq = zero.index_add(0, batch.channel, (w - mean[batch.channel]) ** 2)
        var = sq / (counts - 1).clamp_min(1)
        value = mean.sum().item()
        err = math.sqrt((var / counts.clamp_min(1)).sum().item())
        rel = err / abs(value) if value else math.inf
        history.integral.append(value)
        history.relative_error.append(rel)
        if n_ch > 1 and bool((counts > 1).all()):
            if self.mixture:
                # Kleiss-Pittau: p_i <- p_i sqrt(W_i), W_i = E_qi[(f/g)^2] (equal at the optimum).
                m2 = zero.index_add(0, batch.channel, (w / self.fractions[batch.channel]) ** 2)
                target = self.fractions * (m2 / counts).sqrt()
            else:  # n_i ~ sigma_i, the best allocation for a stratified sum
                target = var.sqrt()
            if target.sum() > 0:
                share = (0.5 * self.fractions + 0.5 * target / target.sum()).clamp_min(
                    MIN_CHANNEL_SHARE / n_ch
                )
                self.fractions = share / share.sum()
        return rel

    def _adapt_vegas(self, calls: int) -> int:
        """Adapt one VEGAS grid per channel to alpha_i^prior f J_i; returns the calls made."""
        n_ch = len(self.channels)
        used = 0
        for i, ch in enumerate(self.channels):

            def target(u: Tensor, i: int = i, ch: Channel = ch) -> Tensor:
                x, jac = apply_mapping(ch, i, u)
                fx, _ = evaluate(self.f, x, self.config["drop_nonfinite"])
                if n_ch > 1:
                    prior = log_priors(self.channels, x)
                    jac = jac * (
                        torch.softmax(prior, dim=1)[:, i] if prior is not None else 1.0 / n_ch
                    )
                return fx * jac

            self.maps[i], calls_i = adapt_vegas(target, self.dims, calls // n_ch,
                                                seed=self.config["seed"])  # fmt: skip
            used += calls_i
        self.calls += used
        return used

    def _new_plan(self, calls: int) -> None:
        batch = max(self._batch_size(calls), 2 * len(self.channels))
        self._plan = {"budget": calls, "batch": batch, "iteration": 0,
                      "iterations": max(calls // batch, 1), "done": 0}  # fmt: skip
        self._opt = None
        self._buffer = None

    def _optimizer(self) -> torch.optim.Optimizer:
        if self._opt is None:
            self._opt = torch.optim.Adam(self._parameters(), lr=self.config["lr"])
        return self._opt

    def _step(self, opt: torch.optim.Optimizer, batch: Batch) -> float:
        loss = self._mixture_loss(batch) if self.mixture else self._channel_loss(batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self._parameters(), 10.0)
        opt.step()
        return loss.item()

    def _channel_loss(self, batch: Batch) -> Tensor:
        """The loss of each channel's alpha_c f J / q_c (learned or prior channel weights)."""
        n_ch = len(self.channels)
        log_q = self.flow.log_prob(batch.y, self._context(batch.channel)).to(torch.float64)
        g = batch.fj * torch.exp(self._log_alpha(batch))
        if self.config["loss"] == "variance":
            return channel_variance(g, batch.log_qs, log_q, batch.channel, n_ch)
        loss_fn = get_loss(self.config["loss"])
        parts = [
            loss_fn(g.detach()[m], batch.log_qs[m], log_q[m])
            for m in (batch.channel == i for i in range(n_ch))
            if bool(m.any())
        ]
        loss = torch.stack(parts).mean()
        if self.weights is not None:  # the channel weights learn from the variance
            loss = loss + channel_variance(g, batch.log_qs, log_q.detach(), batch.channel, n_ch)
        return loss

    def _mixture_loss(self, batch: Batch) -> Tensor:
        """The loss of f / g with g = sum_j p_j q_j(x), gradients through every channel flow."""
        log_p = torch.log(self.fractions)
        log_g_old = torch.logsumexp(log_p + batch.log_prior, dim=1)
        log_g = torch.logsumexp(log_p + self._channel_log_densities(batch.x), dim=1)
        # f(x) = f J_c / J_c with log J_c = log q_c(r) - log q_c(x) at drawing.
        own = batch.log_prior.gather(1, batch.channel[:, None])[:, 0]
        fx = batch.fj * torch.exp(own - batch.log_qs)
        return get_loss(self.config["loss"])(fx, log_g_old, log_g)

    def _store(self, batch: Batch) -> None:
        cols = [batch.y.to(torch.float64), batch.channel[:, None].to(torch.float64), batch.x,
                batch.fj[:, None], batch.log_qs[:, None]]  # fmt: skip
        if batch.log_prior is not None:
            cols.append(batch.log_prior)
        row = torch.cat(cols, dim=1)
        cap = self.config["buffer_batches"] * self._plan["batch"]
        buf = row if self._buffer is None else torch.cat((self._buffer, row))
        self._buffer = buf[-cap:]

    def _from_buffer(self, n: int) -> Batch:
        buf = self._buffer
        rows = buf[torch.randint(len(buf), (n,), generator=self.generator)]
        d = self.dims
        return Batch(
            y=rows[:, :d].to(self.flow.dtype), channel=rows[:, d].to(torch.int64),
            x=rows[:, d + 1 : 2 * d + 1], fj=rows[:, 2 * d + 1], log_qs=rows[:, 2 * d + 2],
            log_prior=rows[:, 2 * d + 3 :] if rows.shape[1] > 2 * d + 3 else None,
        )  # fmt: skip

    # ------------------------------------------------------------- estimation
    def integrate(
        self,
        calls: int | float,
        batch_size: int = 100_000,
        progress: bool = False,
        quantile: float = 0.999,
        exact: float | None = None,
        stratified: bool = True,
    ) -> IntegrationResult:
        """Estimate the integral from ``calls`` fresh samples (never training samples).

        Points go to the channels in proportion to their weight spread (fixed
        before drawing, so the estimate stays unbiased); within a channel the
        flow's latent cube is stratified into hypercubes of >= 2 points.

        Args:
            calls: number of fresh points.
            batch_size: points per flow pass.
            progress: show a progress bar.
            quantile: quantile of |w| for the robust unweighting efficiency.
            exact: the exact value, if known, for the pull in the summary
                (taken from ``f.exact`` when the integrand has it).
            stratified: stratify the latent cube (else plain sampling).

        Returns:
            An :class:`IntegrationResult` with per-channel contributions.
        """
        calls = int(calls)
        n_ch = len(self.channels)
        if calls < 2 * n_ch:
            raise ConfigError(
                f"integrate needs at least {2 * n_ch} calls (2 per channel), got {calls}"
            )  # noqa: E501
        self.flow.eval()
        dropped0 = self.dropped
        counts = allocate(calls, self.fractions, minimum=2)
        channel = self._channel_labels(counts)
        cubes, strata = [], []
        for n_i in counts:
            if stratified:
                cube, m = hypercube_assignment(n_i, self.dims, self.generator)
            else:
                cube, m = torch.zeros(n_i, dtype=torch.int64), 1
            cubes.append(cube)
            strata.append(m)
        cube = torch.cat(cubes)
        m_point = torch.tensor(strata)[channel]
        w = torch.empty(calls, dtype=torch.float64)
        with progress_bar(calls, "integrating", enabled=progress) as bar:
            for start in range(0, calls, batch_size):
                s = slice(start, min(start + batch_size, calls))
                z = points_in_cubes(cube[s], m_point[s], self.dims, self.generator)
                w[s] = self._weights(self._evaluate(z, channel[s]))
                bar.advance(s.stop - s.start)
        value, variance, parts, weights = 0.0, 0.0, [], []
        offsets = [0, *torch.tensor(counts).cumsum(0).tolist()]
        for i, ch in enumerate(self.channels):
            s = slice(offsets[i], offsets[i + 1])
            v_i, var_i, w_i = stratified_estimate(w[s], cube[s])
            value, variance = value + v_i, variance + var_i
            weights.append(w_i * calls / counts[i])
            parts.append(ChannelResult(i, v_i, math.sqrt(var_i), counts[i], ch.name))
        if exact is None:
            exact = getattr(self.f, "exact", None)
        return IntegrationResult(
            value=value, error=math.sqrt(variance), calls=calls, dropped=self.dropped - dropped0,
            exact=exact, total_calls=self.total_calls, channels=parts if n_ch > 1 else [],
            **weight_statistics(torch.cat(weights), quantile),
        )  # fmt: skip

    def generate(
        self,
        n_events: int,
        rule: str = "quantile",
        quantile: float = 0.999,
        wmax_calls: int | None = None,
        batch_size: int = 100_000,
        max_calls: int | None = None,
        progress: bool = True,
    ) -> Events:
        """Generate unweighted events.

        w_max comes from a first sample of ``wmax_calls`` points by ``rule``
        (``"quantile"``: that quantile of |w|, overweight events kept with
        weight |w|/w_max; ``"max"``: the maximum). Then batches are drawn and
        accept-rejected until ``n_events`` are accepted. sigma is the mean
        weight over every point drawn here.

        Args:
            n_events: events wanted.
            rule: w_max rule.
            quantile: quantile for the ``quantile`` rule.
            wmax_calls: points for the w_max estimate (default max(100000, 10 n_events)).
            batch_size: points per batch.
            max_calls: stop with an error beyond this many calls (default 10^4 n_events
                or 10^9, whichever is smaller).
            progress: progress bar over accepted events.

        Returns:
            The :class:`Events` (with the channel that produced each event).
        """
        if n_events < 1:
            raise ConfigError(f"n_events must be >= 1, got {n_events}")
        self.flow.eval()
        calls0 = self.calls
        wmax_calls = int(wmax_calls or max(100_000, 10 * n_events))
        max_calls = int(max_calls or min(10_000 * n_events, 10**9))
        gen = self.generator
        s1, s2, n = 0.0, 0.0, 0
        xs, weights, channels, accepted = [], [], [], 0
        w_max = mean_abs = None
        with progress_bar(n_events, "generating", enabled=progress) as bar:
            while accepted < n_events:
                if self.calls - calls0 >= max_calls:
                    raise ConfigError(
                        f"only {accepted} of {n_events} events after {max_calls:,} calls: the "
                        "efficiency is too low; train longer or raise max_calls"
                    )
                size = wmax_calls if w_max is None else batch_size
                x, w, ch = (torch.cat(t) for t in zip(*self._weighted_batches(size, batch_size),
                                                       strict=True))  # fmt: skip
                if w_max is None:
                    w_max = choose_wmax(w, rule, quantile)
                    mean_abs = w.abs().mean().item()
                s1, s2, n = s1 + w.sum().item(), s2 + (w**2).sum().item(), n + len(w)
                # Shuffle: batches are ordered by channel and the last one is cut at n_events.
                order = torch.randperm(len(w), generator=gen)
                xc = torch.cat((x, ch[:, None].to(x.dtype)), 1)[order]
                xa, wa = unweight(xc, w[order], w_max, gen)
                xs.append(xa[:, :-1])
                channels.append(xa[:, -1].to(torch.int64))
                weights.append(wa)
                bar.advance(min(len(xa), n_events - accepted))
                accepted += len(xa)
        w_all = torch.cat(weights)[:n_events]
        sigma = s1 / n
        err = math.sqrt(max(s2 / n - sigma**2, 0.0) / n)
        return Events(
            x=torch.cat(xs)[:n_events], weights=w_all, sigma=sigma, sigma_error=err,
            w_max=w_max, rule=rule, quantile=quantile, efficiency=mean_abs / w_max,
            overweight_fraction=(w_all.abs() > 1).to(torch.float64).mean().item(),
            calls=self.calls - calls0, channel=torch.cat(channels)[:n_events],
            channel_names=[c.name for c in self.channels],
        )  # fmt: skip

    # ------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> None:
        """Save flow, VEGAS grid, optimiser, buffer and counters (safetensors, atomic)."""
        tensors = {f"flow.{k}": v.detach().contiguous() for k, v in self.flow.state_dict().items()}
        for i, vmap in enumerate(self.maps):
            if vmap is not None:
                tensors[f"map.{i}.grid"] = vmap.grid
                tensors[f"map.{i}.ninc"] = vmap.ninc
        if self.weights is not None:
            for k, v in self.weights.state_dict().items():
                tensors[f"alpha.{k}"] = v.detach().contiguous()
        tensors["fractions"] = self.fractions
        tensors["rng"] = self.generator.get_state()
        if self._buffer is not None:
            tensors["buffer"] = self._buffer.contiguous()
        opt_meta: dict[str, Any] = {}
        if self._opt is not None:
            opt_tensors, opt_meta = optimizer_tensors(self._opt)
            tensors |= opt_tensors
        tensors |= self._extra_tensors()
        meta = {
            "format": FORMAT,
            "hepflows_version": hepflows.__version__,
            "config": json.dumps(self.config),
            "state": json.dumps(
                {
                    "calls": self.calls,
                    "grad_calls": self.grad_calls,
                    "dropped": self.dropped,
                    "plan": self._plan,
                    "opt": opt_meta,
                    **self._extra_state(),
                }
            ),  # fmt: skip
        }
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(
        cls, path: str | os.PathLike, f: Integrand, channels: Sequence[Channel] | None = None
    ) -> NeuralIntegrator:
        """Rebuild a saved integrator for the integrand ``f`` (no pickled code is run).

        Args:
            path: file written by :meth:`save` (or a training checkpoint).
            f: the integrand (code is never stored in the file).
            channels: the same channels as at saving (mappings are code, not stored).
        """
        meta = _read_meta(path)
        config = json.loads(meta["config"])
        kwargs = {k: v for k, v in config.items() if k not in ("dims", "channels")}
        kwargs["hidden"] = tuple(kwargs["hidden"])
        names = check_channels(channels)
        if [ch.name for ch in names] != config["channels"]:
            raise CheckpointError(
                f"{path} holds an integrator with channels {config['channels']}, got "
                f"{[ch.name for ch in names]}: pass the same channels to load()"
            )
        integ = cls(f, config["dims"], channels=channels, **kwargs)
        integ._restore(path, training=True)
        return integ

    def _restore(self, path: str | os.PathLike, training: bool) -> None:
        meta = _read_meta(path)
        config = json.loads(meta["config"])
        if config != self.config:
            diff = {k: (config.get(k), v) for k, v in self.config.items() if config.get(k) != v}
            raise CheckpointError(
                f"{path} was written by an integrator with another configuration "
                f"(file vs now: {diff}); use another checkpoint path or the same settings"
            )
        tensors = load_file(str(path))
        state = json.loads(meta["state"])
        flow_state = {k[5:]: v for k, v in tensors.items() if k.startswith("flow.")}
        try:
            self.flow.load_state_dict(flow_state)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: flow weights do not fit: {err}") from None
        self.maps = [
            VegasMap(tensors[f"map.{i}.grid"], tensors[f"map.{i}.ninc"])
            if f"map.{i}.grid" in tensors else None
            for i in range(len(self.channels))
        ]  # fmt: skip
        if self.weights is not None:
            alpha = {k[6:]: v for k, v in tensors.items() if k.startswith("alpha.")}
            try:
                self.weights.load_state_dict(alpha)
            except RuntimeError as err:
                msg = f"{path}: channel-weight network does not fit: {err}"
                raise CheckpointError(msg) from None
        self.fractions = tensors["fractions"]
        self.generator.set_state(tensors["rng"])
        self.calls, self.dropped = state["calls"], state["dropped"]
        self.grad_calls = state.get("grad_calls", 0)
        self._plan = state["plan"]
        self._buffer = tensors.get("buffer")
        self._opt = None
        if training and state["opt"]:
            load_optimizer_tensors(self._optimizer(), tensors, state["opt"])
        self._restore_extra(tensors, state)

    # Hooks for subclasses with more state (FAB's replay buffer and step sizes).
    def _extra_tensors(self) -> dict[str, Tensor]:
        return {}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _restore_extra(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        pass


def _read_meta(path: str | os.PathLike) -> dict[str, str]:
    return read_metadata(path, FORMAT, "integrator", "save it again with NeuralIntegrator.save")
