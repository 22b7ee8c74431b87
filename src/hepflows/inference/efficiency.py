"""A learned detection efficiency eps(x_truth) = P(passed | x_truth).

Prior-independent by construction (it conditions on the truth), it turns an
unfolding of the *detected* events into one of all events: each unfolded
event counts 1 / eps(x). A small MLP on the standardised truth, binary
cross-entropy on the shared training engine, stopped on a validation split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hepflows.errors import InputError
from hepflows.flows.nets import MLP
from hepflows.inference.scaling import Scaler
from hepflows.random import seeded
from hepflows.training.supervised import fit_supervised

#: Efficiencies are clipped from below before 1 / eps (events the detector
#: almost never sees cannot be unfolded reliably; the weights stay finite).
FLOOR = 1e-3


class Efficiency(nn.Module):
    """P(passed | x_truth) as a classifier.

    Args:
        names: the truth observables (their scaling from :mod:`~hepflows.inference.scaling`).
        hidden: hidden layer widths.
        seed: seeds the initialisation.
    """

    def __init__(self, names: Sequence[str], hidden: Sequence[int] = (64, 64), seed: int = 0):
        super().__init__()
        self.scaler = Scaler(names)
        self.hidden_sizes = tuple(int(h) for h in hidden)
        with seeded(seed), torch.device("cpu"):  # a small classifier: it stays on the CPU
            self.net = MLP(len(self.scaler.names), 1, 1, self.hidden_sizes)
        self.epochs_run = 0

    def logits(self, truth: Tensor) -> Tensor:
        """(n, k) truth observables -> (n,) logits of P(passed)."""
        return self.net(self.scaler.forward(truth)).view(-1)

    def probability(self, truth: Tensor) -> Tensor:
        """(n, k) truth observables -> (n,) P(passed), at least :data:`FLOOR` (differentiable)."""
        return torch.sigmoid(self.logits(truth).double()).clamp_min(FLOOR)

    def forward(self, truth: Tensor) -> Tensor:
        """(n, k) truth observables -> (n,) P(passed), at least :data:`FLOOR`, without gradients."""
        with torch.no_grad():
            return self.probability(truth)

    def fit(
        self,
        truth: Tensor,
        passed: Tensor,
        epochs: int = 50,
        batch_size: int = 2048,
        lr: float = 1e-3,
        patience: int = 5,
        val_fraction: float = 0.2,
        seed: int = 0,
        progress: bool = False,
    ) -> Efficiency:
        """Train on (n, k) truth and (n,) bool passed flags; returns ``self``.

        The network of the lowest validation loss is kept; training stops after
        ``patience`` epochs without improvement (or at ``epochs``).
        """
        if len(truth) != len(passed) or passed.ndim != 1:
            raise InputError(
                f"truth {tuple(truth.shape)} and passed {tuple(passed.shape)} "
                "must have the same number of events"
            )
        y = passed.float()
        if y.min() == y.max():
            raise InputError("the efficiency needs both detected and missed events")
        self.scaler.fit(truth)
        x = self.scaler.forward(truth)
        bce = nn.BCEWithLogitsLoss()
        done = fit_supervised(self.net, x, y, lambda out, t: bce(out.view(-1), t), epochs,
                              batch_size, lr, patience, val_fraction, seed, progress,
                              "efficiency")  # fmt: skip
        self.epochs_run, self.val_loss = done.epochs_run, done.val_loss
        return self

    # ------------------------------------------------------------ saving
    def tensors(self, prefix: str = "eff.") -> dict[str, Tensor]:
        """The classifier's weights, for a file."""
        return {prefix + k: v.detach().contiguous() for k, v in self.net.state_dict().items()}

    def state(self) -> dict[str, Any]:
        """JSON-ready scaler and sizes."""
        return {"scaler": self.scaler.state(), "hidden": list(self.hidden_sizes)}

    @classmethod
    def from_saved(
        cls, state: dict[str, Any], tensors: dict[str, Tensor], prefix: str = "eff."
    ) -> Efficiency:
        """Rebuild from :meth:`state` and :meth:`tensors` (in evaluation mode)."""
        model = cls(state["scaler"]["names"], state["hidden"])
        model.scaler = Scaler.from_state(state["scaler"])
        n = len(prefix)
        model.net.load_state_dict({k[n:]: v for k, v in tensors.items() if k.startswith(prefix)})
        return model.eval()
