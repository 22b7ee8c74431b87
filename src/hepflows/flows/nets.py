"""Conditioner networks: a plain MLP (coupling blocks) and MADE (autoregressive blocks).

Both end in a zero-initialised layer so that a fresh flow is the identity map,
and both emit parameters laid out as (P, F, N): P parameters for each of F
transformed features and N batch rows. The last layer computes ``W h^T``
directly in that layout (same cost as ``h W^T``), so the element-wise maps get
long contiguous rows without a transpose copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hepflows.errors import ConfigError
from hepflows.flows.bayesian import VBLinear


def transposed_linear(layer: nn.Module, h: Tensor) -> Tensor:
    """``layer(h).T`` computed as ``W h^T + b``: (N, in) -> (out, N), contiguous."""
    if isinstance(layer, VBLinear):
        return layer(h).T.contiguous()
    weight = layer.weight * layer.mask if isinstance(layer, MaskedLinear) else layer.weight
    return torch.addmm(layer.bias.unsqueeze(1), weight, h.T)


ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    """Activation module by name (relu, elu, gelu, silu, tanh)."""
    try:
        # In place: the pre-activations are not needed by the backward pass of a linear layer.
        return nn.ReLU(inplace=True) if name == "relu" else ACTIVATIONS[name]()
    except KeyError:
        known = sorted(ACTIVATIONS)
        raise ConfigError(f"unknown activation {name!r}: choose from {known}") from None


class MLP(nn.Module):
    """Plain fully connected network emitting (P, F, N) parameters.

    Args:
        inputs: input width (identity features + context).
        params: P, parameters per transformed feature.
        features: F, number of transformed features.
        hidden: hidden layer widths.
        act: activation name.
        bayesian: use variational Bayesian linear layers (BINN) instead of
            deterministic ones; their KL term is :meth:`kl`.
    """

    def __init__(
        self,
        inputs: int,
        params: int,
        features: int,
        hidden: Sequence[int] = (128, 128),
        act: str = "relu",
        bayesian: bool = False,
    ) -> None:
        super().__init__()
        self.params, self.features = params, features
        linear = VBLinear if bayesian else nn.Linear
        layers: list[nn.Module] = []
        width = inputs
        for h in hidden:
            layers += [linear(width, h), activation(act)]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.last = linear(width, params * features)
        _zero_init(self.last)

    def forward(self, x: Tensor) -> Tensor:
        """(N, inputs) -> (P, F, N)."""
        return transposed_linear(self.last, self.hidden(x)).view(self.params, self.features, -1)

    def kl(self) -> Tensor:
        """Sum of the KL terms of the Bayesian layers (0 for a deterministic MLP)."""
        return sum((m.kl() for m in self.modules() if isinstance(m, VBLinear)), torch.zeros(()))


def _zero_init(layer: nn.Module) -> None:
    """Zero the output layer so the flow starts as the identity."""
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if "logsig2" in name:
                continue
            p.zero_()


class MaskedLinear(nn.Linear):
    """Linear layer with a fixed binary connectivity mask (MADE, 1502.03509).

    Args:
        mask: (out, in) 0/1 connectivity.
    """

    def __init__(self, mask: Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder emitting (P, F, N) autoregressive parameters.

    Output parameters of feature i depend only on features ordered before i
    (and on the context, which connects to every hidden unit).

    Args:
        features: F.
        params: P, parameters per feature.
        context: C, context width (0 for none).
        hidden: hidden widths.
        order: (F,) autoregressive order (a permutation); default 0..F-1.
        act: activation name.
    """

    def __init__(
        self,
        features: int,
        params: int,
        context: int = 0,
        hidden: Sequence[int] = (128, 128),
        order: Tensor | None = None,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.features, self.params, self.context = features, params, context
        order = torch.arange(features) if order is None else torch.as_tensor(order)
        if order.shape != (features,) or not torch.equal(order.sort().values,
                                                         torch.arange(features)):  # fmt: skip
            raise ConfigError(
                f"order must be a permutation of range({features}), got {order.tolist()}"
            )
        degree_in = torch.cat([order + 1, torch.zeros(context, dtype=torch.long)])
        layers: list[nn.Module] = []
        prev = degree_in
        for h in hidden:
            # Hidden degrees cycle through 1..F-1; with a context (and room) also through
            # 0, so that units seeing only the context feed the first feature of the order.
            if context and h >= features:
                deg = torch.arange(h) % features
            else:
                deg = torch.arange(h) % max(features - 1, 1) + 1
            layers += [MaskedLinear((deg[:, None] >= prev[None, :]).long()), activation(act)]
            prev = deg
        deg_out = (order + 1).repeat(params)  # layout (P, F) flattened
        self.register_buffer("order", order, persistent=False)
        self.hidden = nn.Sequential(*layers)
        self.last = MaskedLinear((deg_out[:, None] > prev[None, :]).long())
        _zero_init(self.last)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """(N, F) and (N, C) -> (P, F, N)."""
        if context is not None:
            x = torch.cat((x, context), dim=-1)
        h = self.hidden(x)
        return transposed_linear(self.last, h).view(self.params, self.features, -1)

    def feature(self, x: Tensor, context: Tensor | None, i: int) -> Tensor:
        """The parameters of feature ``i`` alone: (N, F), (N, C) -> (P, N).

        Equal to ``self(x, context)[:, i]`` at a fraction of the cost of the
        output layer (which dominates for many features): what a sequential
        inversion needs, one feature per pass.
        """
        if context is not None:
            x = torch.cat((x, context), dim=-1)
        h = self.hidden(x)
        rows = slice(i, None, self.features)  # rows p * F + i of the (P, F) layout
        weight = self.last.weight[rows] * self.last.mask[rows]
        return torch.addmm(self.last.bias[rows].unsqueeze(1), weight, h.T)
