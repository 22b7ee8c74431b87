"""cINN unfolding: a conditional flow q(x_truth | x_reco) trained on simulated pairs.

Bellagente et al., arXiv:2006.06685. For each measured event the flow draws
posterior samples of its truth; the unfolded sample is all of them, each
counting 1 / (S eps(x)) with eps the learned detection efficiency
(:class:`~hepflows.inference.efficiency.Efficiency`), so detector
inefficiency and acceptance are unfolded too. The posterior is that of the
training prior: on data from another prior the unfolding inherits a bias (the
reason for :mod:`~hepflows.inference.spinup`).

Coordinates: the observables mapped onto the real line and standardised
(:class:`~hepflows.inference.scaling.Scaler`), truth and reco each by its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.flows import MAF, CouplingFlow
from hepflows.flows.training import fit
from hepflows.inference.scaling import Scaler
from hepflows.random import seeded


class CINN:
    """A conditional flow q(x_truth | x_reco) over k observables.

    Args:
        names: the k observables (truth and reco share them).
        transforms: flow blocks.
        bins: spline bins.
        hidden: conditioner widths.
        seed: seeds the initialisation.

    A coupling flow (one pass to sample) for k >= 2, a MAF for k = 1.
    """

    def __init__(
        self,
        names: Sequence[str],
        transforms: int = 6,
        bins: int = 10,
        hidden: Sequence[int] = (128, 128),
        seed: int = 0,
    ) -> None:
        self.names = tuple(names)
        if not self.names:
            raise ConfigError("a cINN needs at least one observable")
        k = len(self.names)
        self.config = {"transforms": transforms, "bins": bins, "hidden": list(hidden), "seed": seed}
        sizes = {"features": k, "context": k, "transforms": transforms, "bins": bins,
                 "hidden": hidden}  # fmt: skip
        with seeded(seed):  # the initialisation; the caller's global stream is untouched
            self.flow = CouplingFlow(**sizes, seed=seed) if k >= 2 else MAF(**sizes)
        self.truth_scaler, self.reco_scaler = Scaler(self.names), Scaler(self.names)
        self.losses: list[float] = []

    def fit(
        self,
        truth: Tensor,
        reco: Tensor,
        steps: int = 5000,
        batch_size: int = 1024,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = False,
    ) -> CINN:
        """Train on (n, k) truth and (n, k) reco observables of *detected* events.

        Adam with cosine decay on the shared engine (:func:`hepflows.flows.training.fit`).
        Returns ``self``.
        """
        if truth.shape != reco.shape:
            raise InputError(f"truth {tuple(truth.shape)} and reco {tuple(reco.shape)} differ")
        if len(truth) < batch_size:
            raise InputError(
                f"{len(truth)} training pairs are fewer than one batch of "
                f"{batch_size}: simulate more or lower batch_size"
            )
        self.truth_scaler.fit(truth)
        self.reco_scaler.fit(reco)
        x, c = self.truth_scaler.forward(truth), self.reco_scaler.forward(reco)
        self.losses = fit(
            self.flow,
            x,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            context=c,
            seed=seed,
            progress=progress,
            description="cINN",
        )
        return self

    @torch.no_grad()
    def sample(
        self,
        reco: Tensor,
        samples: int = 100,
        generator: torch.Generator | None = None,
        batch_size: int = 100_000,
    ) -> Tensor:
        """Posterior samples of the truth of each measured event: (n, k) -> (S, n, k)."""
        c = self.reco_scaler.forward(reco)
        out = torch.empty(samples, len(c), len(self.names), dtype=torch.float64)
        rows = max(1, batch_size // max(samples, 1))
        for i in range(0, len(c), rows):
            ci = c[i : i + rows].repeat(samples, 1)
            z = self.flow.sample(len(ci), context=ci, generator=generator)
            out[:, i : i + rows] = self.truth_scaler.inverse(z).view(samples, -1, len(self.names))
        return out

    @torch.no_grad()
    def log_prob(self, truth: Tensor, reco: Tensor) -> Tensor:
        """log q(x_truth | x_reco) in the observables' own units: (n, k) x2 -> (n,)."""
        z = self.truth_scaler.forward(truth)
        lp = self.flow.log_prob(z, self.reco_scaler.forward(reco)).double()
        return lp + self.truth_scaler.log_abs_det(truth)

    # ------------------------------------------------------------ saving
    def tensors(self) -> dict[str, Tensor]:
        """The flow's weights, for a file."""
        return {f"flow.{k}": v.detach().contiguous() for k, v in self.flow.state_dict().items()}

    def state(self) -> dict[str, Any]:
        """JSON-ready configuration and scalers."""
        return {
            "names": list(self.names),
            "config": self.config,
            "truth_scaler": self.truth_scaler.state(),
            "reco_scaler": self.reco_scaler.state(),
        }

    @classmethod
    def from_saved(cls, state: dict[str, Any], tensors: dict[str, Tensor]) -> CINN:
        """Rebuild from :meth:`state` and :meth:`tensors`."""
        c = state["config"]
        model = cls(state["names"], c["transforms"], c["bins"], c["hidden"], c["seed"])
        model.truth_scaler = Scaler.from_state(state["truth_scaler"])
        model.reco_scaler = Scaler.from_state(state["reco_scaler"])
        weights = {k[5:]: v for k, v in tensors.items() if k.startswith("flow.")}
        model.flow.load_state_dict(weights)
        model.flow.eval()
        return model


def unfolded_weights(samples: Tensor, efficiency: Tensor | None) -> Tensor:
    """Weights (S, n) of posterior samples (S, n, k): each measured event counts 1 / eps in total.

    Args:
        samples: (S, n, k) posterior samples.
        efficiency: (S, n) eps at the samples, or ``None`` (no correction: weights 1 / S).
    """
    s = samples.shape[0]
    if efficiency is None:
        return torch.full(samples.shape[:2], 1.0 / s, dtype=torch.float64)
    if efficiency.shape != samples.shape[:2] or not bool((efficiency > 0).all()):
        raise InputError("efficiency must be (S, n) and positive")
    return 1.0 / (s * efficiency.double())


def check_names(expected: Sequence[str], got: Sequence[str], what: str) -> None:
    """Refuse data whose observables differ from a model's, naming both."""
    if tuple(expected) != tuple(got):
        raise InputError(
            f"{what} was trained on observables {list(expected)}, the data hold "
            f"{list(got)}: use data with the same observables in the same order"
        )
