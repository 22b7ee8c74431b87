"""Prioritised replay buffer of AIS samples (FAB, Midgley et al. 2208.01893, sec. 4.2).

Stores points x with their AIS log-weights log w (targeting p^2/q_old) and the
flow's log q_old(x) when stored. Batches are drawn without replacement with
probability proportional to w (the Gumbel top-k trick), so the training loss
needs no weights beyond the correction q_old / q for the flow having moved;
after a step, :meth:`PrioritisedReplayBuffer.adjust` multiplies the stored
weights by that correction (the target p^2/q moved with the flow). The oldest
entries are overwritten once the buffer is full.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hepflows.errors import ConfigError


class PrioritisedReplayBuffer:
    """A ring buffer of (x, log w, log q_old), sampled proportionally to w.

    Args:
        dims: d.
        capacity: entries kept.
        device: where the entries live (the integrator's device).
    """

    def __init__(self, dims: int, capacity: int, device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise ConfigError(f"buffer capacity must be >= 1, got {capacity}")
        self.x = torch.zeros(capacity, dims, dtype=torch.float64, device=device)
        self.log_w = torch.full((capacity,), -torch.inf, dtype=torch.float64, device=device)
        self.log_q = torch.zeros(capacity, dtype=torch.float64, device=device)
        self.size = 0
        self.next = 0

    @property
    def capacity(self) -> int:
        """Maximum number of entries."""
        return len(self.x)

    def add(self, x: Tensor, log_w: Tensor, log_q: Tensor) -> None:
        """Store (n, d) points with (n,) log-weights and (n,) flow log-densities."""
        n = len(x)
        if n > self.capacity:
            x, log_w, log_q, n = (
                x[-self.capacity :],
                log_w[-self.capacity :],
                log_q[-self.capacity :],
                self.capacity,
            )
        idx = (self.next + torch.arange(n, device=self.x.device)) % self.capacity
        self.x[idx] = x.to(torch.float64)
        # a non-finite weight (a chain that left the support) is never drawn
        # (neginf too: nan_to_num would turn -inf into the most negative finite float)
        self.log_w[idx] = torch.nan_to_num(
            log_w.to(torch.float64), nan=-torch.inf, posinf=-torch.inf, neginf=-torch.inf
        )
        self.log_q[idx] = log_q.to(torch.float64)
        self.next = (self.next + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Draw n distinct entries with probability proportional to w.

        Returns:
            ``(x, log_q_old, index)``: (m, d) points, (m,) stored log q and (m,)
            buffer indices, m = min(n, entries with finite weight).
        """
        if self.size == 0:
            raise ConfigError("the replay buffer is empty: add AIS samples before sampling")
        log_w = self.log_w[: self.size]
        u = torch.rand(self.size, generator=generator, dtype=torch.float64,
                       device=self.x.device).clamp_min(1e-300)
        keys = log_w - torch.log(-torch.log(u))  # Gumbel top-k = sampling without replacement
        m = min(n, int(torch.isfinite(log_w).sum()))
        idx = torch.topk(keys, m).indices
        return self.x[idx], self.log_q[idx], idx

    def adjust(self, index: Tensor, log_q_new: Tensor) -> None:
        """At ``index``, after a step: log w += log q_old - log q_new, log q_old = log q_new."""
        log_q_new = log_q_new.to(torch.float64)
        self.log_w[index] = self.log_w[index] + self.log_q[index] - log_q_new
        self.log_q[index] = log_q_new

    def state(self) -> dict[str, Tensor]:
        """Tensors for a checkpoint."""
        return {"x": self.x, "log_w": self.log_w, "log_q": self.log_q,
                "pos": torch.tensor([self.size, self.next], device="cpu")}  # fmt: skip

    def load_state(self, tensors: dict[str, Tensor]) -> None:
        """Restore from :meth:`state`."""
        if tensors["x"].shape != self.x.shape:
            raise ConfigError(
                f"replay buffer of shape {tuple(tensors['x'].shape)} does not fit "
                f"{tuple(self.x.shape)}"
            )
        dev = self.x.device
        self.x = tensors["x"].to(dev, copy=True)
        self.log_w = tensors["log_w"].to(dev, copy=True)
        self.log_q = tensors["log_q"].to(dev, copy=True)
        self.size, self.next = (int(v) for v in tensors["pos"])
