"""``hepflows generate``: unweighted events of a physics process or a three-body decay.

Both commands run :mod:`hepflows.generate` (train or load, integrate, unweight,
write) and print its one result: the table's integral is the sigma of the
event summary and of the file header.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from hepflows.cli.common import PNG, library_default, output
from hepflows.console import console, count
from hepflows.generate import DECAY_DEFAULTS, DEFAULTS, Generation, generate_events
from hepflows.physics.processes.drell_yan import LEPTONS, DrellYanParameters

app = typer.Typer(no_args_is_help=True)

#: Drell-Yan defaults of the library (the command shows and uses them).
DY = DrellYanParameters()
LEPTON = {pdg: name for name, pdg in LEPTONS.items()}[DY.lepton]


def _calls(n: int) -> str:
    return f"{n:g}"


@app.callback()
def generate() -> None:
    """Generate unweighted events of a physics process or a decay."""


def _report(run: Generation, title: str, unit: str, what: str) -> None:
    """The one result, the events' summary and what was written."""
    from hepflows.integrate.report import channel_table, result_table

    console.print(result_table(run.result, title, unit))
    if (table := channel_table(run.result)) is not None:
        console.print(table)
    if run.training_calls is not None:
        density, gradient = run.training_calls
        console.print(f"training: {density:,} density + {gradient:,} gradient evaluations")
    if run.events is not None:
        console.print(run.events.summary())
        if run.calls_per_event is not None:
            console.print(f"{run.calls_per_event:.1f} integrand calls per {what}, "
                          "training included")  # fmt: skip
    if run.path is not None:
        console.print(f"wrote {len(run.events):,} {what}s to {run.path}")


def _n_events(events: str) -> int:
    return count(events, "--events") if events.strip() not in ("0", "0.0") else 0


def _check_integrator(integrator: Path | None) -> None:
    """A saved integrator is loaded if it exists; else it must be writable."""
    if integrator is not None and not integrator.exists():
        output(integrator, "--integrator", "integrator")


@app.command("drell-yan")
def drell_yan(
    events: Annotated[str, typer.Option(help="unweighted events (0: only sigma)")] = "1e4",
    out: Annotated[Path | None, typer.Option(help=".lhe, .lhe.gz or .h5")] = Path("dy.lhe"),
    zprime: Annotated[
        bool, typer.Option(help=f"include the Z' ({DY.mzp:g} GeV, {DY.wzp:g} GeV)")
    ] = DY.zprime,
    lepton: Annotated[str, typer.Option(help=" or ".join(LEPTONS))] = LEPTON,
    pdf: Annotated[str, typer.Option(help="PDF set (LHAPDF6 grid)")] = DY.pdf,
    train_calls: Annotated[
        str, typer.Option(help="matrix-element calls for training")
    ] = _calls(DEFAULTS["train_calls"]),
    calls: Annotated[
        str, typer.Option(help="calls for sigma (the sample also unweighted into events)")
    ] = _calls(DEFAULTS["calls"]),
    multichannel: Annotated[
        bool, typer.Option(help="one channel per propagator")
    ] = library_default(generate_events, "multichannel"),
    fold: Annotated[
        bool, typer.Option(help="fold the exact symmetries (phi, beam swap) before integrating")
    ] = library_default(generate_events, "fold"),
    mll_min: Annotated[
        float, typer.Option(help="lepton-pair mass cut (GeV)")
    ] = DY.sqrt_s_hat_min,
    pt_min: Annotated[
        float, typer.Option(help="lepton p_T cut, both leptons (GeV)")
    ] = DY.lepton_pt_min,
    eta_max: Annotated[
        float | None, typer.Option(help="lepton |eta| cut, both leptons (default: none)")
    ] = None if math.isinf(DY.lepton_eta_max) else DY.lepton_eta_max,
    integrator: Annotated[
        Path | None, typer.Option(help="saved integrator: loaded if it exists, else written")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = DEFAULTS["seed"],
) -> None:
    """pp -> l+ l- via gamma/Z/Z' at LO, 13 TeV (MadNIS set-up): sigma, channels, LHE events."""
    from hepflows.io import check_event_path
    from hepflows.physics import DrellYan
    from hepflows.physics.processes.drell_yan import lepton_id

    n_events = _n_events(events)
    if out is not None and n_events:
        check_event_path(out, "--out")
    _check_integrator(integrator)
    n_train, n_calls = count(train_calls, "--train-calls"), count(calls, "--calls")
    dy = DrellYan(zprime=zprime, lepton=lepton_id(lepton), pdf=pdf, sqrt_s_hat_min=mll_min,
                  lepton_pt_min=pt_min, lepton_eta_max=math.inf if eta_max is None else eta_max)
    run = generate_events(dy, n_events, out=out if n_events else None, train_calls=n_train,
                          calls=n_calls, seed=seed, multichannel=multichannel,
                          integrator=integrator, fold=fold)  # fmt: skip
    bosons = "gamma/Z/Z'" if zprime else "gamma/Z"
    title = f"pp -> {lepton}+{lepton}- via {bosons}, {dy.params.sqrt_s / 1e3:g} TeV, LO"
    _report(run, title, "pb", "event")
    if run.path is not None:
        console.print("(IDWTUP = ±4, XWGTUP = sigma / N, sigma and its error in <init>)")


@app.command("decay")
def decay(
    name: Annotated[str, typer.Argument(help="lambda-c (Lambda_c+ -> p K- pi+) or pi1800")],
    events: Annotated[str, typer.Option(help="unweighted decays (0: only the integral)")] = "1e4",
    out: Annotated[Path | None, typer.Option(help=".lhe, .lhe.gz or .h5")] = None,
    method: Annotated[
        str, typer.Option(help="fab (uses the gradient), variance or rkl")
    ] = DECAY_DEFAULTS["method"],
    train_calls: Annotated[
        str, typer.Option(help="training calls (FAB: density + gradient evaluations)")
    ] = _calls(DECAY_DEFAULTS["train_calls"]),
    calls: Annotated[
        str, typer.Option(help="calls for the integral (the sample also unweighted into decays)")
    ] = _calls(DECAY_DEFAULTS["calls"]),
    plot: Annotated[
        Path | None, typer.Option(help="PNG: Dalitz plot of the generated decays")
    ] = None,
    integrator: Annotated[
        Path | None, typer.Option(help="saved integrator: loaded if it exists, else written")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = DECAY_DEFAULTS["seed"],
) -> None:
    """Three-body decays from differentiable amplitudes: integral, ESS, Dalitz plot, events."""
    from hepflows.errors import ConfigError
    from hepflows.generate import DECAY_METHODS, generate_decay
    from hepflows.io import check_event_path
    from hepflows.physics.decays import get_decay

    if method not in DECAY_METHODS:
        raise ConfigError(f"--method must be one of {', '.join(DECAY_METHODS)}, got {method!r}")
    n_events = _n_events(events)
    if out is not None and n_events:
        check_event_path(out, "--out")
    if plot is not None and n_events:
        from hepflows.extras import require

        output(plot, "--plot", "plot", PNG)
        for module in ("matplotlib", "mplhep"):
            require(module, "plots", "--plot")
    _check_integrator(integrator)
    n_train, n_calls = count(train_calls, "--train-calls"), count(calls, "--calls")
    f = get_decay(name)
    run = generate_decay(f, n_events, out=out, method=method, train_calls=n_train, calls=n_calls,
                         seed=seed, integrator=integrator)  # fmt: skip
    _report(run, f"{f.name}: int |M|^2 ds12 ds23 ({method})", "GeV^4", "decay")
    if plot is not None and run.events is not None:
        from hepflows.plots import event_dalitz_plot

        event_dalitz_plot(f, run.events, plot, f"{f.name}, {method}")
        console.print(f"wrote {plot}")
