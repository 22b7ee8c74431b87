"""``hepflows demo``: demonstrations on built-in defaults (no data needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hepflows.cli.common import PNG, library_default, output
from hepflows.console import console
from hepflows.demo import flows_demo

app = typer.Typer(no_args_is_help=True)


@app.callback()
def demo() -> None:
    """Demonstrations on built-in defaults (no data needed)."""


#: The defaults of :func:`hepflows.demo.flows_demo`, which the command shows and uses.
DEFAULTS = {k: library_default(flows_demo, k) for k in ("density", "steps", "batch_size", "seed",
            "out")}  # fmt: skip
OUT = Path(DEFAULTS["out"])


@app.command("flows")
def demo_flows(
    density: Annotated[
        str, typer.Option(help="two-moons, ring or gaussian-mixture")
    ] = DEFAULTS["density"],
    steps: Annotated[int, typer.Option(min=1, help="training steps")] = DEFAULTS["steps"],
    batch_size: Annotated[
        int, typer.Option(min=1, help="samples per step")
    ] = DEFAULTS["batch_size"],
    seed: Annotated[int, typer.Option(help="random seed")] = DEFAULTS["seed"],
    out: Annotated[Path, typer.Option(help="PNG to write")] = OUT,
) -> None:
    """Fit a coupling spline flow to a toy 2D density; print the NLL and save a plot."""
    output(out, "--out", "plot", PNG)
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
