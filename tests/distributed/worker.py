"""Scenarios run by tests/distributed under ``torchrun`` (or as one plain process).

``python worker.py SCENARIO OUT_DIR``: each rank writes ``OUT_DIR/SCENARIO.rank<R>.pt``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from hepflows import distributed


def fit_flow(out: Path) -> dict:
    """Three steps of fit() on one data set: the parameters after them."""
    from hepflows.flows import CouplingFlow
    from hepflows.flows.training import fit
    from hepflows.random import seeded

    data = torch.randn(4096, 2, generator=torch.Generator().manual_seed(3)) * 0.5 + 0.2
    with seeded(0):  # module initialisation draws from the global stream
        flow = CouplingFlow(2, transforms=2, hidden=(16,), seed=0)
    losses = fit(flow, data, steps=int(os.environ.get("STEPS", 3)), batch_size=256, lr=1e-2, seed=0)
    return {"params": [p.detach().clone() for p in flow.parameters()], "losses": losses}


def integrate(out: Path) -> dict:
    """An unstratified and a stratified integral of a camel from a trained-free integrator."""
    from hepflows.integrate import NeuralIntegrator
    from hepflows.integrate.integrands import camel

    integ = NeuralIntegrator(camel(2), 2, seed=0)
    plain = integ.integrate(calls=20_000, stratified=False)
    strat = integ.integrate(calls=20_000)
    return {"plain": (plain.value, plain.error, plain.calls),
            "strat": (strat.value, strat.error, strat.calls)}  # fmt: skip


SCENARIOS = {"fit": fit_flow, "integrate": integrate}

if __name__ == "__main__":
    name, out = sys.argv[1], Path(sys.argv[2])
    distributed.init()
    result = SCENARIOS[name](out)
    result["world"] = distributed.world_size()
    torch.save(result, out / f"{name}.rank{distributed.rank()}.pt")
    distributed.shutdown()
