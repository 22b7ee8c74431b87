"""Batches of weighted points and the buffer that re-uses them (MadNIS buffered training)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


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


class SampleBuffer:
    """The last ``capacity`` points of fresh batches, drawn again uniformly for extra steps.

    Args:
        dims: d.
        capacity: points kept (the oldest are dropped first).
    """

    def __init__(self, dims: int, capacity: int) -> None:
        self.dims, self.capacity = dims, capacity
        self.rows: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.rows is None else len(self.rows)

    def add(self, batch: Batch) -> None:
        """Store a batch (n points)."""
        cols = [batch.y.to(torch.float64), batch.channel[:, None].to(torch.float64), batch.x,
                batch.fj[:, None], batch.log_qs[:, None]]  # fmt: skip
        if batch.log_prior is not None:
            cols.append(batch.log_prior)
        row = torch.cat(cols, dim=1)
        rows = row if self.rows is None else torch.cat((self.rows, row))
        self.rows = rows[-self.capacity :]

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> Batch:
        """n stored points drawn uniformly with replacement (flow points in ``dtype``)."""
        pick = torch.randint(len(self.rows), (n,), generator=generator, device=self.rows.device)
        rows = self.rows[pick]
        d = self.dims
        return Batch(
            y=rows[:, :d].to(dtype), channel=rows[:, d].to(torch.int64),
            x=rows[:, d + 1 : 2 * d + 1], fj=rows[:, 2 * d + 1], log_qs=rows[:, 2 * d + 2],
            log_prior=rows[:, 2 * d + 3 :] if rows.shape[1] > 2 * d + 3 else None,
        )  # fmt: skip
