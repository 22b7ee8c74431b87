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
    """Plain and stratified estimates of a 2-D camel over 30 seeds, and one run's weights."""
    from hepflows.integrate import NeuralIntegrator
    from hepflows.integrate.integrands import camel

    f = camel(2)
    runs = []
    for seed in range(30):
        integ = NeuralIntegrator(f, 2, seed=seed, vegas=False)
        plain = integ.integrate(calls=4000, stratified=False)
        strat = integ.integrate(calls=4000)
        runs.append((plain.value, plain.error, strat.value, strat.error, plain.calls))
    integ = NeuralIntegrator(f, 2, seed=99, vegas=False)
    result, (_, w, _) = integ._estimate(3001, 100_000, False, 0.999, None, False)
    return {"runs": runs, "exact": f.exact, "one": (result.value, result.error, result.calls),
            "w": distributed.all_gather_cat(w)}  # fmt: skip


def train(out: Path) -> dict:
    """A short importance training (2 channels-free camel): weights and the trained integral."""
    from hepflows.integrate import NeuralIntegrator
    from hepflows.integrate.integrands import camel

    integ = NeuralIntegrator(camel(2), 2, seed=0, vegas=False)
    integ.train(calls=30_000, progress=False)
    r = integ.integrate(calls=20_000)
    return {"params": [p.detach().clone() for p in integ.parameters()],
            "result": (r.value, r.error, r.calls), "exact": camel(2).exact}  # fmt: skip


def resume(out: Path) -> dict:
    """Integrator training with checkpoints; on the first attempt rank 1 dies at iteration 12.

    ``torchrun --max-restarts 1`` restarts every rank, which resume from rank 0's checkpoint.
    """
    from hepflows.integrate import NeuralIntegrator
    from hepflows.integrate.integrands import camel
    from hepflows.training import Callback

    marker = out / "killed"

    class KillRankOne(Callback):
        def on_iteration(self, engine, logs) -> None:  # noqa: ANN001
            if distributed.rank() == 1 and engine.iteration == 12 and not marker.exists():
                marker.touch()
                os._exit(1)  # a crash: no clean-up, no barrier

    integ = NeuralIntegrator(camel(2), 2, seed=0, vegas=False, buffered_steps=0)
    start = 0
    ckpt = out / "ckpt.safetensors"
    if ckpt.exists():
        start = NeuralIntegrator.load(ckpt, camel(2)).plan.get("done", 0)
    history = integ.train(calls=40_000, progress=False, checkpoint=ckpt, checkpoint_every=5,
                          callbacks=[KillRankOne()])  # fmt: skip
    r = integ.integrate(calls=20_000)
    return {"iterations_this_attempt": len(history.loss), "plan": dict(integ.plan),
            "restart": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)),
            "killed": marker.exists(), "start_done": start,
            "params": [p.detach().clone() for p in integ.parameters()],
            "result": (r.value, r.error), "exact": camel(2).exact}  # fmt: skip


def calo(out: Path) -> dict:
    """One epoch of flow I and of a small teacher on 360 training showers, checkpointed."""
    from hepflows.calo import CaloFlow, ToySimulator, TrainingPlan, train

    showers = ToySimulator("calogan", seed=0).simulate(400)
    model = CaloFlow("calogan", student=False, moments=0, seed=0,
                     flow2={"transforms": 1, "bins": 4, "hidden": [16]})  # fmt: skip
    plan = TrainingPlan(epochs={"flow1": 1, "teacher": 1, "student": 0}, batch_size=64, seed=0,
                        lr={"flow1": 0.05, "teacher": 0.05, "student": 0.05})  # fmt: skip
    ckpt = out / f"calo{distributed.world_size()}.ckpt"
    start = [p.detach().clone() for p in model.parameters()]
    # plain SGD: Adam's normalised steps turn rounding noise in tiny gradients into lr-sized
    # differences, which would hide what is tested (the same gradients)
    history = train(model, showers, plan, checkpoint=ckpt, progress=False,
                    optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr))  # fmt: skip
    return {"params": [p.detach().clone() for p in model.parameters()],
            "val": {k: h["val"] for k, h in history.items()}, "ckpt": ckpt.exists(),
            "moved": max((p.detach() - q).abs().max().item()
                         for p, q in zip(model.parameters(), start, strict=True))}  # fmt: skip


def shards(out: Path) -> dict:
    """Sharded generation of camel(2) in 8 blocks, from the integrator the test saved."""
    from hepflows.generate import run_sharded
    from hepflows.integrate import NeuralIntegrator, camel

    f, w = camel(2), distributed.world_size()
    run = run_sharded(f, 800, lambda: NeuralIntegrator(f, 2, seed=0), out / f"shards{w}",
                      events_per_block=100, calls=2000, integrator=out / "camel.safetensors",
                      progress=False, merge_to=out / f"all{w}.h5", batch_size=512)  # fmt: skip
    return {"generated": run.generated, "skipped": run.skipped}


SCENARIOS = {"calo": calo, "fit": fit_flow, "integrate": integrate, "train": train,
             "resume": resume, "shards": shards}  # fmt: skip

if __name__ == "__main__":
    name, out = sys.argv[1], Path(sys.argv[2])
    distributed.init()
    result = SCENARIOS[name](out)
    result["world"] = distributed.world_size()
    torch.save(result, out / f"{name}.rank{distributed.rank()}.pt")
    distributed.shutdown()
