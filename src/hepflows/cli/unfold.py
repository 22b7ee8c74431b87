"""``hepflows unfold``: simulate Drell-Yan pairs, train an unfolding, unfold measured events.

The pairs are the benchmark set-up of :data:`hepflows.inference.SETUP` seen by
the toy detector (:class:`~hepflows.inference.ToyDetector`). Every default comes
from the library (:func:`hepflows.generate.generate_pairs`,
:func:`hepflows.inference.unfolding.train`, :func:`~hepflows.inference.unfolding.unfold`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hepflows.cli.common import JSON, SAFETENSORS, SHOWERS, Device, library_default, output
from hepflows.console import console, count
from hepflows.device import resolve_device
from hepflows.errors import ConfigError
from hepflows.generate import generate_pairs
from hepflows.inference.spinup import SPINUP
from hepflows.inference.unfolding import METHODS, unfold
from hepflows.inference.unfolding import train as train_unfolding

app = typer.Typer(no_args_is_help=True)

TRAIN = {k: library_default(train_unfolding, k) for k in ("method", "ensemble", "steps",
         "batch_size", "transforms", "bins", "efficiency_epochs", "seed")}  # fmt: skip
UNFOLD = {k: library_default(unfold, k) for k in ("samples", "ensemble", "seed")}
EM = {k: library_default(SPINUP.fit, k) for k in ("iterations", "steps", "refine")}


@app.callback()
def unfold_group() -> None:
    """Unfold Drell-Yan dilepton events: toy detector pairs, cINN or SPINUP."""


def _names(text: str) -> tuple[str, ...]:
    from hepflows.inference.observables import check_observables

    return check_observables(tuple(n.strip() for n in text.split(",") if n.strip()))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="pairs file to write (.h5)")] = Path("pairs.h5"),
    events: Annotated[str, typer.Option(help="events, detected or not")] = "2e4",
    zprime: Annotated[
        bool, typer.Option(help="include the 400 GeV Z' (data prior P1; off: P0)")
    ] = False,
    observables: Annotated[str, typer.Option(help="comma-separated observables")] = (
        "m_ll,y_ll,cos_cs"
    ),
    seed: Annotated[int, typer.Option(help="seed of generation (detector: seed + 1)")] = 0,
    train_calls: Annotated[
        str, typer.Option(help="training budget of the event generator's integrator")
    ] = str(library_default(generate_pairs, "train_calls")),
) -> None:
    """Generate Drell-Yan events, pass them through the toy detector, write the pairs."""
    from hepflows.inference import write_pairs

    output(out, "--out", "pairs file", SHOWERS)
    names = _names(observables)
    t0 = time.perf_counter()
    calls = count(train_calls, "--train-calls")
    pairs = generate_pairs(count(events, "--events"), zprime, seed=seed, names=names,
                           train_calls=calls, progress=True)  # fmt: skip
    write_pairs(out, pairs)
    console.print(f"wrote {len(pairs):,} pairs ({', '.join(names)}; Z' "
                  f"{'on' if zprime else 'off'}; {pairs.efficiency:.1%} detected) to {out} "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip


@app.command()
def train(
    pairs: Annotated[Path, typer.Argument(help="simulated pairs (.h5), the training prior")],
    method: Annotated[str, typer.Option(help="cinn or spinup")] = TRAIN["method"],
    out: Annotated[Path, typer.Option(help="model file (.safetensors)")] = Path(
        "unfolding.safetensors"
    ),
    ensemble: Annotated[
        int, typer.Option(help="cINN members (bootstrap resamples)")
    ] = TRAIN["ensemble"],
    steps: Annotated[int, typer.Option(help="steps per conditional flow")] = TRAIN["steps"],
    batch_size: Annotated[int, typer.Option(help="pairs per step")] = TRAIN["batch_size"],
    transforms: Annotated[int, typer.Option(help="coupling blocks")] = TRAIN["transforms"],
    bins: Annotated[int, typer.Option(help="spline bins")] = TRAIN["bins"],
    hidden: Annotated[int, typer.Option(help="conditioner width (two layers)")] = 128,
    efficiency_epochs: Annotated[
        int, typer.Option(help="most epochs of the efficiency classifier")
    ] = TRAIN["efficiency_epochs"],
    seed: Annotated[int, typer.Option(help="random seed")] = TRAIN["seed"],
    device: Device = "cpu",
) -> None:
    """Train a cINN ensemble (posteriors) or SPINUP's forward model on simulated pairs."""
    from hepflows.inference import read_pairs

    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    output(out, "--out", "unfolding model", SAFETENSORS)
    resolve_device(device)  # a missing GPU stops here, before reading the pairs
    data = read_pairs(pairs)
    t0 = time.perf_counter()
    model = train_unfolding(data, method, ensemble=ensemble, steps=steps, batch_size=batch_size,
                            transforms=transforms, bins=bins, hidden=(hidden, hidden),
                            efficiency_epochs=efficiency_epochs, seed=seed,
                            progress=True, device=device)  # fmt: skip
    model.save(out)
    console.print(f"trained a {method} unfolding of {', '.join(model.names)} on {len(data):,} "
                  f"pairs in {time.perf_counter() - t0:.1f} s; wrote {out}")  # fmt: skip


@app.command()
def apply(
    model_file: Annotated[Path, typer.Argument(help="unfolding model (.safetensors)")],
    data: Annotated[Path, typer.Argument(help="measured pairs (.h5): reco of detected events")],
    out: Annotated[Path, typer.Option(help="unfolded events and histograms (.h5)")] = Path(
        "unfolded.h5"
    ),
    samples: Annotated[
        int | None, typer.Option(help="posterior points per event (default: cINN 50, SPINUP 128)")
    ] = UNFOLD["samples"],
    ensemble: Annotated[int, typer.Option(help="SPINUP fits")] = UNFOLD["ensemble"],
    iterations: Annotated[int, typer.Option(help="SPINUP EM iterations")] = EM["iterations"],
    em_steps: Annotated[int, typer.Option(help="SPINUP steps per M-step")] = EM["steps"],
    refine: Annotated[
        int,
        typer.Option(help="SPINUP refinement sweeps (20 for a resonance under the resolution)"),
    ] = EM["refine"],
    bins: Annotated[int, typer.Option(help="equal-population bins per histogram")] = 20,
    closure: Annotated[
        bool, typer.Option(help="compare with the truth the file holds (chi^2, calibration)")
    ] = True,
    plots: Annotated[
        Path | None, typer.Option(help="folder for the plots (default: next to --out)")
    ] = None,
    summary: Annotated[Path | None, typer.Option(help="write the figures as JSON")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = UNFOLD["seed"],
    device: Device = "cpu",
) -> None:
    """Unfold the detected events of DATA; write unfolded events, histograms and plots."""
    from hepflows.inference import read_pairs
    from hepflows.inference.unfolding import UnfoldingModel, binning, write_unfolded

    output(out, "--out", "unfolded-events file", SHOWERS)
    output(summary, "--summary", "summary", JSON)
    model = UnfoldingModel.load(model_file, device=resolve_device(device))
    pairs = read_pairs(data)
    model.check(pairs.observables)
    measured = pairs.reco[pairs.passed]
    t0 = time.perf_counter()
    options = {"iterations": iterations, "steps": em_steps, "refine": refine}
    result = unfold(model, measured, pairs.observables, samples=samples, ensemble=ensemble,
                    seed=seed, spinup=options, progress=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    reference = pairs.truth if closure else result.events()
    edges = binning(reference, pairs.observables, bins)
    write_unfolded(out, result, edges)
    figures: dict[str, Any] = {"method": model.method, "measured": len(measured),
                               "unfolded": result.total(), "seconds": seconds}  # fmt: skip
    console.print(f"unfolded {len(measured):,} detected events to {result.total():,.0f} events "
                  f"({model.method}) in {seconds:.1f} s; wrote {out}")  # fmt: skip
    if closure:
        folder = plots if plots is not None else out.parent
        figures |= _closure(result, pairs, edges, folder, out.stem, seed)
    if summary is not None:
        from hepflows.io.atomic import atomic_write

        atomic_write(summary, lambda tmp: Path(tmp).write_text(json.dumps(figures, indent=1)))


def _closure(result: Any, pairs: Any, edges: dict, folder: Path, stem: str, seed: int) -> dict:
    """chi^2 per observable against the truth, calibration and TARP; plots; a table."""
    import numpy as np
    import torch

    from hepflows.inference import (
        calibration_curve,
        calibration_deviation,
        pit,
        tarp,
    )
    from hepflows.inference.plots import plot_calibration, plot_tarp, plot_unfolded

    folder.mkdir(parents=True, exist_ok=True)
    names = pairs.observables
    table = Table(title=f"closure of the {result.method} unfolding against the truth")
    for col in ("observable", "chi2/ndf", "calibration max dev"):
        table.add_column(col)
    hists: dict[str, dict] = {"truth": {}, result.method: {}}
    chi2: dict[str, dict] = {result.method: {}}
    out: dict[str, Any] = {"chi2_ndf": {}}
    for n, c in result.closure(pairs.truth, edges).items():
        out["chi2_ndf"][n] = c["chi2"] / c["ndf"]
        hists["truth"][n] = (c["truth"], np.sqrt(c["truth"]))
        hists[result.method][n] = (c["counts"], np.sqrt(np.diag(c["covariance"])))
        chi2[result.method][n] = (c["chi2"], c["ndf"])
    q = pit(result.points[0], pairs.truth[pairs.passed])
    deviation = calibration_deviation(q)
    levels, cdf = calibration_curve(q)
    alpha, ecp, area = tarp(result.points[0], pairs.truth[pairs.passed],
                            generator=torch.Generator().manual_seed(seed))  # fmt: skip
    out |= {"calibration_max_dev": dict(zip(names, deviation.tolist(), strict=True)),
            "tarp_area": area}  # fmt: skip
    for j, n in enumerate(names):
        table.add_row(n, f"{out['chi2_ndf'][n]:.2f}", f"{deviation[j]:.3f}")
    console.print(table)
    console.print(f"TARP area {area:.3f} (0: calibrated)")
    plot_unfolded(edges, hists, folder / f"{stem}_histograms.png", chi2=chi2,
                  title=f"{result.method} unfolding",
                  log=[n for n in names if n == "m_ll"])  # fmt: skip
    plot_calibration(levels, cdf, names, folder / f"{stem}_calibration.png",
                     deviation=deviation)  # fmt: skip
    plot_tarp({result.method: (alpha, ecp, area)}, folder / f"{stem}_tarp.png")
    console.print(f"plots: {folder / stem}_{{histograms,calibration,tarp}}.png")
    return out
