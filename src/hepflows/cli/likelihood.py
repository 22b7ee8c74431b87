"""``hepflows likelihood``: export, inspect, validate and convert portable flow likelihood files.

Files are written by :func:`hepflows.inference.likelihood.export_likelihood`
(here: from a trained unfolding model) and checked by the nabu tests of
:mod:`hepflows.inference.validation` on held-out events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hepflows.cli.common import JSON, PNG, SAFETENSORS, output
from hepflows.console import console
from hepflows.errors import InputError

app = typer.Typer(no_args_is_help=True)
PARTS = ("forward", "cinn")


@app.callback()
def likelihood_group() -> None:
    """Portable flow likelihoods: export, show, validate (nabu tests), onnx."""


def held_out(
    names: tuple[str, ...], levels: tuple[str, ...], data: Path, events: int | None
) -> tuple[Any, Any, Any]:
    """x, c and weights from a data file for a likelihood q(x | c) of observables ``names``
    at ``levels`` (what x and c are, e.g. ``("reco", "truth")``).

    A pairs file (``hepflows unfold simulate``) gives its detected events at the
    levels the file declares (``reco``/``truth``); any other HDF5 file must hold
    datasets ``x`` (n, k), ``c`` (n, p) and optionally ``weights`` (n,).
    """
    import h5py
    import torch

    from hepflows.inference import read_pairs

    with h5py.File(data, "r") as f:
        is_pairs = "truth" in f and "reco" in f
        keys = set(f)
    if is_pairs:
        pairs = read_pairs(data)
        if tuple(names) != pairs.observables:
            raise InputError(f"{data} holds observables {list(pairs.observables)}, the "
                             f"likelihood takes {list(names)}")  # fmt: skip
        arrays = {"reco": pairs.reco[pairs.passed], "truth": pairs.truth[pairs.passed]}
        if set(levels) != set(arrays):
            raise InputError(f"a pairs file gives reco and truth, the likelihood is "
                             f"q({levels[0]} | {levels[1]})")  # fmt: skip
        x, c, w = arrays[levels[0]], arrays[levels[1]], pairs.weights[pairs.passed]
    elif {"x", "c"} <= keys:
        with h5py.File(data, "r") as f:
            x, c = torch.as_tensor(f["x"][()]), torch.as_tensor(f["c"][()])
            w = torch.as_tensor(f["weights"][()]) if "weights" in f else None
        if c.ndim == 1:
            c = c[:, None]
    else:
        raise InputError(f"{data} is neither a pairs file (truth, reco) nor holds datasets "
                         f"'x' and 'c' (it has {sorted(keys)})")  # fmt: skip
    if events is not None:
        x, c = x[:events], c[:events]
        w = None if w is None else w[:events]
    return x, c, w


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="trained unfolding model (.safetensors)")],
    out: Annotated[Path, typer.Argument(help="likelihood file to write (.safetensors)")],
    part: Annotated[
        str, typer.Option(help="forward: T(reco | truth) of spinup; cinn: q(truth | reco)")
    ] = "forward",
    member: Annotated[int, typer.Option(help="cINN ensemble member")] = 0,
    data: Annotated[
        Path | None, typer.Option(help="held-out pairs (.h5) to validate on; results go in")
    ] = None,
) -> None:
    """Export a network of an unfolding model as a portable likelihood file."""
    from hepflows.inference.likelihood import export_likelihood
    from hepflows.inference.observables import units
    from hepflows.inference.unfolding import UnfoldingModel
    from hepflows.inference.validation import validate

    if part not in PARTS:
        raise InputError(f"--part must be one of {', '.join(PARTS)}, got {part!r}")
    output(out, "OUT", "likelihood file", SAFETENSORS)
    m = UnfoldingModel.load(model)
    if part == "forward":
        if m.forward is None:
            raise InputError(f"{model} is a {m.method} model without a forward model: "
                             "use --part cinn, or a spinup model")  # fmt: skip
        density, levels = m.forward, ("reco", "truth")
    else:
        if not 0 <= member < len(m.posteriors):
            raise InputError(f"--member must lie in [0, {len(m.posteriors)})")
        density, levels = m.posteriors[member], ("truth", "reco")
    # declared ranges: truth, the simulation's (its support); reco, the physical ones
    physical = {n: RANGES.get(n, (-1e30, 1e30)) for n in m.names}
    support = m.settings.get("support")
    truth = physical if support is None else {
        n: (support[0][j], support[1][j]) for j, n in enumerate(m.names)}  # fmt: skip
    ranges = {"reco": physical, "truth": truth}
    options = {"units": dict(zip(m.names, units(m.names), strict=True)), "levels": levels,
               "x_ranges": ranges[levels[0]], "c_ranges": ranges[levels[1]],
               "description": f"{m.method} {part} of {model.name}"}  # fmt: skip
    if data is not None:
        report = validate(density, *held_out(m.names, levels, data, None))
        console.print(report.summary())
        options["validation"] = report.to_dict()
    export_likelihood(density, out, **options)
    console.print(f"wrote {out}")


#: Declared ranges of the dilepton observables (GeV for masses): the physical ones.
RANGES = {"m_ll": (0.0, 13000.0), "y_ll": (-10.0, 10.0), "cos_cs": (-1.0, 1.0),
          "pt_ll": (0.0, 13000.0)}  # fmt: skip


@app.command()
def show(
    path: Annotated[Path, typer.Argument(help="likelihood file (.safetensors)")],
) -> None:
    """Print what a likelihood file holds: inputs, ranges, provenance, validation."""
    from hepflows.inference.likelihood import load_likelihood

    console.print(load_likelihood(path).summary())


@app.command()
def onnx(
    path: Annotated[Path, typer.Argument(help="likelihood file (.safetensors)")],
    out: Annotated[Path, typer.Argument(help="ONNX graph of log q(x | c) to write (.onnx)")],
    check: Annotated[int, typer.Option(help="events to compare with torch (0: none)")] = 1000,
) -> None:
    """Convert a likelihood file to an ONNX graph (inputs x, c; output log_prob), checked."""
    from hepflows.inference.onnx import export_onnx

    result = export_onnx(path, out, check_events=check)
    console.print(f"wrote {result.path} (opset {result.opset})")
    if result.checked_events:
        console.print(f"onnxruntime vs torch on {result.checked_events} events: max "
                      f"|d log q| = {result.max_abs_diff:.2g}")  # fmt: skip
    console.print("the graph does not check input ranges: they are in its metadata_props")


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="likelihood file (.safetensors)")],
    data: Annotated[Path, typer.Argument(help="held-out events: a pairs file or x/c HDF5")],
    bins: Annotated[int, typer.Option(help="equal-probability bins per latent dimension")] = 20,
    events: Annotated[int | None, typer.Option(help="use the first N events")] = None,
    plot: Annotated[Path | None, typer.Option(help="validation plot (.png)")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the figures here (.json)")
    ] = None,
) -> None:
    """Validate a likelihood file on held-out events (r^2 KS test, per-dimension pulls)."""
    from hepflows.inference.likelihood import load_likelihood
    from hepflows.inference.validation import plot_validation
    from hepflows.inference.validation import validate as run_validation
    from hepflows.io.atomic import atomic_write

    output(plot, "--plot", "plot", PNG)
    output(json_out, "--json", "report", JSON)
    if not data.is_file():
        raise InputError(f"no data file at {data}: check the path")
    lik = load_likelihood(path)
    x, c, w = held_out(tuple(v.name for v in lik.observables), lik.levels, data, events)
    report = run_validation(lik, x, c, w, bins=bins)
    console.print(report.summary())
    if plot is not None:
        plot_validation(report, plot, title=path.name)
        console.print(f"plot: {plot}")
    if json_out is not None:
        text = json.dumps(report.to_dict(), indent=1)
        atomic_write(json_out, lambda tmp: Path(tmp).write_text(text))
    if not report.passed:
        raise typer.Exit(1)
