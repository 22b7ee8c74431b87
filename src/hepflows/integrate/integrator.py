"""Neural importance sampling on the unit cube or R^d (i-flow 2001.05486, MadNIS 2212.06172).

:class:`NeuralIntegrator` owns a bounded rational-quadratic spline coupling
flow q(x) on [0, 1]^d (uniform base; ``domain="real"``: on R^d with a
Gaussian base), the channels, the estimates, unweighting and
checkpoints. *How* the flow learns is a trainer object
(:mod:`hepflows.integrate.trainers`): importance-weighted losses with a
sample buffer (the default: variance, KL, reverse KL, moment<p>), FAB, or
the pathwise reverse KL; every trainer runs on the shared
:class:`hepflows.training.Engine`. Optional pieces:

* multi-channel integration (MadNIS): user channels (mappings with their
  Jacobians and prior weights, :mod:`hepflows.integrate.channels`), one flow
  conditioned on the channel, channel weights alpha_i(x) (mixture, learned or
  prior), samples allocated per channel, per-channel contributions in the
  result;
* a VEGAS warm start: a grid adapted by the ``vegas`` package (one per
  channel) becomes a fixed change of variables in front of the flow, which
  then learns what a separable grid cannot;
* stratified estimates: the flow's latent unit cube is split into
  hypercubes (:mod:`hepflows.integrate.stratified`), as VEGAS does in its
  own variables;
* checkpoints: ``train(..., checkpoint=path)`` writes the whole state
  atomically and resumes from it after a crash; :meth:`NeuralIntegrator.load`
  restores any saved integrator, whatever its trainer.

Integrand calls are counted in :attr:`NeuralIntegrator.calls` (density) and
:attr:`NeuralIntegrator.grad_calls` (gradient, for trainers that use it).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

import hepflows
from hepflows.device import generator_on, resolve_device, stream_key
from hepflows.distributed import (
    all_gather_cat,
    all_reduce_sum,
    broadcast_tensors,
    is_distributed,
    is_main,
    rank,
    rank_generator,
    share,
    world_size,
)
from hepflows.errors import CheckpointError, ConfigError
from hepflows.flows import MAF, CouplingFlow
from hepflows.flows.flows import ConfiguredFlow
from hepflows.integrate.buffer import Batch
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
from hepflows.integrate.result import ChannelResult, IntegrationResult, weight_statistics
from hepflows.integrate.stratified import (
    hypercube_assignment,
    points_in_cubes,
    stratified_estimate,
)
from hepflows.integrate.trainers import Trainer, TrainingHistory, make_trainer
from hepflows.integrate.unweighting import choose_wmax, unweight_shuffled
from hepflows.integrate.vegas_map import VegasMap, adapt_vegas
from hepflows.io.atomic import atomic_write, read_metadata
from hepflows.io.events import Events
from hepflows.progress import progress_bar
from hepflows.random import fresh_seed, seeded
from hepflows.training import Callback, Checkpoint, Engine
from hepflows.training.engine import OptimizerFactory, SchedulerFactory

FORMAT = "hepflows-integrator"
#: No channel gets less than this share of the channel allocation, over C.
MIN_CHANNEL_SHARE = 0.1
#: Keys of the integrator's own configuration (the trainer's are under "trainer").
CONFIG_KEYS = ("dims", "seed", "channels", "weights", "transforms", "bins", "hidden", "vegas",
               "vegas_fraction", "drop_nonfinite", "trainer", "domain",
               "drop_channels")  # fmt: skip
#: ``weights="auto"`` takes the mixture up to this many channels (each point costs one flow
#: pass per channel), learned weights above: 60 channels of ``comb`` (6e4 + 6e4 calls)
#: took 10 s learned, 303 s as a mixture.
MAX_MIXTURE_CHANNELS = 8
#: Shares-of-the-integral updates a channel is watched for before it may be dropped.
DROP_AFTER = 3
#: ... and the points each active channel must have had on average by then: with 78
#: channels and 500-point batches, 3 updates are ~20 points a channel, and the noisy
#: shares dropped a major channel (p p -> 3 jets, docs/multijet.md).
DROP_MIN_POINTS = 200
#: Where an integrand may live: the unit cube (uniform base) or R^d (Gaussian base).
DOMAINS = ("unit", "real")
#: Uniforms are kept this far above 0 before Phi^-1 (torch.rand can return 0).
U_FLOOR = 2.0**-54


def default_transforms(dims: int) -> int:
    """Coupling blocks by dimension: enough for every pair of features to meet."""
    return max(4, 2 * math.ceil(math.log2(max(dims, 2))) + 2)


def combine(estimates: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Inverse-variance weighted mean of independent (value, variance) estimates.

    Estimates with zero variance (exact) dominate; returns ``(value, variance)``.
    """
    estimates = [(v, var) for v, var in estimates if math.isfinite(var)]
    exact = [v for v, var in estimates if var <= 0]
    if exact:
        return sum(exact) / len(exact), 0.0
    inv = sum(1.0 / var for _, var in estimates)
    return sum(v / var for v, var in estimates) / inv, 1.0 / inv


def pool_channels(
    per_rank: Sequence[tuple[float, float, int, Tensor]], stratified: bool
) -> list[tuple[float, float, int, Tensor]]:
    """Per-channel estimates pooled over the ranks (every rank gets the same result).

    Each entry is this rank's ``(value, variance, n, w (n,))`` of one channel.
    Unstratified, the ranks' sums of w and w^2 are added, so the result is the
    plain Monte-Carlo formula on all N = sum n_r points, exactly as one process
    drawing them all; stratified (independent strata per rank), the ranks'
    estimates are combined with weights n_r / N: I = sum n_r I_r / N,
    Var = sum n_r^2 Var_r / N^2.

    Returns:
        ``(value, variance, N, w)`` per channel (w: this rank's weights, unchanged).
    """
    rows = []
    for v, var, n, w in per_rank:
        w = w.to(torch.float64)
        rows.append([float(w.sum()), float((w * w).sum()), float(n), n * v, n * n * var])
    pooled = all_reduce_sum(torch.tensor(rows, dtype=torch.float64, device="cpu"))
    out = []
    for (s1, s2, n, nv, n2var), (*_, w) in zip(pooled.tolist(), per_rank, strict=True):
        if stratified:
            value, variance = nv / n, n2var / n**2
        else:
            value = s1 / n
            variance = max(s2 / n - value**2, 0.0) / max(n - 1, 1)
        out.append((value, variance, int(n), w))
    return out


class NeuralIntegrator:
    """Integrate ``f`` over [0, 1]^d (or R^d) and generate events with a normalizing flow.

    Args:
        f: batched integrand, (n, d) float64 in [0, 1]^d (``domain="real"``:
            in R^d) -> (n,); may be signed (the default trainer); FAB and the
            pathwise KL need a non-negative, torch-differentiable f. A density
            that also has ``f.log_prob(x)`` (log f, e.g.
            :class:`~hepflows.integrate.targets.ManyWell`) gives the gradient
            trainers log f directly, without the overflow or underflow of
            exp and log in the far tails.
        dims: d.
        seed: seed of the flow initialisation and of every random draw (the
            integrator owns its generator; the global torch RNG is not touched).
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
            ``"auto"`` (default): mixture when every channel is invertible and there
            are at most :data:`MAX_MIXTURE_CHANNELS`, else learned. On Drell-Yan with
            a Z' the mixture cut the largest weight from 2.4 to 1.8 times the mean
            (benchmarks/drell_yan.py).
        loss: shortcut for the default trainer's loss: ``"variance"`` (default),
            ``"moment<p>"`` (e.g. ``"moment32"``), ``"kl"`` or ``"rkl"``.
        transforms: coupling blocks (default grows with log2 d).
        bins: spline bins.
        hidden: conditioner hidden widths.
        lr, batch_size, buffered_steps, buffer_batches: options of the trainer
            named by ``trainer``/``loss`` (see :mod:`hepflows.integrate.trainers`);
            ``None`` keeps the trainer's default.
        vegas: warm start from VEGAS grids (default: for one channel in
            d <= 4, where a separable grid captures most of the structure
            cheaply, and trainers that allow it; channel mappings already do
            that job, and a grid per channel from a split budget was measured
            to hurt).
        vegas_fraction: share of the training calls spent adapting VEGAS
            (default 0.5 for d <= 2, where the grid does most of the work,
            else 0.25; measured on camel, benchmarks/integration.py).
        drop_nonfinite: count NaN/inf integrand values as 0 (reported)
            instead of stopping with an error.
        drop_channels: channel dropping (MadNIS): a channel whose share of the integral
            (I_i / I, averaged over the training iterations) stays below this value is
            dropped during training: it gets no more points, its alpha_i is 0 and the
            other channels' weights take over its part of f (they must cover its region:
            every channel here maps the whole cube, mixtures need the union of their
            supports). :attr:`dropped_channels` reports them. ``None`` (default) keeps all.
        trainer: the training strategy: a :class:`~hepflows.integrate.trainers.Trainer`
            object (``ImportanceTrainer(loss="moment32")``, ``FAB()``,
            ``PathwiseKL()``, your own) or a name (``"fab"``, ``"pathwise-kl"``,
            or a loss of the importance trainer). Default: the importance
            trainer with ``loss``.
        device: where the flow, the points and the random streams live: ``"cpu"``
            (default), ``"cuda"`` (under torchrun each rank takes ``cuda:LOCAL_RANK``);
            not ``"mps"``, which has no float64. The integrand is called with
            points on this device; results (events, estimates) come back on the CPU.
        domain: ``"unit"`` (default): f lives on [0, 1]^d, the flow maps a
            uniform base onto the cube; ``"real"``: f lives on R^d (a sampling
            target such as the Many-Well), the flow has a standard normal base
            and splines on [-5, 5] with identity tails, so f should have most
            of its mass within a few units of the origin (standardise it
            first). One channel, no VEGAS warm start.

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
        loss: str | None = None,
        transforms: int | None = None,
        bins: int = 8,
        hidden: tuple[int, ...] = (32, 32),
        lr: float | None = None,
        batch_size: int | None = None,
        buffered_steps: int | None = None,
        buffer_batches: int | None = None,
        vegas: bool | None = None,
        vegas_fraction: float | None = None,
        drop_nonfinite: bool = False,
        drop_channels: float | None = None,
        trainer: Trainer | str | None = None,
        device: str | torch.device | None = None,
        domain: str = "unit",
    ) -> None:
        if not callable(f):
            kind = type(f).__name__
            raise ConfigError(f"the integrand must be callable f(x) -> (n,), got {kind}")
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ConfigError(f"dims must be a positive int, got {dims!r}")
        if trainer is not None and loss is not None:
            raise ConfigError("give either trainer= or loss= (a loss names the default trainer)")
        if domain not in DOMAINS:
            raise ConfigError(f"domain must be one of {DOMAINS}, got {domain!r}")
        if domain == "real" and (channels is not None or vegas):
            raise ConfigError("domain='real' integrates on R^d with one channel and no VEGAS "
                              "grid (both work on the unit cube): drop channels= and "
                              "vegas=")  # fmt: skip
        try:
            self.trainer = make_trainer(
                trainer if trainer is not None else (loss or "variance"), lr=lr,
                batch_size=batch_size, buffered_steps=buffered_steps,
                buffer_batches=buffer_batches,
            )  # fmt: skip
        except TypeError as err:
            raise ConfigError(f"an option does not fit the trainer: {err}") from None
        if vegas_fraction is None:
            vegas_fraction = 0.5 if dims <= 2 else 0.25
        if not 0 < vegas_fraction < 1:
            raise ConfigError(f"vegas_fraction must lie in (0, 1), got {vegas_fraction}")
        self.f = f
        self.dims = dims
        self.channels = check_channels(channels)
        n_ch = len(self.channels)
        if n_ch > 1 and not self.trainer.multichannel:
            raise ConfigError(
                f"the {self.trainer.label} trainer handles one channel; drop the channels or "
                "use the importance trainer"
            )
        if vegas and not self.trainer.warm_start:
            raise ConfigError(f"the {self.trainer.label} trainer has no VEGAS warm start: "
                              "pass vegas=False")  # fmt: skip
        weights = self._weights_mode(weights)
        if weights == "mixture" and vegas:
            raise ConfigError(
                "mixture channel weights cannot be combined with a VEGAS warm start (its grid "
                "has no inverse here); pass vegas=False or weights='learned'"
            )
        if drop_channels is not None and not 0 < drop_channels < 1:
            raise ConfigError(f"drop_channels is a share of the integral in (0, 1), got "
                              f"{drop_channels}")  # fmt: skip
        default_vegas = dims <= 4 and n_ch == 1 and self.trainer.warm_start and domain == "unit"
        self.config: dict[str, Any] = dict(
            dims=dims, seed=seed, channels=[ch.name for ch in self.channels], weights=weights,
            transforms=transforms or default_transforms(dims), bins=bins, hidden=list(hidden),
            vegas=default_vegas if vegas is None else bool(vegas),
            vegas_fraction=vegas_fraction, drop_nonfinite=drop_nonfinite,
            trainer=self.trainer.describe(), domain=domain, drop_channels=drop_channels,
        )  # fmt: skip
        #: The device of the flow, the points and the random streams.
        self.device = resolve_device(device, float64=True)
        init_seed = seed if seed is not None else fresh_seed()
        # Module initialisation on the CPU (the same weights on any device), seeded; the
        # caller's RNG is restored after.
        with seeded(init_seed), torch.device("cpu"):
            self.flow = self._make_flow()
            #: MadNIS' learned channel-weight network (``weights="learned"``), else None.
            self.channel_weights = ChannelWeights(dims, n_ch) if weights == "learned" else None
        self.flow.to(self.device)
        if self.channel_weights is not None:
            self.channel_weights.to(self.device)
        self.maps: list[VegasMap | None] = [None] * n_ch
        #: Share of the points each channel gets: proportional to its weight spread
        #: (learned/prior weights), or the Kleiss-Pittau shares p_i (mixture weights).
        self.fractions = torch.full((n_ch,), 1.0 / n_ch, dtype=torch.float64, device=self.device)
        #: Running share of the integral per channel (channel dropping) and its updates.
        self.integral_shares = torch.full_like(self.fractions, 1.0 / n_ch)
        self.share_updates = 0
        #: Channels dropped in training: (name, share of the integral when dropped).
        self.dropped_channels: list[tuple[str, float]] = []
        #: The integrator's own random stream: every draw (flow samples, strata,
        #: unweighting, buffers, HMC) comes from it.
        self.generator = generator_on(self.device, init_seed)
        self._rekey_for_rank(init_seed)
        #: Density evaluations of f so far (training and estimates).
        self.calls = 0
        #: Gradient evaluations of f (trainers that use grad f; each counts as one call
        #: in budgets). Always 0 for the importance trainer.
        self.grad_calls = 0
        #: Points whose integrand value was NaN/inf and counted as 0 (``drop_nonfinite``).
        self.dropped = 0
        #: The current training plan: budget, batch, iterations, done.
        self.plan: dict[str, int] = {}
        self._engine: Engine | None = None
        self._engine_state: tuple[dict[str, Tensor], dict[str, Any]] | None = None

    def _rekey_for_rank(self, seed: int) -> None:
        """Under ``torchrun``: a stream of this rank's own, keyed by (seed, rank), so that
        the ranks draw different points (training, estimates)."""
        if is_distributed():
            self.generator = rank_generator(seed, rank(), self.device)

    # ----------------------------------------------------------- construction
    def _weights_mode(self, weights: str) -> str:
        modes = ("auto", "mixture", "learned", "prior")
        if len(self.channels) == 1 and weights in (*modes, "single"):
            return "single"  # one channel: nothing to weight ("single" is what save writes)
        if weights not in modes:
            raise ConfigError(f"weights must be one of {modes}, got {weights!r}")
        invertible = all(ch.invertible for ch in self.channels)
        if weights == "auto":
            few = len(self.channels) <= MAX_MIXTURE_CHANNELS
            return "mixture" if invertible and few else "learned"
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
                      domain=c["domain"], context=n_ch if n_ch > 1 else 0)  # fmt: skip
        if self.dims == 1:
            return MAF(1, **common)
        return CouplingFlow(self.dims, seed=c["seed"] or 0, **common)

    def parameters(self) -> list[torch.nn.Parameter]:
        """The trainable parameters: the flow's and the channel-weight network's."""
        params = list(self.flow.parameters())
        cw = self.channel_weights
        return params + (list(cw.parameters()) if cw is not None else [])

    @property
    def domain(self) -> str:
        """``"unit"`` (f on [0, 1]^d, uniform base) or ``"real"`` (f on R^d, Gaussian base)."""
        return self.config["domain"]

    def latent(self, u: Tensor) -> Tensor:
        """(n, d) float64 uniforms -> (n, d) points of the flow's base distribution.

        On the unit cube the base is uniform (u itself); on R^d it is standard
        normal, z = Phi^-1(u). Every draw starts from uniforms, so stratification
        and the random streams are the same for both domains.
        """
        if self.domain == "unit":
            return u
        return torch.special.ndtri(u.clamp_min(U_FLOOR))

    def flow_sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """n points of the flow (n, d) float64 and their log q (n,) float64, with gradient.

        Draws from ``generator`` (default :attr:`generator`); one channel only.
        """
        gen = self.generator if generator is None else generator
        u = torch.rand(n, self.dims, generator=gen, dtype=torch.float64, device=self.device)
        z = self.latent(u).to(self.flow.dtype)
        x, ladj = self.flow.to_data(z)
        return x.to(torch.float64), (self.flow.base.log_prob(z) - ladj).to(torch.float64)

    def count(self, density: int = 0, gradient: int = 0) -> None:
        """Count integrand evaluations made outside :meth:`draw` (trainers calling f)."""
        self.calls += int(density)
        self.grad_calls += int(gradient)

    # ----------------------------------------------------------------- drawing
    def context(self, channel: Tensor) -> Tensor | None:
        """(n, C) one-hot flow context of (n,) channel labels (``None`` for one channel)."""
        n_ch = len(self.channels)
        if n_ch == 1:
            return None
        return torch.nn.functional.one_hot(channel, n_ch).to(self.flow.dtype)

    def _map(self, y: Tensor, channel: Tensor) -> tuple[Tensor, Tensor | None]:
        """Flow points (n, d) float64 -> integrand points (n, d) and (n,) Jacobians (or None)."""
        if len(self.channels) == 1 and self.maps[0] is None and self.channels[0].mapping is None:
            return y, None
        x = torch.empty_like(y)
        jac = torch.ones(len(y), dtype=y.dtype, device=y.device)
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

    def _push(self, z: Tensor, channel: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Latent points (n, d) -> flow points y, their float64 log-density log q(y), the
        integrand points x and |dx/dy| (or None): no integrand calls."""
        with torch.no_grad():
            zb = self.latent(z).to(self.flow.dtype)
            y, ladj = self.flow.to_data(zb, self.context(channel))
            log_qs = (self.flow.base.log_prob(zb) - ladj).to(torch.float64)
        x, jac = self._map(y.to(torch.float64), channel)
        return y, log_qs, x, jac

    def _evaluate(self, z: Tensor, channel: Tensor) -> Batch:
        """Push latent points (n, d) through the flow and evaluate the integrand."""
        y, log_qs, x, jac = self._push(z, channel)
        fx, n_bad = evaluate(self.f, x, self.config["drop_nonfinite"])
        self.calls += len(x)
        self.dropped += n_bad
        fj = fx if jac is None else fx * jac
        if self.mixture:
            # The point's own channel density is known from the draw: log q_flow - log J.
            own = log_qs if jac is None else log_qs - torch.log(jac)
            with torch.no_grad():
                log_prior = self.channel_log_densities(x, channel, own)
        else:
            log_prior = log_priors(self.channels, x) if len(self.channels) > 1 else None
        return Batch(y, channel, x, fj, log_qs, log_prior)

    def channel_log_densities(
        self, x: Tensor, channel: Tensor | None = None, own: Tensor | None = None
    ) -> Tensor:
        """(n, C) log q_j(x): every channel's density at points x (n, d), in x-space.

        With ``channel`` (n,) and ``own`` (n,), each point's log-density in its
        own channel (known from drawing it), only the other channels are evaluated.
        """
        cols = []
        for j, ch in enumerate(self.channels):
            col = (torch.empty(len(x), dtype=torch.float64, device=x.device) if own is None
                   else own.clone())  # fmt: skip
            rows = (torch.ones(len(x), dtype=torch.bool, device=x.device) if channel is None
                    else channel != j)  # fmt: skip
            if self.fractions[j] == 0:  # dropped: weight 0 in the mixture, not evaluated
                col[rows] = 0.0
            elif bool(rows.any()):
                u, jac = apply_inverse(ch, j, x[rows])
                ctx = self.context(torch.full((len(u),), j, dtype=torch.int64, device=x.device))
                log_q = self.flow.log_prob(u.to(self.flow.dtype), ctx).to(torch.float64)
                col[rows] = log_q - torch.log(jac)
            cols.append(col)
        return torch.stack(cols, dim=1)

    def propose(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """n points of the sampler and its log-density there, **without integrand calls**
        (for a surrogate's first unweighting stage, :func:`~hepflows.integrate.
        unweighting.two_stage_unweight`).

        With several channels the sampler is their mixture with weights :attr:`fractions`
        (``weights="mixture"``): q(x) = sum_c a_c q_c(x), so f / q are the weights
        :meth:`sample` gives.

        Returns:
            ``(x, log_q)``: (n, d) float64 points in [0, 1]^d and (n,) float64 log q(x).
        """
        if len(self.channels) > 1 and not self.mixture:
            raise ConfigError("a multi-channel sampler with learned or prior channel weights "
                              "has no single density: build it with weights='mixture'")
        if n < len(self.channels):
            raise ConfigError(f"ask for at least {len(self.channels)} points, got {n}")
        counts = allocate(n, self.fractions)
        channel = self._channel_labels(counts)
        gen = self.generator if generator is None else generator
        z = torch.rand(n, self.dims, generator=gen, dtype=torch.float64, device=self.device)
        with torch.no_grad():
            _, log_qs, x, jac = self._push(z, channel)
            own = log_qs if jac is None else log_qs - torch.log(jac)
            if len(self.channels) == 1:
                return x, own
            log_qc = self.channel_log_densities(x, channel, own)
            return x, torch.logsumexp(torch.log(self.fractions) + log_qc, dim=1)

    def draw(self, n: int) -> Batch:
        """n fresh points (n integrand calls), split over the channels by :attr:`fractions`."""
        return self._draw_counts(allocate(n, self.fractions))

    def _channel_labels(self, counts: list[int]) -> Tensor:
        dev = self.device
        return torch.repeat_interleave(torch.arange(len(counts), device=dev),
                                       torch.tensor(counts, device=dev))  # fmt: skip

    def log_q(self, batch: Batch) -> Tensor:
        """(n,) float64 current flow log-density of a batch's flow points, with gradient."""
        return self.flow.log_prob(batch.y, self.context(batch.channel)).to(torch.float64)

    def log_alpha(self, batch: Batch) -> Tensor:
        """(n,) log alpha_c(x) of each point's channel (with gradient when learned)."""
        if len(self.channels) == 1:
            return torch.zeros(len(batch.x), dtype=torch.float64, device=batch.x.device)
        if self.mixture:
            log_a = torch.log_softmax(torch.log(self.fractions) + batch.log_prior, dim=1)
            return log_a.gather(1, batch.channel[:, None])[:, 0]
        log_prior = batch.log_prior
        if self.dropped_channels:  # alpha_i = 0 for dropped channels
            mask = torch.where(self.fractions > 0, 0.0, -math.inf).to(batch.x.device)
            log_prior = mask if log_prior is None else log_prior + mask
            none = torch.isinf(log_prior).all(dim=1, keepdim=True)
            log_prior = torch.where(none, mask.expand_as(log_prior), log_prior)
        if self.channel_weights is not None:
            log_a = self.channel_weights(batch.x, log_prior)
        elif log_prior is not None:
            log_a = torch.log_softmax(log_prior, dim=1)
        else:
            return torch.full((len(batch.x),), -math.log(len(self.channels)), dtype=torch.float64,
                              device=batch.x.device)  # fmt: skip
        return log_a.gather(1, batch.channel[:, None])[:, 0]

    def weights(self, batch: Batch) -> Tensor:
        """(n,) weights alpha_c f J / q of a batch, each an estimate of its channel's I_c."""
        with torch.no_grad():
            return torch.exp(self.log_alpha(batch) - batch.log_qs) * batch.fj

    def _weighted_batches(
        self, n: int, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Yield ``(x, W, channel)``: points, weights whose mean estimates I, channels; n in all.

        Each batch is split over the channels by :attr:`fractions`; W = w b / n_c
        undoes that split, so every batch is an unbiased sample of the total.
        Points are drawn from ``generator`` (default :attr:`generator`).
        """
        n_ch = len(self.channels)
        if n < n_ch:
            raise ConfigError(f"ask for at least {n_ch} points (one per channel), got {n}")
        n_batches = max(math.ceil(n / batch_size), 1)
        sizes = [n // n_batches + (k < n % n_batches) for k in range(n_batches)]
        for b in sizes:
            counts = allocate(b, self.fractions)
            batch = self._draw_counts(counts, generator)
            scale = torch.tensor([b / max(k, 1) for k in counts], dtype=torch.float64,
                                 device=self.device)  # fmt: skip
            yield batch.x, self.weights(batch) * scale[batch.channel], batch.channel

    def _draw_counts(self, counts: list[int], generator: torch.Generator | None = None) -> Batch:
        n = sum(counts)
        gen = self.generator if generator is None else generator
        z = torch.rand(n, self.dims, generator=gen, dtype=torch.float64, device=self.device)
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
    def train(
        self,
        calls: int | float,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 20,
        optimizer: OptimizerFactory | None = None,
        scheduler: str | SchedulerFactory | None = "cosine",
        callbacks: Sequence[Callback] = (),
    ) -> TrainingHistory:
        """Train the flow (and channel weights) with about ``calls`` integrand evaluations.

        Args:
            calls: budget: density plus gradient evaluations (VEGAS warm-up included).
            progress: show a progress bar (plain lines when not on a terminal).
            checkpoint: file to write the state to every ``checkpoint_every``
                iterations and at the end; if it exists and holds an unfinished
                training of this configuration, training resumes from it.
            checkpoint_every: iterations between checkpoints.
            optimizer: ``optimizer(parameters, lr)`` factory (default Adam).
            scheduler: ``"cosine"`` (default), ``None`` or a torch scheduler
                factory ``(optimizer, total_steps) -> scheduler``.
            callbacks: :mod:`hepflows.training.callbacks` (logging, early stop...).

        Returns:
            The trainer's :class:`TrainingHistory` of this call.
        """
        calls = int(calls)
        if calls < 1:
            raise ConfigError(f"calls must be >= 1, got {calls}")
        trainer = self.trainer
        history = trainer.new_history()
        start = (self.calls, self.grad_calls)
        if checkpoint is not None and Path(checkpoint).exists():
            self._restore(checkpoint, training=True)
        if self.plan.get("budget") != calls or self.plan.get("done"):
            self._new_plan(calls)
        plan = self.plan
        if self.config["vegas"] and all(m is None for m in self.maps):
            used = self._adapt_vegas(int(self.config["vegas_fraction"] * calls))
            per = trainer.calls_per_iteration(plan["batch"])
            plan["iterations"] = max((calls - used) // per, 1)
        # Under torchrun every rank draws a whole batch from its own stream and the engine
        # averages the gradients: a step on W batches, and the budget (calls of all ranks)
        # is spent in 1/W of the iterations.
        iterations = max(math.ceil(plan["iterations"] / world_size()), 1)
        engine = Engine(self.parameters(), lr=trainer.lr,
                        total_steps=iterations * trainer.steps_per_iteration(),
                        optimizer=optimizer, scheduler=scheduler, clip=trainer.clip,
                        name=f"{trainer.label} training")  # fmt: skip
        if self._engine_state is not None:
            engine.load_state(*self._engine_state)
        self._engine, self._engine_state = engine, None
        cbs = list(callbacks)
        if checkpoint is not None and is_main():
            cbs.append(Checkpoint(lambda: self.save(checkpoint), every=checkpoint_every))
        self.flow.train()
        try:
            engine.run(lambda _: trainer.iteration(self, engine, plan["batch"], history),
                       iterations, callbacks=cbs,
                       progress=f"{trainer.label} training" if progress and is_main()
                       else None)  # fmt: skip
        finally:
            self.flow.eval()
        plan["done"] = int(engine.iteration >= iterations)
        broadcast_tensors([self.fractions])
        if checkpoint is not None and is_main():
            self.save(checkpoint)
        history.density_calls = self.calls - start[0]
        history.grad_calls = self.grad_calls - start[1]
        history.calls = history.density_calls + history.grad_calls
        return history

    def update_shares(self, batch: Batch) -> tuple[float, float]:
        """A fresh batch's estimate and relative error; updates the channel shares.

        The shares (:attr:`fractions`) move half-way towards the Kleiss-Pittau
        shares (mixture weights) or towards n_i ~ sigma_i (the best allocation
        of a stratified sum), each at least ``MIN_CHANNEL_SHARE / C``.
        """
        w = self.weights(batch)
        n_ch = len(self.channels)
        counts = torch.bincount(batch.channel, minlength=n_ch).to(torch.float64)
        zero = torch.zeros(n_ch, dtype=torch.float64, device=self.device)
        m2 = zero.index_add(0, batch.channel, (w / self.fractions[batch.channel]) ** 2)
        if is_distributed():  # pooled over the ranks' batches: every rank gets the same shares
            s1, s2 = zero.index_add(0, batch.channel, w), zero.index_add(0, batch.channel, w * w)
            counts, s1, s2, m2 = all_reduce_sum(torch.stack([counts, s1, s2, m2]))
            mean = s1 / counts.clamp_min(1)
            var = (s2 - counts * mean**2).clamp_min(0) / (counts - 1).clamp_min(1)
        else:
            mean = zero.index_add(0, batch.channel, w) / counts.clamp_min(1)
            sq = zero.index_add(0, batch.channel, (w - mean[batch.channel]) ** 2)
            var = sq / (counts - 1).clamp_min(1)
        value = mean.sum().item()
        err = math.sqrt((var / counts.clamp_min(1)).sum().item())
        rel = err / abs(value) if value else math.inf
        active = self.fractions > 0
        if n_ch > 1 and bool((counts[active] > 1).all()):
            self._maybe_drop(mean, active)
            active = self.fractions > 0
            if self.mixture:
                # Kleiss-Pittau: p_i <- p_i sqrt(W_i), W_i = E_qi[(f/g)^2] (equal at the optimum).
                target = self.fractions * (m2 / counts).sqrt()
            else:  # n_i ~ sigma_i, the best allocation for a stratified sum
                target = var.sqrt()
            target = torch.where(active, target, torch.zeros_like(target))
            if target.sum() > 0:
                share = (0.5 * self.fractions + 0.5 * target / target.sum()).clamp_min(
                    MIN_CHANNEL_SHARE / n_ch
                )
                share = torch.where(active, share, torch.zeros_like(share))
                self.fractions = share / share.sum()
        return value, rel

    def _maybe_drop(self, mean: Tensor, active: Tensor) -> None:
        """Channel dropping: track each channel's share of the integral (running mean over
        updates) and drop the active ones below ``drop_channels`` (never the last)."""
        threshold = self.config["drop_channels"]
        if threshold is None:
            return
        total = mean.abs().sum()
        if not total > 0:
            return
        now = mean.abs() / total
        self.share_updates += 1
        k = self.share_updates
        self.integral_shares = self.integral_shares + (now - self.integral_shares) / k
        batch = self.plan["batch"] if self.plan else 0
        if k < DROP_AFTER or k * batch < DROP_MIN_POINTS * int(active.sum()):
            return
        low = active & (self.integral_shares < threshold)
        if bool(low.sum() == active.sum()):  # never the last active channel
            shares = torch.where(active, self.integral_shares, torch.full_like(
                self.integral_shares, -math.inf))  # fmt: skip
            low[torch.argmax(shares)] = False
        for i in low.nonzero()[:, 0].tolist():
            self.dropped_channels.append((self.channels[i].name or str(i),
                                          float(self.integral_shares[i])))  # fmt: skip
        if bool(low.any()):
            fractions = torch.where(low, torch.zeros_like(self.fractions), self.fractions)
            self.fractions = fractions / fractions.sum()

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

            vmap, calls_i = adapt_vegas(target, self.dims, calls // n_ch,
                                        seed=self.config["seed"])  # fmt: skip
            self.maps[i] = vmap.to(self.device)
            used += calls_i
        self.calls += used
        return used

    def _new_plan(self, calls: int) -> None:
        trainer = self.trainer
        batch = max(trainer.batch(calls), 2 * len(self.channels))
        per = trainer.calls_per_iteration(batch)
        if calls < per and trainer.gradient:
            raise ConfigError(
                f"a {trainer.label} iteration costs {per:,} calls ({batch} points x "
                f"{per // batch}); raise the training calls (--train-calls) above that or "
                "lower batch_size"
            )
        self.plan = {"budget": calls, "batch": batch, "iterations": max(calls // per, 1),
                     "done": 0}  # fmt: skip
        self._engine = self._engine_state = None
        trainer.start(self, batch)

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
        result, _ = self._estimate(calls, batch_size, progress, quantile, exact, stratified,
                                   keep_points=False)  # fmt: skip
        return result

    def _estimate(
        self,
        calls: int | float,
        batch_size: int,
        progress: bool,
        quantile: float,
        exact: float | None,
        stratified: bool,
        keep_points: bool = True,
    ) -> tuple[IntegrationResult, tuple[Tensor, Tensor, Tensor]]:
        """:meth:`integrate`, also returning the sample ``(x (n, d), w (n,), channel (n,))``.

        ``w`` is normalised so that its mean over the sample estimates I; ``x``
        is empty (0, d) unless ``keep_points``.
        """
        total_calls = int(calls)
        n_ch = len(self.channels)
        # Under torchrun the calls are split over the ranks, each drawing from its own stream;
        # the per-channel estimates are pooled below.
        calls = share(total_calls)
        n_active = int((self.fractions > 0).sum())
        if calls < 2 * n_active:
            raise ConfigError(
                f"integrate needs at least {2 * n_active} calls (2 per channel) per rank, got "
                f"{total_calls} for {world_size()} rank(s)"
            )
        self.flow.eval()
        dropped0 = self.dropped
        counts = allocate(calls, self.fractions, minimum=2)
        channel = self._channel_labels(counts)
        cubes, strata = [], []
        for n_i in counts:
            if stratified:
                cube, m = hypercube_assignment(n_i, self.dims, self.generator, self.device)
            else:
                cube, m = torch.zeros(n_i, dtype=torch.int64, device=self.device), 1
            cubes.append(cube)
            strata.append(m)
        cube = torch.cat(cubes)
        m_point = torch.tensor(strata, device=self.device)[channel]
        w = torch.empty(calls, dtype=torch.float64, device=self.device)
        x = torch.empty(calls if keep_points else 0, self.dims, dtype=torch.float64,
                        device=self.device)  # fmt: skip
        with progress_bar(calls, "integrating", enabled=progress) as bar:
            for start in range(0, calls, batch_size):
                s = slice(start, min(start + batch_size, calls))
                z = points_in_cubes(cube[s], m_point[s], self.dims, self.generator)
                batch = self._evaluate(z, channel[s])
                w[s] = self.weights(batch)
                if keep_points:
                    x[s] = batch.x
                bar.advance(s.stop - s.start)
        per_channel, weights = [], []
        offsets = [0, *itertools.accumulate(counts)]
        for i in range(n_ch):
            s = slice(offsets[i], offsets[i + 1])
            if counts[i] == 0:  # a dropped channel
                per_channel.append((0.0, 0.0, 0, w[s]))
                continue
            v_i, var_i, w_i = stratified_estimate(w[s], cube[s])
            per_channel.append((v_i, var_i, counts[i], w[s]))
            weights.append(w_i * calls / counts[i])
        w_all = w_stats = torch.cat(weights)
        if is_distributed():
            per_channel = pool_channels(per_channel, stratified)
            w_stats = all_gather_cat(w_all)  # ESS and efficiencies from every rank's weights
        value, variance, parts = 0.0, 0.0, []
        for i, (ch, (v_i, var_i, n_i, _)) in enumerate(zip(self.channels, per_channel,
                                                            strict=True)):  # fmt: skip
            value, variance = value + v_i, variance + var_i
            parts.append(ChannelResult(i, v_i, math.sqrt(var_i), n_i, ch.name))
        if exact is None:
            exact = getattr(self.f, "exact", None)
        dropped = int(all_reduce_sum(torch.tensor([self.dropped - dropped0], device="cpu"))[0])
        result = IntegrationResult(
            value=value, error=math.sqrt(variance), calls=total_calls, dropped=dropped,
            exact=exact, total_calls=self.total_calls, channels=parts if n_ch > 1 else [],
            **weight_statistics(w_stats, quantile),
        )  # fmt: skip
        # The per-channel estimator weights are in channel order, as x and channel.
        return result, (x, w_all, channel)

    def generate(
        self,
        n_events: int,
        rule: str = "quantile",
        quantile: float = 0.999,
        calls: int | None = None,
        batch_size: int = 100_000,
        max_calls: int | None = None,
        progress: bool = True,
        exact: float | None = None,
        wmax_calls: int | None = None,
    ) -> Events:
        """Estimate the integral and generate unweighted events from the same fresh samples.

        A first sample of ``calls`` points is drawn as :meth:`integrate` draws
        (stratified); its weights give the integral, the unweighting
        efficiency of each w_max rule and w_max itself (``"quantile"``: that
        quantile of |w|, overweight events kept with weight |w|/w_max;
        ``"max"``: the maximum), and its points are unweighted into events.
        When they are too few, further batches are drawn until ``n_events``
        are accepted; their weights join the integral (inverse-variance
        combination). :attr:`Events.result` is the one result of the run: its
        value and error are :attr:`Events.sigma` and :attr:`Events.sigma_error`.

        Args:
            n_events: events wanted.
            rule: w_max rule.
            quantile: quantile for the ``quantile`` rule (and the result's robust efficiency).
            calls: points of the first sample (default max(100000, 10 n_events)).
            batch_size: points per batch.
            max_calls: stop with an error beyond this many calls (default 10^4 n_events
                or 10^9, whichever is smaller).
            progress: progress bar over accepted events.
            exact: the exact integral, if known, for the pull.
            wmax_calls: the former name of ``calls``.

        Returns:
            The :class:`Events` (with the channel that produced each event).
        """
        if n_events < 1:
            raise ConfigError(f"n_events must be >= 1, got {n_events}")
        calls = int(calls or wmax_calls or max(100_000, 10 * n_events))
        max_calls = int(max_calls or min(10_000 * n_events, 10**9))
        calls0 = self.calls
        gen = self.generator
        result, (x, w, ch) = self._estimate(calls, batch_size, False, quantile, exact, True)
        w_max = choose_wmax(w, rule, quantile)
        estimates = [(result.value, result.error**2)]
        s1 = s2 = 0.0
        n_extra = 0
        xs, weights, channels, accepted = [], [], [], 0
        with progress_bar(n_events, "generating", enabled=progress) as bar:
            while True:
                xa, wa, ca = unweight_shuffled(x, w, ch, w_max, gen)
                xs.append(xa)
                channels.append(ca)
                weights.append(wa)
                bar.advance(min(len(xa), n_events - accepted))
                accepted += len(xa)
                if accepted >= n_events:
                    break
                if self.calls - calls0 >= max_calls:
                    raise ConfigError(
                        f"only {accepted} of {n_events} events after {max_calls:,} calls: the "
                        "efficiency is too low; train longer or raise max_calls"
                    )
                x, w, ch = (torch.cat(t) for t in zip(*self._weighted_batches(batch_size,
                                                                              batch_size),
                                                       strict=True))  # fmt: skip
                s1, s2, n_extra = s1 + w.sum().item(), s2 + (w**2).sum().item(), n_extra + len(w)
        if n_extra > 1:
            mean = s1 / n_extra
            estimates.append((mean, max(s2 / n_extra - mean**2, 0.0) / (n_extra - 1)))
        value, variance = combine(estimates)
        result.value, result.error = value, math.sqrt(variance)
        result.calls = self.calls - calls0
        result.total_calls = self.total_calls
        w_all = torch.cat(weights)[:n_events].cpu()
        return Events(
            x=torch.cat(xs)[:n_events].cpu(), weights=w_all, sigma=result.value,
            sigma_error=result.error, w_max=w_max, rule=rule, quantile=quantile,
            efficiency=(result.unweighting_efficiency if rule == "max"
                        else result.unweighting_efficiency_quantile),
            overweight_fraction=(w_all.abs() > 1).to(torch.float64).mean().item(),
            calls=self.calls - calls0, channel=torch.cat(channels)[:n_events].cpu(),
            channel_names=[c.name for c in self.channels], result=result,
        )  # fmt: skip

    # ------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> None:
        """Save flow, VEGAS grids, channel weights, trainer and engine state (atomic)."""
        tensors = {f"flow.{k}": v.detach() for k, v in self.flow.state_dict().items()}
        for i, vmap in enumerate(self.maps):
            if vmap is not None:
                tensors[f"map.{i}.grid"] = vmap.grid
                tensors[f"map.{i}.ninc"] = vmap.ninc
        if self.channel_weights is not None:
            for k, v in self.channel_weights.state_dict().items():
                tensors[f"alpha.{k}"] = v.detach()
        tensors["fractions"] = self.fractions
        tensors["integral_shares"] = self.integral_shares
        tensors["rng"] = self.generator.get_state()
        tensors[f"rng_device.{self.device.type}"] = torch.zeros(1, device="cpu")
        engine_meta: dict[str, Any] = {}
        if self._engine is not None:
            engine_tensors, engine_meta = self._engine.state()
            tensors |= engine_tensors
        elif self._engine_state is not None:
            tensors |= self._engine_state[0]
            engine_meta = self._engine_state[1]
        trainer_tensors, trainer_meta = self.trainer.state()
        tensors |= {f"trainer.{k}": v for k, v in trainer_tensors.items()}
        state = {"calls": self.calls, "grad_calls": self.grad_calls, "dropped": self.dropped,
                 "plan": self.plan, "engine": engine_meta, "trainer": trainer_meta,
                 "share_updates": self.share_updates,
                 "dropped_channels": self.dropped_channels}  # fmt: skip
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        meta = {
            "format": FORMAT,
            "hepflows_version": hepflows.__version__,
            "config": json.dumps(self.config),
            "state": json.dumps(state),
        }
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(
        cls, path: str | os.PathLike, f: Integrand, channels: Sequence[Channel] | None = None,
        device: str | torch.device | None = None,
    ) -> NeuralIntegrator:
        """Rebuild any saved integrator, whatever its trainer (no pickled code is run).

        Args:
            path: file written by :meth:`save` (or a training checkpoint).
            f: the integrand (code is never stored in the file).
            channels: the same channels as at saving (mappings are code, not stored).
            device: where to put it (default CPU), whatever device saved it.
        """
        config = read_config(path)
        names = [ch.name for ch in check_channels(channels)]
        if names != config["channels"]:
            raise CheckpointError(
                f"{path} holds an integrator with channels {config['channels']}, got {names}: "
                "give the same channels (the same multi-channel setting) as when it was saved"
            )
        kwargs = {k: v for k, v in config.items() if k not in ("dims", "channels", "trainer")}
        kwargs["hidden"] = tuple(kwargs["hidden"])
        trainer = make_trainer(config["trainer"])
        integ = cls.__new__(cls)
        NeuralIntegrator.__init__(integ, f, config["dims"], channels=channels, trainer=trainer,
                                  device=device, **kwargs)  # fmt: skip
        integ._restore(path, training=True)
        return integ

    def _restore(self, path: str | os.PathLike, training: bool) -> None:
        meta = _read_meta(path)
        config = _upgrade(json.loads(meta["config"]))
        if config != self.config:
            diff = {k: (config.get(k), v) for k, v in self.config.items() if config.get(k) != v}
            raise CheckpointError(
                f"{path} was written by an integrator with another configuration "
                f"(file vs now: {diff}); use another checkpoint path or the same settings"
            )
        tensors = load_file(str(path))
        rng = tensors.pop("rng")  # a generator's state stays a CPU byte tensor
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        state = json.loads(meta["state"])
        flow_state = {k[5:]: v for k, v in tensors.items() if k.startswith("flow.")}
        try:
            self.flow.load_state_dict(flow_state)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: flow weights do not fit: {err}") from None
        self.maps = [
            VegasMap(tensors[f"map.{i}.grid"], tensors[f"map.{i}.ninc"]).to(self.device)
            if f"map.{i}.grid" in tensors else None
            for i in range(len(self.channels))
        ]  # fmt: skip
        if self.channel_weights is not None:
            alpha = {k[6:]: v for k, v in tensors.items() if k.startswith("alpha.")}
            try:
                self.channel_weights.load_state_dict(alpha)
            except RuntimeError as err:
                msg = f"{path}: channel-weight network does not fit: {err}"
                raise CheckpointError(msg) from None
        self.fractions = tensors["fractions"].to(self.device)
        if "integral_shares" in tensors:  # written before channel dropping: none dropped
            self.integral_shares = tensors["integral_shares"].to(self.device)
        saved_on = next((k[11:] for k in tensors if k.startswith("rng_device.")), "cpu")
        if saved_on == self.device.type:
            self.generator.set_state(rng)
        else:  # another device's stream: continue with one keyed by the saved state
            self.generator = generator_on(self.device, stream_key(rng))
        if is_distributed():  # every rank read rank 0's stream: derive one per rank from it
            self._rekey_for_rank(int(torch.randint(2**62, (1,), generator=self.generator,
                                                   device=self.device)))  # fmt: skip
        self.calls, self.dropped = state["calls"], state["dropped"]
        self.grad_calls = state.get("grad_calls", 0)
        self.share_updates = state.get("share_updates", 0)
        self.dropped_channels = [tuple(d) for d in state.get("dropped_channels", [])]
        self.plan = dict(state["plan"])
        self._engine = None
        self._engine_state = None
        if self.plan:
            self.trainer.start(self, self.plan["batch"])
            if training and state.get("engine"):
                keep = {k: v for k, v in tensors.items() if k.startswith("engine.")}
                self._engine_state = (keep, state["engine"])
        trainer_tensors = {k[8:]: v for k, v in tensors.items() if k.startswith("trainer.")}
        if "buffer" in tensors:  # files of hepflows <= 0.1 kept the sample buffer at the top
            trainer_tensors.setdefault("buffer", tensors["buffer"])
        for k, v in tensors.items():  # and FAB's replay buffer
            if k.startswith("replay."):
                trainer_tensors.setdefault(k, v)
        self.trainer.load_state(trainer_tensors, state.get("trainer", state))


def _read_meta(path: str | os.PathLike) -> dict[str, str]:
    return read_metadata(path, FORMAT, "integrator", "save it again with NeuralIntegrator.save")


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The configuration of a saved integrator (files of earlier versions converted)."""
    return _upgrade(json.loads(_read_meta(path)["config"]))


def _upgrade(config: dict[str, Any]) -> dict[str, Any]:
    """A saved configuration in today's form: files written before trainers were objects
    get their trainer description from the old flat keys."""
    config.setdefault("domain", "unit")  # written before integrands on R^d
    config.setdefault("drop_channels", None)  # written before channel dropping
    if "trainer" not in config:  # written before trainers were objects
        method = config.pop("method", None)
        options = {k: config.pop(k) for k in ("lr", "batch_size") if k in config}
        loss = config.pop("loss", "variance")
        steps, batches = config.pop("buffered_steps", None), config.pop("buffer_batches", None)
        fab_keys = ("intermediate", "leapfrog", "step_size", "target_accept", "w_adjust_clip")
        fab = {k: config.pop(k) for k in fab_keys if k in config}
        if method == "fab":
            spec = {"name": "fab", "options": {**options, **fab, "replay_steps": steps,
                                               "buffer_batches": batches}}  # fmt: skip
        elif method == "reparam-kl":
            spec = {"name": "pathwise-kl", "options": options}
        else:
            spec = {"name": "importance", "options": {**options, "loss": loss,
                    "buffered_steps": steps, "buffer_batches": batches}}  # fmt: skip
        config["trainer"] = make_trainer(spec).describe()
    return config
