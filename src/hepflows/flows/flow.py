"""The :class:`Flow`: a transform to a base distribution, with checked inputs.

Every flow of hepflows offers the same interface:

* ``log_prob(x, context=None)``: (*, F) -> (*,)
* ``sample(n, context=None)``: -> (n, F)
* ``sample_and_log_prob(n, context=None)``: -> (n, F), (n,) in one
  reparametrised pass (differentiable, for reverse-KL and variance losses)
* ``to_latent(x, context)`` / ``to_data(z, context)``: the bijection with its
  log|det J| in either direction.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hepflows.errors import InputError, ShapeError
from hepflows.flows.distributions import BaseDistribution
from hepflows.flows.transforms import Transform


class Flow(nn.Module):
    """A normalising flow ``x = T^-1(z)``, ``z ~ base``.

    Args:
        transform: maps data to latent (normalising direction).
        base: base distribution on the latent space.
        features: F, data dimension.
        context: C, context width (0 = unconditional).
        domain: ``"real"`` (data in R^F) or ``"unit"`` (data in [0, 1]^F).
    """

    def __init__(
        self,
        transform: Transform,
        base: BaseDistribution,
        features: int,
        context: int = 0,
        domain: str = "real",
    ) -> None:
        super().__init__()
        self.transform = transform
        self.base = base
        self.features = features
        self.context = context
        self.domain = domain

    # ------------------------------------------------------------------ checks
    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the flow's parameters and buffers."""
        return self.base._ref.dtype

    def _check_tensor(self, t: object, name: str, width: int) -> Tensor:
        if not isinstance(t, Tensor):
            raise ShapeError(
                f"{name} must be a torch.Tensor of shape (N, {width}), got {type(t).__name__}; "
                "convert with torch.as_tensor(...)"
            )
        if t.ndim == 0 or t.shape[-1] != width:
            raise ShapeError(
                f"{name} must have shape (N, {width}) (last axis {width}), got {tuple(t.shape)}"
            )
        if t.dtype != self.dtype:
            raise ShapeError(
                f"{name} has dtype {t.dtype} but the flow is {self.dtype}: convert the input "
                f"with .to({self.dtype}) or the flow with .to({t.dtype})"
            )
        bad = ~torch.isfinite(t)
        if bad.any():
            n_bad = int(bad.any(-1).sum())
            raise InputError(
                f"{name} holds NaN or inf in {n_bad} of {t[..., 0].numel()} rows "
                f"(first at row {int(bad.reshape(-1, width).any(-1).nonzero()[0, 0])}); "
                "drop or fix them before calling the flow"
            )
        return t

    def _check_context(self, context: Tensor | None, batch: tuple[int, ...]) -> Tensor | None:
        if self.context == 0:
            if context is not None:
                raise ShapeError(
                    "this flow takes no context (context=0) but one was given; "
                    "pass context=None or build the flow with context=C"
                )
            return None
        if context is None:
            raise ShapeError(
                f"this flow is conditional: pass context of shape (N, {self.context})"
            )
        context = self._check_tensor(context, "context", self.context)
        if context.ndim == 1:
            context = context.expand(*batch, self.context)
        elif tuple(context.shape[:-1]) != batch:
            raise ShapeError(
                f"context must have shape {(*batch, self.context)} or ({self.context},) to "
                f"match the inputs, got {tuple(context.shape)}"
            )
        return context.reshape(-1, self.context)

    def _check_x(self, x: Tensor, name: str = "x") -> Tensor:
        x = self._check_tensor(x, name, self.features)
        if self.domain == "unit":
            outside = (x < 0) | (x > 1)
            if outside.any():
                raise InputError(
                    f"{name} has {int(outside.any(-1).sum())} rows outside the unit cube "
                    "[0, 1]^F of this flow (domain='unit'); map the data into the cube first"
                )
        return x

    def _check_n(self, n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ShapeError(f"n must be a non-negative int, got {n!r}")
        return n

    def _sample_context(self, n: int, context: Tensor | None) -> Tensor | None:
        if self.context and isinstance(context, Tensor) and context.ndim == 2:
            if context.shape[0] == 1:
                context = context[0]
            elif context.shape[0] != n:
                raise ShapeError(
                    f"context has {context.shape[0]} rows but {n} samples were asked for: "
                    f"pass context of shape ({n}, {self.context}) or ({self.context},)"
                )
        return self._check_context(context, (n,))

    # --------------------------------------------------------------- interface
    def to_latent(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The bijection, data -> latent.

        Args:
            x: (*, F) data.
            context: (*, C) or (C,) context, or ``None``.

        Returns:
            ``(z, ladj)``: (*, F) latent points and (*,) log|det dz/dx|.
        """
        x = self._check_x(x)
        batch = tuple(x.shape[:-1])
        c = self._check_context(context, batch)
        z, ladj = self.transform(x.reshape(-1, self.features), c)
        return z.reshape(x.shape), ladj.reshape(batch)

    def to_data(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The inverse bijection, latent -> data.

        Args:
            z: (*, F) latent points.
            context: (*, C) or (C,) context, or ``None``.

        Returns:
            ``(x, ladj)``: (*, F) data and (*,) log|det dx/dz|.
        """
        z = self._check_tensor(z, "z", self.features)
        batch = tuple(z.shape[:-1])
        c = self._check_context(context, batch)
        x, ladj = self.transform.inverse(z.reshape(-1, self.features), c)
        return x.reshape(z.shape), ladj.reshape(batch)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Log-density of the data.

        Args:
            x: (*, F) data.
            context: (*, C) or (C,) context, or ``None``.

        Returns:
            (*,) log q(x | context).
        """
        z, ladj = self.to_latent(x, context)
        return self.base.log_prob(z) + ladj

    forward = log_prob

    def sample(
        self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw samples.

        Args:
            n: number of samples.
            context: (n, C) one context per sample, or (C,) shared, or ``None``.
            generator: torch generator for reproducible draws.

        Returns:
            (n, F) samples.
        """
        c = self._sample_context(self._check_n(n), context)
        x, _ = self.transform.inverse(self.base.sample(n, generator), c)
        return x

    def sample_and_log_prob(
        self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw samples and their log-density in one reparametrised pass.

        Gradients flow through both outputs to the flow's parameters.

        Args:
            n: number of samples.
            context: (n, C) or (C,) context, or ``None``.
            generator: torch generator for reproducible draws.

        Returns:
            ``(x, log_q)``: (n, F) samples and (n,) their log-density.
        """
        c = self._sample_context(self._check_n(n), context)
        z = self.base.sample(n, generator)
        x, ladj = self.transform.inverse(z, c)
        return x, self.base.log_prob(z) - ladj
