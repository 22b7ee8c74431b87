"""``hepflows mem``: fit a Drell-Yan parameter to measured events by the matrix-element method.

Events: a pairs file in the MEM's lepton variables, e.g.
``hepflows unfold simulate --zprime --observables pt_minus,pt_plus,eta_minus,eta_plus``.
The transfer function is the toy detector's closed form by default, or a
trained :class:`~hepflows.inference.learned_mem.LearnedTransfer` (``--transfer``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hepflows.cli.common import JSON, PNG, Device, library_default, output
from hepflows.console import console
from hepflows.device import resolve_device
from hepflows.errors import InputError
from hepflows.inference.mem import PARAMETERS, fit

app = typer.Typer(no_args_is_help=True)
#: Names a user may give, and the process parameter each means.
ALIASES = {"zprime_mass": "mzp", "zprime_width": "wzp", "sin2_theta_w": "sin2w",
           **{p: p for p in PARAMETERS}}  # fmt: skip


@app.callback()
def mem_group() -> None:
    """Matrix-element method: fit a Drell-Yan parameter to measured lepton events."""


@app.command("fit")
def fit_command(
    data: Annotated[Path, typer.Option(help="pairs file in lepton variables (.h5)")],
    param: Annotated[str, typer.Option(help=f"one of {', '.join(ALIASES)}")] = "zprime_mass",
    range_: Annotated[
        tuple[float, float], typer.Option("--range", help="scan range of the parameter")
    ] = (395.0, 405.0),
    grid: Annotated[int, typer.Option(help="scan points")] = library_default(fit, "grid"),
    points: Annotated[int, typer.Option(help="sampler points per event")] = library_default(
        fit, "points"
    ),
    events: Annotated[int | None, typer.Option(help="use the first N detected events")] = None,
    transfer: Annotated[
        Path | None, typer.Option(help="learned transfer (.safetensors); default: exact")
    ] = None,
    plot: Annotated[Path, typer.Option(help="scan plot (.png)")] = Path("mem_scan.png"),
    summary: Annotated[Path | None, typer.Option(help="figures (.json)")] = None,
    seed: Annotated[int, typer.Option(help="seeds the per-event sampler")] = 0,
    device: Device = "cpu",
) -> None:
    """Scan one parameter: best value, 68 % / 95 % intervals, the scan plot."""
    from hepflows.inference import leptons, read_pairs
    from hepflows.inference.plots import plot_scan
    from hepflows.io.atomic import atomic_write

    if param not in ALIASES:
        raise InputError(f"--param must be one of {', '.join(ALIASES)}, got {param!r}")
    output(plot, "--plot", "plot", PNG)
    output(summary, "--summary", "summary", JSON)
    dev = resolve_device(device)  # a missing GPU stops here, before any work
    if not data.is_file():
        raise InputError(f"no data file at {data}: check the path")
    pairs = read_pairs(data)
    if pairs.observables != leptons.RECO:
        raise InputError(
            f"{data} holds {list(pairs.observables)}; the MEM needs {list(leptons.RECO)}: "
            "simulate with --observables " + ",".join(leptons.RECO)
        )
    reco = pairs.reco[pairs.passed][:events]
    model_transfer = None
    if transfer is not None:
        from hepflows.inference.learned_mem import LearnedTransfer

        model_transfer = LearnedTransfer.load(transfer, device=dev)
    name = ALIASES[param]
    console.print(f"MEM fit of {name} on {len(reco)} detected events, {grid} points in "
                  f"[{range_[0]:g}, {range_[1]:g}], {points} sampler points per event, "
                  f"transfer: {'learned' if transfer else 'exact'}")  # fmt: skip
    result = fit(reco, name, range_, grid=grid, transfer=model_transfer, points=points,
                 seed=seed)  # fmt: skip
    console.print(result.summary())
    plot_scan(result, plot, title=f"MEM scan of {name}, {len(reco)} events")
    console.print(f"plot: {plot}")
    if summary is not None:
        figures = {"parameter": name, "best": result.best, "sigma": result.sigma,
                   "interval68": list(result.interval68), "interval95": list(result.interval95),
                   "grid": result.grid.tolist(), "nll2": result.nll2.tolist(),
                   "events": len(reco), **result.info}  # fmt: skip
        text = json.dumps(figures, indent=1)
        atomic_write(summary, lambda tmp: Path(tmp).write_text(text))
