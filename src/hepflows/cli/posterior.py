"""``hepflows posterior``: train, sample and check amortised posteriors q(theta | x).

The simulator is the built-in ``signal-strength`` problem (a Z' signal strength
and a lepton energy-scale nuisance from the m_ll histogram) or a user's
``module:function`` taking (theta (n, d), torch.Generator) and returning
(n, ...) observations; its prior comes from the module's ``PRIOR`` or
``--prior name:uniform:low:high`` / ``name:normal:mean:std`` (repeatable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hepflows.cli.common import JSON, PNG, SAFETENSORS, Device, library_default, output
from hepflows.console import console
from hepflows.device import generator_on, resolve_device
from hepflows.errors import InputError
from hepflows.inference.posterior import Posterior

app = typer.Typer(no_args_is_help=True)


@app.callback()
def posterior_group() -> None:
    """Amortised posteriors: train on simulations, sample, check coverage."""


def _simulator(spec: str, prior_specs: list[str] | None) -> tuple[Any, Any, Any]:
    from hepflows.inference.simulators import load_simulator, parse_prior

    simulator, prior, problem = load_simulator(spec)
    if prior_specs:
        prior = parse_prior(prior_specs)
    if prior is None:
        raise InputError(f"the simulator {spec} brings no PRIOR: give --prior "
                         "name:uniform:low:high (one per parameter)")  # fmt: skip
    return simulator, prior, problem


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="posterior file to write (.safetensors)")],
    simulator: Annotated[
        str, typer.Option(help="'signal-strength' or a Python 'module:function'")
    ] = "signal-strength",
    prior: Annotated[
        list[str] | None, typer.Option(help="name:uniform:low:high or name:normal:mean:std")
    ] = None,
    simulations: Annotated[str, typer.Option(help="simulation budget, e.g. 1e4")] = "1e4",
    summary: Annotated[str, typer.Option(help="summary network: mlp, set or none")] = "mlp",
    ensemble: Annotated[int, typer.Option(help="independently trained flows")] = 1,
    steps: Annotated[int, typer.Option(help="optimiser steps per flow")] = library_default(
        Posterior.train, "steps"
    ),
    seed: Annotated[int, typer.Option(help="seeds simulations and training")] = 0,
    device: Device = "cpu",
) -> None:
    """Simulate theta ~ prior, x ~ simulator and train q(theta | x) on them."""
    import torch

    from hepflows.console import count
    from hepflows.inference.posterior import simulate

    output(out, "--out", "posterior file", SAFETENSORS)
    resolve_device(device)  # a missing GPU stops here, before any simulation
    n = count(simulations, "--simulations")
    sim, pri, _ = _simulator(simulator, prior)
    console.print(f"simulating {n} pairs with {simulator}; {pri}")
    theta, x = simulate(pri, sim, n, torch.Generator().manual_seed(seed))
    post = Posterior(pri, tuple(x.shape[1:]), summary=summary, ensemble=ensemble, seed=seed,
                     device=device)  # fmt: skip
    post.info = {"simulator": simulator, "prior_specs": prior or []}
    post.train(theta, x, steps=steps, batch_size=min(256, int(0.9 * n)), seed=seed,
               progress=True)  # fmt: skip
    post.save(out)
    best = [min(v) for v in post.val_losses if v]
    console.print(f"wrote {out}: {post.simulations} simulations, best held-out NLL "
                  f"{', '.join(f'{b:.4g}' for b in best)}")  # fmt: skip


def _observation(post: Posterior, observation: Path | None, truth: str | None, seed: int) -> Any:
    """x (1, ...) from a file (.npy, .json, .txt) or simulated at ``truth``."""
    import numpy as np
    import torch

    if (observation is None) == (truth is None):
        raise InputError("give either --observation FILE or --truth v1,v2,... (simulated)")
    if truth is not None:
        values = [float(v) for v in truth.split(",")]
        sim, _, _ = _simulator(post.info.get("simulator", ""), post.info.get("prior_specs"))
        theta = post.prior.check(torch.tensor([values], dtype=torch.float64), "--truth")
        return sim(theta, torch.Generator().manual_seed(seed)), values
    if not observation.is_file():
        raise InputError(f"no observation file at {observation}: check the path")
    suffix = observation.suffix
    if suffix == ".npy":
        x = np.load(observation, allow_pickle=False)
    elif suffix == ".json":
        x = np.asarray(json.loads(observation.read_text()), dtype=float)
    elif suffix in (".txt", ".csv"):
        x = np.loadtxt(observation, delimiter="," if suffix == ".csv" else None)
    else:
        raise InputError(f"cannot read {observation}: use .npy, .json, .txt or .csv")
    return torch.as_tensor(x, dtype=torch.float64).reshape(1, *post.observation_shape), None


@app.command()
def sample(
    model: Annotated[Path, typer.Argument(help="trained posterior (.safetensors)")],
    observation: Annotated[
        Path | None, typer.Option(help="one observation (.npy, .json, .txt, .csv)")
    ] = None,
    truth: Annotated[
        str | None, typer.Option(help="simulate the observation at these parameter values")
    ] = None,
    samples: Annotated[int, typer.Option(help="posterior draws")] = 10_000,
    out: Annotated[Path | None, typer.Option(help="draws to write (.npy)")] = None,
    plot: Annotated[Path | None, typer.Option(help="corner plot (.png)")] = None,
    reference: Annotated[
        bool, typer.Option(help="signal-strength: overlay the exact grid posterior")
    ] = False,
    seed: Annotated[int, typer.Option(help="seeds the draws (and a simulated observation)")] = 0,
    device: Device = "cpu",
) -> None:
    """Posterior draws for one observation: mean, std and 68 % / 95 % intervals."""
    import numpy as np
    import torch

    from hepflows.io.atomic import atomic_write

    output(out, "--out", "samples", (".npy",))
    output(plot, "--plot", "plot", PNG)
    post = Posterior.load(model, device=resolve_device(device))
    x, values = _observation(post, observation, truth, seed)
    draws = post.sample(x, samples, generator_on(post.device, seed + 1))[:, 0]
    console.print(f"{samples} draws of {', '.join(post.names)} ({post.simulations} "
                  "simulations trained the posterior)")  # fmt: skip
    q = torch.quantile(draws, torch.tensor([0.025, 0.16, 0.84, 0.975], dtype=torch.float64), 0)
    for j, name in enumerate(post.names):
        true = "" if values is None else f"   (truth {values[j]:g})"
        console.print(f"  {name}: {draws[:, j].mean():.5g} ± {draws[:, j].std():.3g}   68 % "
                      f"[{q[1, j]:.5g}, {q[2, j]:.5g}]   95 % [{q[0, j]:.5g}, {q[3, j]:.5g}]"
                      f"{true}")  # fmt: skip
    if out is not None:
        atomic_write(out, lambda tmp: np.save(open(tmp, "wb"), draws.numpy()))
        console.print(f"draws: {out}")
    if plot is not None:
        from hepflows.inference.plots import plot_posterior

        ref = None
        if reference:
            _, _, problem = _simulator(post.info.get("simulator", ""), None)
            if problem is None:
                raise InputError("--reference needs the signal-strength simulator")
            ref = problem.grid_samples(x[0], samples, torch.Generator().manual_seed(seed + 2))
        plot_posterior(draws, post.names, plot, truth=values, reference=ref, title=model.name)
        console.print(f"plot: {plot}")


@app.command()
def check(
    model: Annotated[Path, typer.Argument(help="trained posterior (.safetensors)")],
    pairs: Annotated[int, typer.Option(help="fresh test simulations")] = 300,
    samples: Annotated[int, typer.Option(help="posterior draws per test simulation")] = 1000,
    plot: Annotated[Path | None, typer.Option(help="SBC ranks and coverage (.png)")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the figures here (.json)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seeds the test simulations")] = 12345,
) -> None:
    """Coverage on fresh simulations: SBC KS p, TARP area, 68 % / 95 % coverage."""
    import torch

    from hepflows.inference.calibration import tarp
    from hepflows.inference.coverage import (
        binomial_error,
        coverage_curve,
        expected_coverage,
        plot_coverage,
        plot_sbc,
        sbc_check,
        sbc_ranks,
    )
    from hepflows.inference.posterior import simulate
    from hepflows.io.atomic import atomic_write

    output(plot, "--plot", "plot", PNG)
    output(json_out, "--json", "report", JSON)
    post = Posterior.load(model)
    sim, _, _ = _simulator(post.info.get("simulator", ""), post.info.get("prior_specs"))
    g = torch.Generator().manual_seed(seed)
    theta, x = simulate(post.prior, sim, pairs, g)
    s, lq = post.sample_and_log_prob(x, samples, g)
    lq_truth = post.log_prob(theta, x)
    ranks = sbc_ranks(s, theta)
    p = sbc_check(ranks, samples)
    levels, ecp, area = tarp(s, theta, generator=torch.Generator().manual_seed(seed + 1))
    cov = expected_coverage(lq, lq_truth, [0.68, 0.95])
    err = [float(binomial_error(lv, pairs)) for lv in (0.68, 0.95)]
    report = {"pairs": pairs, "samples": samples,
              "sbc_p": dict(zip(post.names, p.tolist(), strict=True)), "tarp_area": area,
              "coverage": {"0.68": float(cov[0]), "0.95": float(cov[1])}}  # fmt: skip
    passed = bool((p > 0.05).all()) and all(
        abs(float(c) - lv) < 3 * e for c, lv, e in zip(cov, (0.68, 0.95), err, strict=True)
    )
    report["passed"] = passed
    for name, pv in report["sbc_p"].items():
        console.print(f"SBC {name}: KS p = {pv:.3g}")
    console.print(f"TARP area |ECP - alpha| = {area:.4f}")
    console.print(f"coverage of the 68 % / 95 % HPD regions: {float(cov[0]):.3f} ± {err[0]:.3f}"
                  f" / {float(cov[1]):.3f} ± {err[1]:.3f}")  # fmt: skip
    console.print("passed" if passed else "FAILED (SBC p <= 0.05 or coverage off by > 3 errors)")
    if plot is not None:
        plot_sbc(ranks, samples, plot, post.names, title=model.name)
        curve = plot.with_name(plot.stem + "_coverage.png")
        plot_coverage(*coverage_curve(lq, lq_truth), curve, title=model.name,
                      tarp=(levels, ecp, area))  # fmt: skip
        console.print(f"plots: {plot}, {curve}")
    if json_out is not None:
        text = json.dumps(report, indent=1)
        atomic_write(json_out, lambda tmp: Path(tmp).write_text(text))
    if not passed:
        raise typer.Exit(1)
