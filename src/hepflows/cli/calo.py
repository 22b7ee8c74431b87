"""``hepflows calo``: simulate, train, generate and evaluate calorimeter showers.

Energies on the command line are in GeV (the CaloGAN convention); files and
the library use MeV. Shower files are HDF5 in the CaloChallenge or CaloGAN
layout (:mod:`hepflows.calo.io`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hepflows.console import console, count
from hepflows.errors import HepflowsError

calo_app = typer.Typer(
    help="Calorimeter showers: toy simulator, CaloFlow teacher/student, CaloChallenge metrics.",
    no_args_is_help=True,
)

Geom = Annotated[
    str, typer.Option(help="built-in geometry (calogan, calochallenge-ds1-photon) or binning XML")
]


def _range_mev(e_min: float, e_max: float) -> tuple[float, float]:
    """--energy-min/--energy-max (GeV), checked, in MeV."""
    if not 0 < e_min < e_max:
        raise HepflowsError(f"need 0 < --energy-min < --energy-max (GeV), got {e_min}, {e_max}")
    return 1e3 * e_min, 1e3 * e_max


@calo_app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="shower file to write (.h5)")] = Path("showers.h5"),
    events: Annotated[str, typer.Option(help="number of showers")] = "1e4",
    geometry: Geom = "calogan",
    particle: Annotated[str, typer.Option(help="photon, electron or pion")] = "photon",
    layout: Annotated[str, typer.Option(help="calogan or calochallenge")] = "calochallenge",
    energy_min: Annotated[float, typer.Option(help="lowest incident energy (GeV)")] = 1.0,
    energy_max: Annotated[float, typer.Option(help="highest incident energy (GeV)")] = 100.0,
    distribution: Annotated[str, typer.Option(help="uniform or log-uniform")] = "uniform",
    seed: Annotated[int, typer.Option(help="random seed (>= 0)")] = 0,
    max_spots: Annotated[
        int | None,
        typer.Option(help="cap on the spots per shower, for speed (default: GFlash's count)"),
    ] = None,
    spot_fluctuations: Annotated[
        bool, typer.Option(help="fluctuating spot energies (off: GFlash's equal spots)")
    ] = True,
) -> None:
    """Simulate showers with the seeded GFlash-like toy detector and write them."""
    from hepflows.calo import ToySimulator, write_showers

    sim = ToySimulator(geometry, particle=particle, seed=seed,
                       energy_range_mev=_range_mev(energy_min, energy_max),
                       energy_distribution=distribution, max_spots=max_spots,
                       spot_fluctuations=spot_fluctuations)  # fmt: skip
    t0 = time.perf_counter()
    showers = sim.simulate(count(events, "--events"), progress=True)
    seconds = time.perf_counter() - t0
    write_showers(out, showers, layout=layout)
    console.print(f"{sim!r}\nwrote {len(showers):,} showers ({showers.geometry.n_voxels} voxels, "
                  f"{layout} layout) to {out} in {seconds:.1f} s "
                  f"({1e3 * seconds / len(showers):.3f} ms/shower)")  # fmt: skip


@calo_app.command()
def train(
    showers: Annotated[Path, typer.Argument(help="training showers (.h5)")],
    out: Annotated[Path, typer.Option(help="trained model (.safetensors)")] = Path(
        "caloflow.safetensors"
    ),
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="per-epoch checkpoint, resumed if it exists (default: OUT.ckpt)"),
    ] = None,
    geometry: Annotated[
        str | None, typer.Option(help="geometry of the file (default: detected)")
    ] = None,
    epochs_flow1: Annotated[int, typer.Option(help="epochs of flow I")] = 30,
    epochs_teacher: Annotated[int, typer.Option(help="epochs of the flow II teacher (MAF)")] = 30,
    epochs_student: Annotated[int, typer.Option(help="epochs of the student (IAF), 0: none")] = 15,
    batch_size: Annotated[int, typer.Option(help="showers per step")] = 500,
    transforms: Annotated[int, typer.Option(help="flow II autoregressive blocks")] = 4,
    bins: Annotated[int, typer.Option(help="flow II spline bins")] = 8,
    hidden: Annotated[int, typer.Option(help="flow II MADE hidden width (one layer)")] = 128,
    moments: Annotated[
        int,
        typer.Option(
            help="lateral moments per layer in flow I: 0 none (CaloFlow), "
            "1 centres, 2 centres and widths"
        ),  # fmt: skip
    ] = 2,
    seed: Annotated[int, typer.Option(help="seed of split, batches and noise")] = 0,
) -> None:
    """Train CaloFlow (flow I, MAF teacher, then the IAF student by distillation)."""
    from hepflows.calo import CaloFlow, TrainingPlan, read_showers
    from hepflows.calo import train as train_caloflow
    from hepflows.calo.showerfiles import detect_layout

    data = read_showers(showers, geometry=geometry)
    layout = detect_layout(showers)
    ckpt = checkpoint or out.with_name(out.name + ".ckpt")
    plan = TrainingPlan(
        epochs={"flow1": epochs_flow1, "teacher": epochs_teacher, "student": epochs_student},
        batch_size=batch_size, seed=seed,
    )  # fmt: skip
    model = CaloFlow(data.geometry, flow2={"transforms": transforms, "bins": bins,
                                           "hidden": [hidden]},
                     student=epochs_student > 0, moments=moments)  # fmt: skip
    if ckpt.exists():
        console.print(f"resuming from {ckpt}")
    console.print(f"{len(data):,} showers ({data.geometry.name}, {data.geometry.n_voxels} "
                  f"voxels); plan {plan}")  # fmt: skip
    history = train_caloflow(model, data, plan, checkpoint=ckpt, progress=True, log=console.print)
    model.save(out, {"layout": layout, "training_file": str(showers), "history": history})
    table = Table(title="CaloFlow training")
    for col in ("stage", "epochs", "best epoch", "best val. loss", "minutes"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage, h in history.items():
        table.add_row(
            stage,
            str(len(h["val"])),
            str(h["best_epoch"] + 1),
            f"{min(h['val']):.4f}" if h["val"] else "-",
            f"{h['seconds'] / 60:.1f}",
        )
    console.print(table)
    console.print(f"wrote {out} (checkpoint {ckpt} can be deleted)")


@calo_app.command()
def generate(
    model_path: Annotated[Path, typer.Argument(help="trained model (.safetensors)")],
    out: Annotated[Path, typer.Option(help="shower file to write (.h5)")] = Path("generated.h5"),
    model: Annotated[str, typer.Option(help="teacher (MAF) or student (IAF, fast)")] = "student",
    like: Annotated[
        Path | None,
        typer.Option(help="take the incident energies and the layout from this shower file"),
    ] = None,
    events: Annotated[str, typer.Option(help="showers to generate (without --like)")] = "1e4",
    energy_min: Annotated[float, typer.Option(help="lowest energy, GeV (without --like)")] = 1.0,
    energy_max: Annotated[float, typer.Option(help="highest energy, GeV (without --like)")] = 100.0,
    layout: Annotated[
        str | None, typer.Option(help="calogan or calochallenge (default: the input's layout)")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="showers per flow pass (default: 256 student, 4096 teacher)")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed (>= 0)")] = 0,
) -> None:
    """Generate showers with a trained CaloFlow, in the layout of its training (or --like) file."""
    import numpy as np
    import torch

    from hepflows.calo import CaloFlow, read_showers, write_showers
    from hepflows.calo.showerfiles import detect_layout

    flow, extra = CaloFlow.load(model_path)
    if like is not None:
        energies = read_showers(like, geometry=flow.geometry).energy
        layout = layout or detect_layout(like)
    else:
        lo, hi = _range_mev(energy_min, energy_max)
        if seed < 0:
            raise HepflowsError(f"--seed must be >= 0, got {seed}")
        energies = np.random.default_rng(seed).uniform(lo, hi, count(events, "--events"))
        layout = layout or extra.get("layout", "calochallenge")
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    showers = flow.sample(energies, model=model, batch_size=batch_size, generator=g,
                          progress=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    write_showers(out, showers, layout=layout)
    console.print(f"wrote {len(showers):,} showers ({model}, {layout} layout) to {out}: "
                  f"{seconds:.1f} s, {1e3 * seconds / len(showers):.3f} ms/shower")  # fmt: skip


@calo_app.command()
def evaluate(
    reference: Annotated[Path, typer.Argument(help="reference showers (.h5)")],
    samples: Annotated[list[str], typer.Argument(help="generated showers, as FILE or LABEL=FILE")],
    out: Annotated[Path, typer.Option(help="JSON report")] = Path("calo_eval.json"),
    plot: Annotated[
        str, typer.Option(help="feature histograms (PNG); 'none' for no plot")
    ] = "calo_features.png",
    levels: Annotated[str, typer.Option(help="classifier levels: low,high / none")] = "low,high",
    epochs: Annotated[int, typer.Option(help="classifier epochs (early stopping)")] = 50,
    max_showers: Annotated[str, typer.Option(help="showers per sample for the classifier")] = "5e4",
    geometry: Annotated[
        str | None, typer.Option(help="geometry of the files (default: detected)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the classifiers")] = 0,
) -> None:
    """CaloChallenge-style comparison: features, separation powers, classifier AUC/JSD, FPD/KPD."""
    from hepflows.calo import evaluate as evaluate_showers
    from hepflows.calo import read_showers
    from hepflows.io.atomic import atomic_write

    ref = read_showers(reference, geometry=geometry)
    gen = {}
    for item in samples:
        label, _, path = item.rpartition("=")
        path_ = Path(path)
        gen[label or path_.stem] = read_showers(path_, geometry=geometry or ref.geometry)
    plot_path = None if plot.strip().lower() in ("", "none") else Path(plot)
    lv = () if levels.strip().lower() == "none" else tuple(v.strip() for v in levels.split(","))
    report = evaluate_showers(ref, gen, levels=lv, epochs=epochs,
                              max_showers=count(max_showers, "--max-showers"), plot=plot_path,
                              seed=seed, progress=True)  # fmt: skip
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1)))
    table = Table(title=f"against {reference} ({len(ref):,} showers)")
    for col in ("sample", "showers", *(f"AUC {v}" for v in lv), "FPD", "mean sep. power"):
        table.add_column(col, justify="left" if col == "sample" else "right")
    for label, r in report["models"].items():
        table.add_row(label, f"{r['n_showers']:,}",
                      *(f"{r['classifier'][v]['auc']:.3f}" for v in lv),
                      f"{r['fpd']:.4g}", f"{r['separation_mean']:.4f}")  # fmt: skip
    console.print(table)
    console.print(f"wrote {out}" + (f" and {plot_path}" if plot_path else ""))
