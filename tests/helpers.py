"""Helpers shared by the tests: random (non-identity) flows, exact Jacobians, device hygiene."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from hepflows.flows import IAF, MAF, CouplingFlow

CLASSES = {"coupling": CouplingFlow, "maf": MAF, "iaf": IAF}


def randomize(module: nn.Module, std: float = 0.25, seed: int = 0) -> nn.Module:
    """Overwrite every parameter with N(0, std^2) draws (seeded), in place.

    A fresh flow is the identity (zero last layers); this makes it a generic,
    non-trivial bijection so that inverses and Jacobians are really exercised.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(std * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return module


def random_flow(
    name: str,
    features: int = 3,
    domain: str = "real",
    context: int = 0,
    kind: str = "rqs",
    std: float = 0.25,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    **kwargs: Any,
):
    """A small randomly initialised flow of class ``name`` (coupling, maf, iaf)."""
    kwargs = {"transforms": 3, "bins": 6, "hidden": (16, 16), **kwargs}
    flow = CLASSES[name](features, context=context, domain=domain, kind=kind, **kwargs)
    return randomize(flow.to(dtype), std=std, seed=seed)


def per_sample_logdet(fn, x: Tensor) -> Tensor:
    """log|det d fn(x)_n / d x_n| per row from the full autograd Jacobian.

    Also checks that rows do not influence each other (off-diagonal blocks are 0).

    Args:
        fn: (N, F) -> (N, F).
        x: (N, F) points.

    Returns:
        (N,) log|det J_n|.
    """
    n = x.shape[0]
    jac = torch.autograd.functional.jacobian(fn, x)  # (N, F, N, F)
    blocks = jac.diagonal(dim1=0, dim2=2).permute(2, 0, 1)  # (N, F, F)
    off = jac.clone()
    off[torch.arange(n), :, torch.arange(n), :] = 0
    assert off.abs().max() == 0, "rows of a batch must not influence each other"
    return torch.linalg.slogdet(blocks).logabsdet


@contextmanager
def meta_default() -> Iterator[None]:
    """torch's default device is "meta" inside: a tensor made without an explicit device is a
    meta tensor and breaks the run (on a GPU it would land on the CPU)."""
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device("cpu")


def meta_default_on_cpu(device: str) -> contextlib.AbstractContextManager[None]:
    """:func:`meta_default` for a run on ``device="cpu"``; nothing on other devices."""
    return meta_default() if device == "cpu" else nullcontext()



def conserves_colour(table) -> bool:
    """Every LHE colour tag of each event in an (n, P, 13) particle table (or a list of
    events of pylhe particles) enters and leaves once: incoming colour = outgoing colour,
    incoming anticolour = outgoing anticolour, or a colour and an anticolour on one side."""
    from collections import Counter

    for event in table:
        net = Counter()
        for row in event:
            status, c1, c2 = ((row[1], row[4], row[5]) if not hasattr(row, "status")
                              else (row.status, row.color1, row.color2))  # fmt: skip
            sign = -1 if status < 0 else 1
            if c1:
                net[int(c1)] += sign
            if c2:
                net[int(c2)] -= sign
        if any(net.values()):
            return False
    return True
