"""``hepflows integrate``: neural importance sampling of a built-in test integrand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hepflows.cli.common import Device, library_default, output
from hepflows.console import console, count
from hepflows.integrate import NeuralIntegrator
from hepflows.integrate.trainers import ImportanceTrainer

app = typer.Typer(no_args_is_help=True)

#: Defaults taken from the library (the command and :class:`NeuralIntegrator` agree).
LOSS = library_default(ImportanceTrainer, "loss")
VEGAS = library_default(NeuralIntegrator, "vegas")


@app.command()
def integrate(
    integrand: Annotated[
        str, typer.Argument(help="gaussian, camel, polynomial, signed, resonances or comb")
    ],
    dims: Annotated[int, typer.Option(min=1, help="dimension d")] = 4,
    calls: Annotated[
        str, typer.Option(help="integrand calls for the final estimate (and the events)")
    ] = "1e5",
    train_calls: Annotated[str, typer.Option(help="calls for training (default: = calls)")] = "",
    loss: Annotated[str, typer.Option(help="variance, kl, rkl or moment<p>")] = LOSS,
    vegas: Annotated[
        bool | None, typer.Option(help="warm start from VEGAS grids \\[default: for d <= 4]")
    ] = VEGAS,
    multichannel: Annotated[
        bool, typer.Option(help="use the integrand's channels, if it has any (resonances, comb)")
    ] = True,
    channel_weights: Annotated[
        str, typer.Option(help="auto (mixture up to 8 invertible channels, else learned), "
                               "mixture, learned (MadNIS) or prior")
    ] = "auto",
    drop_channels: Annotated[
        float | None, typer.Option(help="drop channels whose share of the integral stays "
                                        "below this in training (e.g. 1e-3)")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    events: Annotated[
        int, typer.Option(min=0, help="unweighted events to generate (with --out: 10000)")
    ] = 0,
    out: Annotated[Path | None, typer.Option(help="event file: .lhe, .lhe.gz or .h5")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="training checkpoint: resumed if it exists, else written")
    ] = None,
    device: Device = "cpu",
) -> None:
    """Integrate a built-in test integrand with neural importance sampling.

    With --events or --out, the integral and the events come from the same fresh sample.
    """
    from hepflows.device import resolve_device
    from hepflows.integrate import builtin
    from hepflows.integrate.report import channel_table, result_table
    from hepflows.io import check_event_path, write_events

    resolve_device(device, float64=True)  # a missing GPU stops here, before any work
    out = check_event_path(out, "--out") if out is not None else None
    output(checkpoint, "--checkpoint", "checkpoint")
    f = builtin(integrand, dims)
    n_eval = count(calls, "--calls")
    n_train = count(train_calls, "--train-calls") if train_calls else n_eval
    channels = f.channels if multichannel else None
    integ = NeuralIntegrator(f, dims, seed=seed, loss=loss, vegas=vegas, channels=channels,
                             weights=channel_weights, drop_channels=drop_channels,
                             device=device)  # fmt: skip
    integ.train(calls=n_train, checkpoint=checkpoint)
    n_events = events or (10_000 if out is not None else 0)
    ev = integ.generate(n_events, calls=n_eval) if n_events else None
    result = ev.result if ev is not None else integ.integrate(calls=n_eval, progress=True)
    console.print(result_table(result, f"{integrand}, d = {dims}: neural importance sampling"))
    if (table := channel_table(result)) is not None:
        console.print(table)
    if integ.dropped_channels:
        console.print(f"dropped in training: {len(integ.dropped_channels)} channels ("
                      + ", ".join(f"{n} {s:.1e}" for n, s in integ.dropped_channels[:8])
                      + (", ..." if len(integ.dropped_channels) > 8 else "")
                      + " of the integral)")  # fmt: skip
    if ev is not None:
        console.print(ev.summary())
        if out is not None:
            write_events(out, ev)
            console.print(f"wrote {len(ev):,} events to {out}")
