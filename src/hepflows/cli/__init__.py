"""The ``hepflows`` command: thin, it parses, calls the library and prints.

Errors of the library (:class:`hepflows.HepflowsError`) become a one-line
message on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

import hepflows
from hepflows.calo.cli import calo_app
from hepflows.console import console, count, err_console
from hepflows.errors import HepflowsError

app = typer.Typer(
    name="hepflows",
    help="Fast and faithful particle-physics simulation and inference with normalizing flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
demo_app = typer.Typer(help="Demonstrations on built-in defaults (no data needed).",
                       no_args_is_help=True)  # fmt: skip
app.add_typer(demo_app, name="demo")
generate_app = typer.Typer(help="Generate unweighted events of a physics process.",
                           no_args_is_help=True)  # fmt: skip
app.add_typer(generate_app, name="generate")
app.add_typer(calo_app, name="calo")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"hepflows {hepflows.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version_: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:  # fmt: skip
    """Fast and faithful particle-physics simulation and inference with normalizing flows."""


@app.command()
def info() -> None:
    """Versions, threads and device: what to paste into a bug report."""
    import torch

    table = Table(title="hepflows environment", show_header=False)
    table.add_row("hepflows", hepflows.__version__)
    table.add_row("python", platform.python_version())
    table.add_row("platform", f"{platform.system()} {platform.machine()}")
    packages = ("torch numpy scipy safetensors typer rich matplotlib mplhep h5py zuko nflows "
                "vegas madnis pylhe pythia8mc polarimetry-lc2pkpi jax").split()  # fmt: skip
    for pkg in packages:
        try:
            table.add_row(pkg, version(pkg))
        except PackageNotFoundError:
            table.add_row(pkg, "[dim]not installed[/dim]")
    table.add_row("torch threads", str(torch.get_num_threads()))
    table.add_row("cpu cores", str(os.cpu_count()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    table.add_row("device", device)
    console.print(table)


@demo_app.command("flows")
def demo_flows(
    density: Annotated[str, typer.Option(help="two-moons, ring or gaussian-mixture")] = "two-moons",
    steps: Annotated[int, typer.Option(min=1, help="training steps")] = 1500,
    batch_size: Annotated[int, typer.Option(min=1, help="samples per step")] = 512,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("flows_demo.png"),
) -> None:
    """Fit a coupling spline flow to a toy 2D density; print the NLL and save a plot."""
    from hepflows.demo import flows_demo

    r = flows_demo(density, steps=steps, batch_size=batch_size, seed=seed, out=out)
    table = Table(title=f"CouplingFlow on {r.density} ({r.steps} steps, {r.seconds:.1f} s)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("NLL on 50k fresh samples [nats]", f"{r.nll_test:.4f}")
    if r.nll_target is not None:
        table.add_row("entropy of the target [nats]", f"{r.nll_target:.4f}")
        table.add_row("KL(target || flow) [nats]", f"{r.kl:.4f}")
    table.add_row("plot", str(r.plot))
    console.print(table)


def _print_result(result, title: str, unit: str = "") -> None:
    """The result table, and the per-channel table of a multi-channel integration."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("integral", f"{result.value:.8g} ± {result.error:.3g} {unit}".rstrip())
    if result.exact is not None:
        table.add_row("exact", f"{result.exact:.8g} (pull {result.pull:+.2f})")
    table.add_row("relative error", f"{result.relative_error:.3g}")
    table.add_row("σ·√N / I", f"{result.sigma_sqrt_n:.4g}")
    table.add_row("effective sample size", f"{result.ess:,.0f} of {result.calls:,}")
    table.add_row("unweighting eff. (max)", f"{result.unweighting_efficiency:.4g}")
    table.add_row(f"unweighting eff. ({result.quantile:g} quantile)",
                  f"{result.unweighting_efficiency_quantile:.4g}")  # fmt: skip
    table.add_row("calls (training + estimate)", f"{result.total_calls:,}")
    console.print(table)
    if result.channels:
        ctab = Table(title="channels (each channel's share of the integral and of the points)")
        for col in ("channel", "integral", "error", "share", "calls"):
            ctab.add_column(col, justify="left" if col == "channel" else "right")
        for ch in result.channels:
            ctab.add_row(ch.name, f"{ch.value:.6g}", f"{ch.error:.3g}",
                         f"{ch.value / result.value:.1%}", f"{ch.calls:,}")  # fmt: skip
        console.print(ctab)


@app.command()
def integrate(
    integrand: Annotated[
        str, typer.Argument(help="gaussian, camel, polynomial, signed or resonances")
    ],
    dims: Annotated[int, typer.Option(min=1, help="dimension d")] = 4,
    calls: Annotated[str, typer.Option(help="integrand calls for the final estimate")] = "1e5",
    train_calls: Annotated[str, typer.Option(help="calls for training (default: = calls)")] = "",
    loss: Annotated[str, typer.Option(help="variance, kl or rkl")] = "variance",
    vegas: Annotated[
        bool | None, typer.Option(help="warm start from VEGAS grids [default: for d <= 4]")
    ] = None,
    multichannel: Annotated[
        bool, typer.Option(help="use the integrand's channels, if it has any (resonances)")
    ] = True,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    events: Annotated[int, typer.Option(min=0, help="unweighted events to generate")] = 0,
    out: Annotated[Path | None, typer.Option(help="event file: .lhe, .lhe.gz or .h5")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="save/resume the integrator")] = None,
) -> None:
    """Integrate a built-in test integrand with neural importance sampling."""
    from hepflows.integrate import NeuralIntegrator, builtin

    f = builtin(integrand, dims)
    n_eval = count(calls, "--calls")
    n_train = count(train_calls, "--train-calls") if train_calls else n_eval
    channels = f.channels if multichannel else None
    integ = NeuralIntegrator(f, dims, seed=seed, loss=loss, vegas=vegas, channels=channels)
    integ.train(calls=n_train, checkpoint=checkpoint)
    result = integ.integrate(calls=n_eval, progress=True)
    _print_result(result, f"{integrand}, d = {dims}: neural importance sampling")
    if events or out is not None:
        from hepflows.io import write_events

        ev = integ.generate(events or 10_000)
        console.print(ev.summary())
        if out is not None:
            write_events(out, ev)
            console.print(f"wrote {len(ev):,} events to {out}")


@generate_app.command("drell-yan")
def drell_yan(
    events: Annotated[str, typer.Option(help="unweighted events")] = "1e4",
    out: Annotated[Path | None, typer.Option(help=".lhe, .lhe.gz or .h5")] = Path("dy.lhe"),
    zprime: Annotated[bool, typer.Option(help="include the Z' (400 GeV, 0.5 GeV)")] = True,
    lepton: Annotated[str, typer.Option(help="e or mu")] = "e",
    pdf: Annotated[str, typer.Option(help="PDF set (LHAPDF6 grid)")] = "NNPDF23_lo_as_0130_qed",
    train_calls: Annotated[str, typer.Option(help="matrix-element calls for training")] = "2e5",
    calls: Annotated[str, typer.Option(help="calls for the cross-section")] = "1e5",
    multichannel: Annotated[bool, typer.Option(help="one channel per propagator")] = True,
    fold: Annotated[
        bool, typer.Option(help="fold the exact symmetries (phi, beam swap) before integrating")
    ] = True,
    mll_min: Annotated[float, typer.Option(help="lepton-pair mass cut (GeV)")] = 15.0,
    pt_min: Annotated[float, typer.Option(help="lepton p_T cut, both leptons (GeV)")] = 0.0,
    eta_max: Annotated[
        float | None, typer.Option(help="lepton |eta| cut, both leptons (default: none)")
    ] = None,
    integrator: Annotated[
        Path | None, typer.Option(help="saved integrator: loaded if it exists, else written")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """pp -> l+ l- via gamma/Z/Z' at LO, 13 TeV (MadNIS set-up): sigma, channels, LHE events."""
    from hepflows.generate import generate_events
    from hepflows.physics import DrellYan

    leptons = {"e": 11, "mu": 13}
    if lepton not in leptons:
        raise HepflowsError(f"--lepton must be e or mu, got {lepton!r}")
    dy = DrellYan(zprime=zprime, lepton=leptons[lepton], pdf=pdf, sqrt_s_hat_min=mll_min,
                  lepton_pt_min=pt_min, lepton_eta_max=math.inf if eta_max is None else eta_max)
    n_events = count(events, "--events") if events not in ("0", "0.0") else 0
    run_ = generate_events(
        dy, n_events, out=out if n_events else None,
        train_calls=count(train_calls, "--train-calls"), calls=count(calls, "--calls"),
        seed=seed, multichannel=multichannel, integrator=integrator, fold=fold,
    )  # fmt: skip
    title = f"pp -> {lepton}+{lepton}- via gamma/Z{'/Z' if zprime else ''}, 13 TeV, LO"
    _print_result(run_.result, title.replace("/Z/Z", "/Z/Z'"), unit="pb")
    if run_.events is not None:
        console.print(run_.events.summary())
    if run_.path is not None:
        console.print(f"wrote {len(run_.events):,} events to {run_.path} (IDWTUP = ±4, "
                      "XWGTUP = sigma / N, sigma and its error in <init>)")  # fmt: skip


#: Decays of ``hepflows generate decay``.
DECAYS = ("lambda-c", "pi1800")


@generate_app.command("decay")
def decay(
    name: Annotated[str, typer.Argument(help="lambda-c (Lambda_c+ -> p K- pi+) or pi1800")],
    events: Annotated[str, typer.Option(help="unweighted decays")] = "1e4",
    out: Annotated[Path | None, typer.Option(help=".lhe, .lhe.gz or .h5")] = None,
    method: Annotated[str, typer.Option(help="fab (uses the gradient), variance or rkl")] = "fab",
    train_calls: Annotated[
        str, typer.Option(help="training calls (FAB: density + gradient evaluations)")
    ] = "1e5",
    calls: Annotated[str, typer.Option(help="calls for the integral")] = "1e5",
    plot: Annotated[
        Path | None, typer.Option(help="PNG: Dalitz plot of the generated decays")
    ] = None,
    integrator: Annotated[
        Path | None, typer.Option(help="saved integrator: loaded if it exists, else written")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Three-body decays from differentiable amplitudes: integral, ESS, Dalitz plot, events."""
    from hepflows.generate import generate_decay
    from hepflows.physics.decays import lc2pkpi, pi1800

    if name not in DECAYS:
        raise HepflowsError(f"unknown decay {name!r}: choose one of {', '.join(DECAYS)}")
    f = lc2pkpi() if name == "lambda-c" else pi1800()
    n_events = count(events, "--events") if events not in ("0", "0.0") else 0
    run_ = generate_decay(
        f, n_events, out=out, method=method, train_calls=count(train_calls, "--train-calls"),
        calls=count(calls, "--calls"), seed=seed, integrator=integrator,
    )  # fmt: skip
    _print_result(run_.result, f"{f.name}: int |M|^2 ds12 ds23 ({method})", unit="GeV^4")
    if run_.training_calls is not None:
        density, gradient = run_.training_calls
        console.print(f"training: {density:,} density + {gradient:,} gradient evaluations")
    if run_.events is not None:
        console.print(run_.events.summary())
        if plot is not None:
            from hepflows.plots import dalitz_plots

            d = f.dalitz
            inv = f.invariants(run_.events.x.clamp(1e-12, 1 - 1e-12))
            pair = (d.names[0] + d.names[1], d.names[1] + d.names[2])
            dalitz_plots({f"{f.name}, {method}": (inv["s12"], inv["s23"], None)},
                         (d.bounds("12"), d.bounds("23")),
                         (f"m²({pair[0]}) [GeV²]", f"m²({pair[1]}) [GeV²]"), plot)  # fmt: skip
            console.print(f"wrote {plot}")
    if run_.path is not None:
        console.print(f"wrote {len(run_.events):,} decays to {run_.path}")


def run() -> None:
    """Entry point: run the app, turning library errors into one line and exit code 2."""
    try:
        app()
    except HepflowsError as err:
        err_console.print(f"[bold red]error:[/bold red] {err}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    run()
