"""Neural importance sampling on the unit cube (i-flow 2001.05486, MadNIS 2212.06172).

:class:`NeuralIntegrator` trains a bounded rational-quadratic spline coupling
flow q(x) on [0, 1]^d towards |f|, then estimates I = E_q[f / q] from fresh
samples and generates unweighted events. Optional pieces:

* a VEGAS warm start: a grid adapted by the ``vegas`` package becomes a fixed
  change of variables x = G(y) in front of the flow, which then learns what a
  separable grid cannot;
* buffered training: every fresh batch is stored and re-used for further
  optimiser steps with importance weights, so expensive integrands are called
  less often per optimiser step;
* checkpoints: ``train(..., checkpoint=path)`` writes the whole state
  atomically and resumes from it after a crash.

All integrand calls are counted in :attr:`NeuralIntegrator.calls`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

import hepflows
from hepflows.errors import CheckpointError, ConfigError
from hepflows.files import atomic_write, read_metadata
from hepflows.flows import MAF, CouplingFlow
from hepflows.flows.flows import ConfiguredFlow
from hepflows.integrate.integrands import Integrand, evaluate
from hepflows.integrate.losses import get_loss
from hepflows.integrate.result import IntegrationResult, weight_statistics
from hepflows.integrate.unweighting import Events, choose_wmax, unweight
from hepflows.integrate.vegas_map import VegasMap, adapt_vegas
from hepflows.progress import progress_bar

FORMAT = "hepflows-integrator"


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


def default_transforms(dims: int) -> int:
    """Coupling blocks by dimension: enough for every pair of features to meet."""
    return max(4, 2 * math.ceil(math.log2(max(dims, 2))) + 2)


class NeuralIntegrator:
    """Integrate ``f`` over [0, 1]^d and generate events with a normalizing flow.

    Args:
        f: batched integrand, (n, d) float64 in [0, 1]^d -> (n,); may be signed.
        dims: d.
        seed: seed of the flow initialisation and of every random draw.
        loss: ``"variance"`` (default), ``"kl"`` (forward) or ``"rkl"`` (reverse).
        transforms: coupling blocks (default grows with log2 d).
        bins: spline bins.
        hidden: conditioner hidden widths.
        lr: Adam learning rate (cosine decay over the training).
        batch_size: fresh points per training iteration (default: calls / 150,
            between 1000 and 20000).
        buffered_steps: extra optimiser steps per iteration on stored samples.
        buffer_batches: how many recent fresh batches the buffer keeps.
        vegas: warm start from a VEGAS grid.
        vegas_fraction: share of the training calls spent adapting VEGAS.
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
        loss: str = "variance",
        transforms: int | None = None,
        bins: int = 8,
        hidden: tuple[int, ...] = (32, 32),
        lr: float = 5e-3,
        batch_size: int | None = None,
        buffered_steps: int = 7,
        buffer_batches: int = 5,
        vegas: bool = False,
        vegas_fraction: float = 0.25,
        drop_nonfinite: bool = False,
    ) -> None:
        if not callable(f):
            kind = type(f).__name__
            raise ConfigError(f"the integrand must be callable f(x) -> (n,), got {kind}")
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ConfigError(f"dims must be a positive int, got {dims!r}")
        get_loss(loss)
        if not 0 < vegas_fraction < 1:
            raise ConfigError(f"vegas_fraction must lie in (0, 1), got {vegas_fraction}")
        self.f = f
        self.dims = dims
        self.config: dict[str, Any] = dict(
            dims=dims, seed=seed, loss=loss,
            transforms=transforms or default_transforms(dims), bins=bins, hidden=list(hidden),
            lr=lr, batch_size=batch_size, buffered_steps=buffered_steps,
            buffer_batches=buffer_batches, vegas=vegas, vegas_fraction=vegas_fraction,
            drop_nonfinite=drop_nonfinite,
        )  # fmt: skip
        if seed is not None:
            torch.manual_seed(seed)
        self.flow = self._make_flow()
        self.map: VegasMap | None = None
        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else torch.seed())
        self.calls = 0
        self.dropped = 0
        self._opt: torch.optim.Optimizer | None = None
        self._plan: dict[str, int] = {}
        self._buffer: Tensor | None = None

    # ----------------------------------------------------------- construction
    def _make_flow(self) -> ConfiguredFlow:
        c = self.config
        common = dict(transforms=c["transforms"], bins=c["bins"], hidden=c["hidden"],
                      domain="unit")  # fmt: skip
        if self.dims == 1:
            return MAF(1, **common)
        return CouplingFlow(self.dims, seed=c["seed"] or 0, **common)

    # ----------------------------------------------------------------- drawing
    def _draw(self, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Fresh points from the current flow, with the integrand evaluated.

        Returns:
            ``(y, x, fy, log_qy)``: (n, d) flow points, (n, d) mapped points in
            float64, (n,) integrand times the map's Jacobian, (n,) flow log-density.
        """
        with torch.no_grad():
            y, log_qy = self.flow.sample_and_log_prob(n, generator=self.generator)
        y64 = y.to(torch.float64)
        if self.map is not None:
            x, jac = self.map(y64)
        else:
            x, jac = y64, None
        fx, n_bad = evaluate(self.f, x, self.config["drop_nonfinite"])
        self.calls += n
        self.dropped += n_bad
        fy = fx if jac is None else fx * jac
        return y, x, fy, log_qy.to(torch.float64)

    def _weighted_batches(self, n: int, batch_size: int):
        """Yield ``(x, w)`` batches, (b, d) points and (b,) weights f/q, n points in all."""
        for start in range(0, n, batch_size):
            _, x, fy, log_qy = self._draw(min(batch_size, n - start))
            yield x, fy * torch.exp(-log_qy)

    def sample(self, n: int, batch_size: int = 100_000) -> tuple[Tensor, Tensor]:
        """Weighted samples: points and weights f / q (calls the integrand n times).

        Args:
            n: number of points.
            batch_size: points per flow pass.

        Returns:
            ``(x, w)``: (n, d) float64 points in [0, 1]^d and (n,) weights.
        """
        xs, ws = [], []
        for x, w in self._weighted_batches(n, batch_size):
            xs.append(x)
            ws.append(w)
        if not xs:
            raise ConfigError(f"n must be >= 1, got {n}")
        return torch.cat(xs), torch.cat(ws)

    # ---------------------------------------------------------------- training
    def _batch_size(self, calls: int) -> int:
        b = self.config["batch_size"]
        return int(b) if b else int(min(max(calls // 150, 1000), 20_000))

    def train(
        self,
        calls: int | float,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 20,
    ) -> TrainingHistory:
        """Train the flow with about ``calls`` integrand evaluations.

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
        if self.config["vegas"] and self.map is None:
            vcalls = int(self.config["vegas_fraction"] * calls)
            self.map, used = adapt_vegas(self.f, self.dims, vcalls, seed=self.config["seed"])
            self.calls += used
            plan["iterations"] = max((calls - used) // plan["batch"], 1)
        loss_fn = get_loss(self.config["loss"])
        opt = self._optimizer()
        steps_per_it = 1 + self.config["buffered_steps"]
        total_steps = plan["iterations"] * steps_per_it
        lr0 = self.config["lr"]

        def step(k: int, *batch: Tensor) -> float:
            # Cosine decay, computed from the iteration so that a resumed run continues it.
            done = min(plan["iteration"] * steps_per_it + k, total_steps)
            for group in opt.param_groups:
                group["lr"] = lr0 * 0.5 * (1 + math.cos(math.pi * done / total_steps))
            return self._step(opt, loss_fn, *batch)

        self.flow.train()
        with progress_bar(plan["iterations"], "training", enabled=progress) as bar:
            bar.advance(plan["iteration"])
            while plan["iteration"] < plan["iterations"]:
                y, _, fy, log_qs = self._draw(plan["batch"])
                w = fy * torch.exp(-log_qs)
                mean = w.mean().item()
                history.integral.append(mean)
                rel = (w.std().item() / abs(mean) / math.sqrt(len(w))) if mean else math.inf
                history.relative_error.append(rel)
                self._store(y, fy, log_qs)
                loss = step(0, y, fy, log_qs)
                history.loss.append(loss)
                for k in range(1, steps_per_it):
                    step(k, *self._from_buffer(plan["batch"]))
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

    def _new_plan(self, calls: int) -> None:
        batch = self._batch_size(calls)
        self._plan = {"budget": calls, "batch": batch, "iteration": 0,
                      "iterations": max(calls // batch, 1), "done": 0}  # fmt: skip
        self._opt = None
        self._buffer = None

    def _optimizer(self) -> torch.optim.Optimizer:
        if self._opt is None:
            self._opt = torch.optim.Adam(self.flow.parameters(), lr=self.config["lr"])
        return self._opt

    def _step(self, opt, loss_fn, y: Tensor, fy: Tensor, log_qs: Tensor) -> float:
        log_q = self.flow.log_prob(y).to(torch.float64)
        loss = loss_fn(fy, log_qs, log_q)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.flow.parameters(), 10.0)
        opt.step()
        return loss.item()

    def _store(self, y: Tensor, fy: Tensor, log_qs: Tensor) -> None:
        row = torch.cat((y.to(torch.float64), fy[:, None], log_qs[:, None]), dim=1)
        cap = self.config["buffer_batches"] * self._plan["batch"]
        buf = row if self._buffer is None else torch.cat((self._buffer, row))
        self._buffer = buf[-cap:]

    def _from_buffer(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        buf = self._buffer
        rows = buf[torch.randint(len(buf), (n,), generator=self.generator)]
        d = self.dims
        return rows[:, :d].to(self.flow.dtype), rows[:, d], rows[:, d + 1]

    # ------------------------------------------------------------- estimation
    def integrate(
        self,
        calls: int | float,
        batch_size: int = 100_000,
        progress: bool = False,
        quantile: float = 0.999,
        exact: float | None = None,
    ) -> IntegrationResult:
        """Estimate the integral from ``calls`` fresh samples (never training samples).

        Args:
            calls: number of fresh points.
            batch_size: points per flow pass.
            progress: show a progress bar.
            quantile: quantile of |w| for the robust unweighting efficiency.
            exact: the exact value, if known, for the pull in the summary
                (taken from ``f.exact`` when the integrand has it).

        Returns:
            An :class:`IntegrationResult`.
        """
        calls = int(calls)
        if calls < 2:
            raise ConfigError(f"integrate needs at least 2 calls, got {calls}")
        self.flow.eval()
        dropped0 = self.dropped
        ws = []
        with progress_bar(calls, "integrating", enabled=progress) as bar:
            for _, w in self._weighted_batches(calls, batch_size):
                ws.append(w)
                bar.advance(len(w))
        w = torch.cat(ws)
        mean = w.mean().item()
        error = w.std().item() / math.sqrt(len(w))
        if exact is None:
            exact = getattr(self.f, "exact", None)
        return IntegrationResult(
            value=mean, error=error, calls=calls, dropped=self.dropped - dropped0,
            exact=exact, total_calls=self.calls, **weight_statistics(w, quantile),
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
            The :class:`Events`.
        """
        if n_events < 1:
            raise ConfigError(f"n_events must be >= 1, got {n_events}")
        self.flow.eval()
        calls0 = self.calls
        wmax_calls = int(wmax_calls or max(100_000, 10 * n_events))
        max_calls = int(max_calls or min(10_000 * n_events, 10**9))
        x0, w0 = self.sample(wmax_calls, batch_size)
        w_max = choose_wmax(w0, rule, quantile)
        s1, s2, n = w0.sum().item(), (w0**2).sum().item(), len(w0)
        xs, weights, accepted = [], [], 0
        gen = self.generator
        xa, wa = unweight(x0, w0, w_max, gen)
        xs.append(xa)
        weights.append(wa)
        accepted += len(xa)
        with progress_bar(n_events, "generating", enabled=progress) as bar:
            bar.advance(min(accepted, n_events))
            while accepted < n_events:
                if self.calls - calls0 >= max_calls:
                    raise ConfigError(
                        f"only {accepted} of {n_events} events after {max_calls:,} calls: the "
                        "efficiency is too low; train longer or raise max_calls"
                    )
                x, w = self.sample(batch_size, batch_size)
                s1, s2, n = s1 + w.sum().item(), s2 + (w**2).sum().item(), n + len(w)
                xa, wa = unweight(x, w, w_max, gen)
                xs.append(xa)
                weights.append(wa)
                bar.advance(min(len(xa), n_events - accepted))
                accepted += len(xa)
        x_all, w_all = torch.cat(xs)[:n_events], torch.cat(weights)[:n_events]
        sigma = s1 / n
        err = math.sqrt(max(s2 / n - sigma**2, 0.0) / n)
        mean_abs = w0.abs().mean().item()
        return Events(
            x=x_all, weights=w_all, sigma=sigma, sigma_error=err, w_max=w_max, rule=rule,
            quantile=quantile, efficiency=mean_abs / w_max,
            overweight_fraction=(w_all.abs() > 1).to(torch.float64).mean().item(),
            calls=self.calls - calls0,
        )  # fmt: skip

    # ------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> None:
        """Save flow, VEGAS grid, optimiser, buffer and counters (safetensors, atomic)."""
        tensors = {f"flow.{k}": v.detach().contiguous() for k, v in self.flow.state_dict().items()}
        if self.map is not None:
            tensors["map.grid"] = self.map.grid
            tensors["map.ninc"] = self.map.ninc
        tensors["rng"] = self.generator.get_state()
        if self._buffer is not None:
            tensors["buffer"] = self._buffer.contiguous()
        opt_meta: dict[str, Any] = {}
        if self._opt is not None:
            sd = self._opt.state_dict()
            for i, st in sd["state"].items():
                for k, v in st.items():
                    tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).reshape(-1).clone() if k == "step" else v  # noqa: E501
            opt_meta = {"param_groups": sd["param_groups"], "n_state": len(sd["state"])}
        meta = {
            "format": FORMAT,
            "hepflows_version": hepflows.__version__,
            "config": json.dumps(self.config),
            "state": json.dumps({"calls": self.calls, "dropped": self.dropped,
                                 "plan": self._plan, "opt": opt_meta}),  # fmt: skip
        }
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike, f: Integrand) -> NeuralIntegrator:
        """Rebuild a saved integrator for the integrand ``f`` (no pickled code is run).

        Args:
            path: file written by :meth:`save` (or a training checkpoint).
            f: the integrand (code is never stored in the file).
        """
        meta = _read_meta(path)
        config = json.loads(meta["config"])
        kwargs = {k: v for k, v in config.items() if k not in ("dims",)}
        kwargs["hidden"] = tuple(kwargs["hidden"])
        integ = cls(f, config["dims"], **kwargs)
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
        if "map.grid" in tensors:
            self.map = VegasMap(tensors["map.grid"], tensors["map.ninc"])
        self.generator.set_state(tensors["rng"])
        self.calls, self.dropped = state["calls"], state["dropped"]
        self._plan = state["plan"]
        self._buffer = tensors.get("buffer")
        self._opt = None
        if training and state["opt"]:
            opt = self._optimizer()
            n_state = state["opt"]["n_state"]
            opt_state = {}
            for i in range(n_state):
                st = {k.split(".", 2)[2]: v for k, v in tensors.items()
                      if k.startswith(f"opt.{i}.")}  # fmt: skip
                if "step" in st:
                    st["step"] = st["step"].reshape(())
                opt_state[i] = st
            opt.load_state_dict({"state": opt_state, "param_groups": state["opt"]["param_groups"]})


def _read_meta(path: str | os.PathLike) -> dict[str, str]:
    return read_metadata(path, FORMAT, "integrator", "save it again with NeuralIntegrator.save")
