"""Prior-independent unfolding (SPINUP-style): fit the truth density through the forward model.

Butter, Heimel, Huetsch, Kagan, Plehn, arXiv:2507.15084. Learn the detector
instead of the posterior: a conditional flow T(x_reco | x_truth) and an
efficiency eps(x_truth), both trained on simulated pairs and independent of
the simulation's prior by construction. Then fit a flow p_theta(x_truth) to
the measured events by maximum likelihood,

    log L(theta) = sum_i log int T(r_i | x) eps(x) p_theta(x) dx
                   - N log int eps(x) p_theta(x) dx,

i.e. the density of each measured r_i given that it was detected. Each
per-event integral is estimated by importance sampling from a conditional
proposal q(x | r_i) (hepflows' own cINN on the same pairs): S points
x_im ~ q(. | r_i) are drawn once, and with the fixed weights
w_im = T(r_i | x_im) eps(x_im) / q(x_im | r_i) the integral is
(1 / S) sum_m w_im p_theta(x_im), differentiable in theta. The acceptance
integral is E_{x ~ p_theta}[eps(x)], from reparametrised samples of p_theta.
The result p_theta is the truth density of *all* events, detected or not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.flows.training import fit as fit_flow
from hepflows.inference.conditional import ConditionalDensity, build_flow
from hepflows.inference.efficiency import Efficiency
from hepflows.progress import progress_bar
from hepflows.training import Engine, History


class SPINUP:
    """Unfolded truth density p_theta fitted through a learned forward model.

    Args:
        forward: T(x_reco | x_truth), a :class:`ConditionalDensity` with x = reco.
        efficiency: eps(x_truth).
        proposal: q(x_truth | x_reco), a :class:`ConditionalDensity` with x = truth
            (a cINN trained on the same pairs).
        transforms, bins, hidden: sizes of the density flow p_theta.
        seed: seeds its initialisation.
    """

    def __init__(
        self,
        forward: ConditionalDensity,
        efficiency: Efficiency,
        proposal: ConditionalDensity,
        transforms: int = 6,
        bins: int = 10,
        hidden: Sequence[int] = (128, 128),
        seed: int = 0,
    ) -> None:
        names = {tuple(forward.names), tuple(efficiency.scaler.names), tuple(proposal.names)}
        if len(names) != 1:
            raise ConfigError(
                f"forward model, efficiency and proposal must share observables, "
                f"got {sorted(names)}"
            )
        self.names = tuple(forward.names)
        self.forward, self.efficiency, self.proposal = forward, efficiency, proposal
        self.scaler = forward.c_scaler  # truth coordinates of the forward model
        k = len(self.names)
        self.config = {"transforms": transforms, "bins": bins, "hidden": list(hidden), "seed": seed}
        self.density = build_flow(k, 0, transforms, bins, hidden, seed)
        self.losses: list[float] = []

    # ------------------------------------------------------------ densities
    def log_density(self, truth: Tensor) -> Tensor:
        """log p_theta at (n, k) truth values, in their own units (n,), differentiable."""
        z = self.scaler.forward(truth)
        return self.density.log_prob(z).double() + self.scaler.log_abs_det(truth)

    def _acceptance(self, n: int, generator: torch.Generator) -> Tensor:
        """E_{p_theta}[eps], from n reparametrised samples (differentiable)."""
        z, _ = self.density.sample_and_log_prob(n, generator=generator)
        return self.efficiency.probability(self.scaler.inverse(z)).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n truth events (n, k) of the unfolded density (all events, detected or not)."""
        return self.scaler.inverse(self.density.sample(n, generator=generator))

    # ------------------------------------------------------------ fitting
    @torch.no_grad()
    def prepare(
        self, measured: Tensor, samples: int = 32, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Proposal points (S, n, k) for each measured event and their fixed log weights (S, n).

        log w_im = log T(r_i | x_im) + log eps(x_im) - log q(x_im | r_i).
        """
        x, logq = self.proposal.sample_and_log_prob(measured, samples, generator)
        flat = x.reshape(-1, len(self.names))
        reco = measured.repeat(samples, 1)
        log_t = self.forward.log_prob(reco, flat).view(samples, -1)
        log_eps = self.efficiency(flat).log().view(samples, -1)
        return x, log_t + log_eps - logq

    def log_likelihood(self, points: Tensor, log_w: Tensor, acceptance: Tensor) -> Tensor:
        """Mean log-likelihood per event of a batch: points (S, b, k), log_w (S, b)."""
        s, b, k = points.shape
        log_p = self.log_density(points.reshape(-1, k)).view(s, b)
        per_event = torch.logsumexp(log_w + log_p, dim=0) - math.log(s)
        return per_event.mean() - acceptance.log()

    def fit(
        self,
        measured: Tensor,
        steps: int = 3000,
        batch_size: int = 512,
        lr: float = 1e-3,
        samples: int = 32,
        acceptance_samples: int = 4096,
        init: Tensor | None = None,
        init_steps: int = 500,
        seed: int = 0,
        progress: bool = False,
    ) -> SPINUP:
        """Fit p_theta to the (m, k) measured detector-level events; returns ``self``.

        Args:
            measured: (m, k) detected events.
            steps: optimiser steps of the likelihood fit.
            batch_size: measured events per step.
            lr: Adam learning rate (cosine decay).
            samples: proposal points per event.
            acceptance_samples: samples of p_theta per step for E[eps].
            init: (N, k) truth values to start p_theta from (maximum likelihood
                for ``init_steps`` steps), e.g. the simulation's truth; ``None``:
                start from the flow's standard-normal base in scaled coordinates.
            init_steps: steps of that start.
            seed: seeds the proposal draws and the batches.
            progress: progress bars.
        """
        if measured.ndim != 2 or measured.shape[1] != len(self.names):
            raise InputError(
                f"measured must be (m, {len(self.names)}) values of "
                f"{list(self.names)}, got {tuple(measured.shape)}"
            )
        g = torch.Generator().manual_seed(seed)
        if init is not None:
            fit_flow(
                self.density,
                self.scaler.forward(init),
                steps=init_steps,
                batch_size=min(1024, len(init)),
                lr=lr,
                seed=seed,
                progress=progress,
                description="SPINUP start",
            )
        points, log_w = self.prepare(measured, samples, g)
        bad = ~torch.isfinite(log_w)
        if bool(bad.all(0).any()):
            raise InputError(
                f"{int(bad.all(0).sum())} measured events have no proposal point "
                "the forward model can explain: are they inside the simulation's "
                "range?"
            )
        log_w = torch.where(bad, torch.full_like(log_w, -math.inf), log_w)
        engine = Engine(self.density.parameters(), lr=lr, total_steps=steps, name="SPINUP")
        n = len(measured)
        self.density.train()
        with progress_bar(steps, "SPINUP fit", enabled=progress) as bar:

            def iteration(_: int) -> dict[str, float]:
                idx = torch.randint(n, (min(batch_size, n),), generator=g)
                acc = self._acceptance(acceptance_samples, g)
                loss = -self.log_likelihood(points[:, idx], log_w[:, idx], acc)
                value = engine.step(loss)
                bar.advance(1, nll=value)
                return {"loss": value}

            history = History()
            engine.run(iteration, steps, callbacks=[history])
        self.density.eval()
        self.losses = history.column("loss")
        return self
