"""``hepflows calo``: simulate, train, generate and evaluate calorimeter showers.

Energies on the command line are in GeV (the CaloGAN convention); files and
the library use MeV. Shower files are HDF5 in the CaloChallenge or CaloGAN
layout (:mod:`hepflows.calo.showerfiles`). Every default comes from the library
(:class:`~hepflows.calo.ToySimulator`, :class:`~hepflows.calo.TrainingPlan`,
:class:`~hepflows.calo.CaloFlow`, :func:`~hepflows.calo.evaluate`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hepflows.calo import CaloFlow, ToySimulator, TrainingPlan, write_showers
from hepflows.calo import evaluate as evaluate_showers
from hepflows.calo.calibration import calibrate as calibrate_showers
from hepflows.calo.caloflow import ALPHA, FLOW2_DEFAULTS, NOISE_MEV
from hepflows.calo.l2lflow import (
    CONV_DEFAULTS,
    LAYER_ALPHA,
    LAYER_DEFAULTS,
    LAYER_NOISE_MEV,
    L2LFlow,
)
from hepflows.calo.models import NEEDS_STUDENT, build_model, load_model, model_class
from hepflows.cli.common import (
    JSON,
    PNG,
    SAFETENSORS,
    SHOWERS,
    Device,
    library_default,
    output,
)
from hepflows.console import console, count
from hepflows.errors import ConfigError, HepflowsError
from hepflows.progress import progress_bar

app = typer.Typer(no_args_is_help=True)

#: Library defaults the commands show and use.
SIM = {k: library_default(ToySimulator, k) for k in ("geometry", "particle", "energy_range_mev",
       "energy_distribution", "seed", "max_spots", "spot_fluctuations")}  # fmt: skip
PLAN = TrainingPlan()
FLOW2 = FLOW2_DEFAULTS
#: The --moments default per model, as the help shows it (each model's own default).
MOMENTS_BY_MODEL = (f"caloflow {library_default(CaloFlow, 'moments')}, l2l and conv-l2l "
                    f"{library_default(L2LFlow, 'moments')}")  # fmt: skip
#: Flow II (layer flow) sizes each model uses when --transforms/--bins/--hidden are not given.
FLOW2_BY_MODEL = {"caloflow": FLOW2, "l2l": LAYER_DEFAULTS, "conv-l2l": CONV_DEFAULTS,
                  "icaloflow": LAYER_DEFAULTS}  # fmt: skip


def _sizes_help(what: str, key: str) -> str:
    """Help of a flow II size option naming every model's default."""
    shown = {m: d[key][0] if key == "hidden" else d[key] for m, d in FLOW2_BY_MODEL.items()}
    # parentheses: rich would take "[default: ...]" for markup and drop it
    return f"{what} (default: " + ", ".join(f"{m} {v}" for m, v in shown.items()) + ")"

EVAL = {k: library_default(evaluate_showers, k) for k in ("levels", "gbdt", "epochs", "patience",
        "lr_decay", "max_showers", "seed")}  # fmt: skip
E_MIN_GEV, E_MAX_GEV = (e / 1e3 for e in SIM["energy_range_mev"])

Geom = Annotated[
    str,
    typer.Option(help="built-in geometry (calogan, ds1 = calochallenge-ds1-photon, ds2, ds3) "
                 "or binning XML"),
]
#: The CaloChallenge's particle and incident energies (GeV) for its granular datasets: the
#: defaults of ``simulate`` on those geometries (others: the simulator's defaults).
CHALLENGE_SAMPLES = {
    "calochallenge-ds2": ("electron", 1.0, 1000.0, "log-uniform"),
    "calochallenge-ds3": ("electron", 1.0, 1000.0, "log-uniform"),
}


@app.callback()
def calo() -> None:
    """Calorimeter showers: toy simulator, CaloFlow teacher/student, CaloChallenge metrics."""


def _check_layout(layout: str | None) -> None:
    """--layout, checked before any work (the files are HDF5: h5py must be there too)."""
    from hepflows.calo.showerfiles import LAYOUTS
    from hepflows.extras import require

    if layout is not None and layout not in LAYOUTS:
        raise ConfigError(f"unknown shower-file layout {layout!r} (--layout): choose from "
                          f"{', '.join(LAYOUTS)}")  # fmt: skip
    require("h5py", "calo", "Writing shower files")


def _range_mev(e_min: float, e_max: float) -> tuple[float, float]:
    """--energy-min/--energy-max (GeV), checked, in MeV."""
    if not 0 < e_min < e_max:
        raise HepflowsError(f"need 0 < --energy-min < --energy-max (GeV), got {e_min}, {e_max}")
    return 1e3 * e_min, 1e3 * e_max


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="shower file to write (.h5)")] = Path("showers.h5"),
    events: Annotated[str, typer.Option(help="number of showers")] = "1e4",
    geometry: Geom = SIM["geometry"],
    particle: Annotated[
        str | None,
        typer.Option(help=f"photon, electron or pion (default: ds2/ds3 electron, else "
                     f"{SIM['particle']})"),
    ] = None,
    layout: Annotated[
        str, typer.Option(help="calogan or calochallenge")
    ] = library_default(write_showers, "layout"),
    energy_min: Annotated[
        float | None,
        typer.Option(help=f"lowest incident energy (GeV) (default: ds2/ds3 1, else "
                     f"{E_MIN_GEV:g})"),
    ] = None,
    energy_max: Annotated[
        float | None,
        typer.Option(help=f"highest incident energy (GeV) (default: ds2/ds3 1000, else "
                     f"{E_MAX_GEV:g})"),
    ] = None,
    distribution: Annotated[
        str | None,
        typer.Option(help=f"uniform or log-uniform (default: ds2/ds3 log-uniform, else "
                     f"{SIM['energy_distribution']})"),
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed (>= 0)")] = SIM["seed"],
    max_spots: Annotated[
        int | None,
        typer.Option(help="cap on the spots per shower, for speed (default: GFlash's count)"),
    ] = SIM["max_spots"],
    spot_fluctuations: Annotated[
        bool, typer.Option(help="fluctuating spot energies (off: GFlash's equal spots)")
    ] = SIM["spot_fluctuations"],
    chunk_size: Annotated[
        int,
        typer.Option(help="calochallenge layout: showers per chunk, written as they come (a "
                     "cut-off run resumes from OUT.partial)"),
    ] = library_default(ToySimulator.simulate_to_file, "chunk_size"),
) -> None:
    """Simulate showers with the seeded GFlash-like toy detector and write them.

    In the CaloChallenge layout the showers are written chunk by chunk (memory stays at one
    chunk, e.g. for dataset 3's 40 500 voxels) and a cut-off run resumes where it stopped.
    """
    from hepflows.calo import Geometry

    output(out, "--out", "shower file", SHOWERS)
    _check_layout(layout)
    geom = Geometry.resolve(geometry)
    sample = CHALLENGE_SAMPLES.get(
        geom.name, (SIM["particle"], E_MIN_GEV, E_MAX_GEV, SIM["energy_distribution"]))
    particle = sample[0] if particle is None else particle
    e_min = sample[1] if energy_min is None else energy_min
    e_max = sample[2] if energy_max is None else energy_max
    sim = ToySimulator(geom, particle=particle, seed=seed,
                       energy_range_mev=_range_mev(e_min, e_max),
                       energy_distribution=sample[3] if distribution is None else distribution,
                       max_spots=max_spots, spot_fluctuations=spot_fluctuations)  # fmt: skip
    n = count(events, "--events")
    if chunk_size < 1:
        raise HepflowsError(f"--chunk-size must be >= 1, got {chunk_size}")
    t0 = time.perf_counter()
    if layout == "calochallenge":
        sim.simulate_to_file(out, n, chunk_size=chunk_size)
    else:
        from hepflows.calo import Showers

        # the same chunk streams as the calochallenge layout: a seed gives the same showers
        parts = []
        with progress_bar(n, f"toy {sim.particle} showers") as bar:
            for chunk in sim.simulate_chunks(n, chunk_size):
                parts.append(chunk)
                bar.advance(len(chunk))
        write_showers(out, Showers.concatenate(parts), layout=layout)
    seconds = time.perf_counter() - t0
    console.print(f"{sim!r}\nwrote {n:,} showers ({geom.n_voxels} voxels, "
                  f"{layout} layout) to {out} in {seconds:.1f} s "
                  f"({1e3 * seconds / n:.3f} ms/shower)")  # fmt: skip


@app.command()
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
    epochs_flow1: Annotated[int, typer.Option(help="epochs of flow I")] = PLAN.epochs["flow1"],
    epochs_teacher: Annotated[
        int, typer.Option(help="epochs of the flow II teacher (MAF)")
    ] = PLAN.epochs["teacher"],
    epochs_student: Annotated[
        int, typer.Option(help="epochs of the student (IAF), 0: none")
    ] = PLAN.epochs["student"],
    batch_size: Annotated[int, typer.Option(help="showers per step")] = PLAN.batch_size,
    model: Annotated[
        str,
        typer.Option(help="caloflow (one flow II over all voxels: CaloGAN, ds1), l2l "
                     "(layer-to-layer MAF flows: ds2, ds3; with --epochs-student > 0 the "
                     "iCaloFlow-style IAF student per layer), icaloflow (l2l with its "
                     "student, required) or conv-l2l (convolutional coupling layer flows; "
                     "use --epochs-student 0)"),
    ] = "caloflow",
    transforms: Annotated[
        int | None,
        typer.Option(help=_sizes_help("flow II (l2l: layer flow) blocks", "transforms")),
    ] = None,
    bins: Annotated[
        int | None, typer.Option(help=_sizes_help("flow II spline bins", "bins"))
    ] = None,
    hidden: Annotated[
        int | None,
        typer.Option(help=_sizes_help(
            "flow II MADE hidden width (conv-l2l: channels of each convolution)", "hidden")),
    ] = None,
    moments: Annotated[
        int | None,
        typer.Option(
            help="lateral moments per layer in flow I: 0 none, 1 centres, 2 centres and widths "
            f"(default: {MOMENTS_BY_MODEL})"
        ),  # fmt: skip
    ] = None,
    noise_mev: Annotated[
        float | None,
        typer.Option(help="width of the U(0, noise) training noise on every voxel, MeV: how "
                     "far below the readout threshold the empty voxels sit (default: "
                     f"caloflow {NOISE_MEV:g}, l2l and conv-l2l {LAYER_NOISE_MEV:g})"),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(help="regulator of the voxel fractions' logit, in [1e-7, 0.5) "
                     f"(default: caloflow {ALPHA:g}, l2l and conv-l2l {LAYER_ALPHA:g})"),
    ] = None,
    anchor: Annotated[
        bool,
        typer.Option(help="flow II models log(E_voxel / noise), not the logit of the voxel's "
                     "fraction of its layer: the empty voxels and the readout threshold stay "
                     "in place whatever the layer energy"),
    ] = library_default(CaloFlow, "anchor"),
    seed: Annotated[
        int, typer.Option(help="seed of the initial weights, split, batches and noise")
    ] = PLAN.seed,
    device: Device = "cpu",
) -> None:
    """Train CaloFlow or L2LFlow (flow I, MAF teacher, then the IAF student by distillation).

    The same command runs on N processes under
    torchrun --nproc-per-node N -m hepflows calo train SHOWERS: each rank takes a slice
    of every batch, gradients are averaged, rank 0 prints and writes the files; with
    --device cuda each rank uses the GPU cuda:LOCAL_RANK (NCCL).
    """
    import torch

    from hepflows import distributed
    from hepflows.calo import Showers, count_showers, iter_showers, read_showers
    from hepflows.calo import train as train_caloflow
    from hepflows.calo.showerfiles import detect_layout
    from hepflows.device import resolve_device

    kind = model_class(model)
    if model in NEEDS_STUDENT and epochs_student < 1:
        raise ConfigError(f"--model {model} is the l2l MAF teacher with its per-layer IAF "
                          "student: give --epochs-student >= 1 (or --model l2l for the "
                          "teacher alone)")  # fmt: skip
    output(out, "--out", "model", SAFETENSORS)
    ckpt = checkpoint or out.with_name(out.name + ".ckpt")
    output(ckpt, "--checkpoint", "checkpoint")
    dev = resolve_device(device)  # cuda: cuda:LOCAL_RANK under torchrun
    layout = detect_layout(showers)
    if layout == "calochallenge":  # read chunk by chunk while training, never whole
        first = next(iter_showers(showers, chunk_size=1, geometry=geometry))
        data_geometry, n_showers = first.geometry, count_showers(showers)
        data: Showers | Path = showers
    else:
        data = read_showers(showers, geometry=geometry)
        data_geometry, n_showers = data.geometry, len(data)
    plan = TrainingPlan(
        epochs={"flow1": epochs_flow1, "teacher": epochs_teacher, "student": epochs_student},
        batch_size=batch_size, seed=seed,
    )  # fmt: skip
    # only the sizes given: the model fills in its own defaults
    flow2 = {k: v for k, v in (("transforms", transforms), ("bins", bins)) if v is not None}
    if hidden is not None:  # every hidden layer (convolution) of the model's default widths
        flow2["hidden"] = [hidden] * len(FLOW2_BY_MODEL[model]["hidden"])
    given = (("moments", moments), ("noise_mev", noise_mev), ("alpha", alpha))
    options = {k: v for k, v in given if v is not None}  # else the model's defaults
    options["anchor"] = anchor
    net = build_model(model, data_geometry, flow2=flow2, student=epochs_student > 0,
                      seed=seed, **options)  # fmt: skip
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    distributed.init(backend="nccl" if dev.type == "cuda" else None)
    try:
        main = distributed.is_main()
        say = console.print if main else (lambda *a, **k: None)
        if ckpt.exists():
            say(f"resuming from {ckpt}")
        ranks = f" on {distributed.world_size()} ranks" if distributed.is_distributed() else ""
        say(f"{n_showers:,} showers ({data_geometry.name}, {data_geometry.n_voxels} "
            f"voxels); plan {plan}{ranks}; device {dev}")  # fmt: skip
        history = train_caloflow(net, data, plan, checkpoint=ckpt, progress=True, log=say,
                                 device=dev)  # fmt: skip
        if main:
            net.save(out, {"layout": layout, "training_file": str(showers),
                           "history": history})  # fmt: skip
    finally:
        distributed.shutdown()
    if not main:
        return
    table = Table(title=f"{kind.__name__} training")
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


@app.command()
def generate(
    model_path: Annotated[Path, typer.Argument(help="trained model (.safetensors)")],
    out: Annotated[Path, typer.Option(help="shower file to write (.h5)")] = Path("generated.h5"),
    model: Annotated[
        str | None,
        typer.Option(help="student (IAF, one pass: fast) or teacher (MAF; conv-l2l: its "
                     "one-pass coupling flow) (default: the student if the model has one)"),
    ] = None,
    like: Annotated[
        Path | None,
        typer.Option(help="take the incident energies and the layout from this shower file"),
    ] = None,
    events: Annotated[str, typer.Option(help="showers to generate (without --like)")] = "1e4",
    energy_min: Annotated[
        float, typer.Option(help="lowest energy, GeV (without --like)")
    ] = E_MIN_GEV,
    energy_max: Annotated[
        float, typer.Option(help="highest energy, GeV (without --like)")
    ] = E_MAX_GEV,
    layout: Annotated[
        str | None, typer.Option(help="calogan or calochallenge (default: the input's layout)")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="showers per flow pass (default: 256 student, 4096 teacher)")
    ] = library_default(CaloFlow.sample, "batch_size"),
    seed: Annotated[int, typer.Option(help="random seed (>= 0)")] = 0,
    device: Device = "cpu",
) -> None:
    """Generate showers with a trained CaloFlow or L2LFlow, in its training file's layout.

    With --like, the incident energies (and the layout) of that file. CaloChallenge files
    are written chunk by chunk (OUT.partial until done; a cut-off run started again with
    the same settings resumes).
    """
    import numpy as np

    from hepflows.calo import Showers, iter_showers, read_showers
    from hepflows.calo.showerfiles import detect_layout
    from hepflows.device import resolve_device

    output(out, "--out", "shower file", SHOWERS)
    _check_layout(layout)
    dev = resolve_device(device)
    flow, extra = load_model(model_path, device=dev)
    if like is not None:
        like_layout = detect_layout(like)
        layout = layout or like_layout
        if like_layout == "calochallenge":  # its energies, chunk by chunk
            energies = np.concatenate([c.energy for c in iter_showers(
                like, chunk_size=5000, geometry=flow.geometry)])  # fmt: skip
        else:
            energies = read_showers(like, geometry=flow.geometry).energy
    else:
        lo, hi = _range_mev(energy_min, energy_max)
        if seed < 0:
            raise HepflowsError(f"--seed must be >= 0, got {seed}")
        energies = np.random.default_rng(seed).uniform(lo, hi, count(events, "--events"))
        layout = layout or extra.get("layout", "calochallenge")
    t0 = time.perf_counter()
    model = model or ("student" if flow.student is not None else "teacher")
    if layout == "calochallenge":  # chunk by chunk into OUT.partial, resumable
        flow.sample_to_file(out, energies, model=model, seed=seed, batch_size=batch_size)
    else:
        # the draws of the chunked writer, so the layout does not change the showers
        showers = Showers.concatenate(list(flow.sample_chunks(
            energies, model=model, seed=seed, batch_size=batch_size)))  # fmt: skip
        write_showers(out, showers, layout=layout)
    seconds = time.perf_counter() - t0
    console.print(f"wrote {len(energies):,} showers ({model}, {layout} layout) to {out}: "
                  f"{seconds:.1f} s, {1e3 * seconds / len(energies):.3f} ms/shower "
                  f"on {dev}")  # fmt: skip


# The CaloChallenge's word for it: `hepflows calo sample` is the same command.
app.command("sample", help="The same as generate (the CaloChallenge's name for it): "
            "showers from a trained model.")(generate)  # fmt: skip


@app.command()
def calibrate(
    model_path: Annotated[Path, typer.Argument(help="trained model (.safetensors): flow I")],
    showers_path: Annotated[Path, typer.Argument(help="showers to calibrate (.h5)")],
    out: Annotated[Path | None, typer.Option(help="per-shower estimates (.h5)")] = None,
    plot: Annotated[Path | None, typer.Option(help="response against E_inc (.png)")] = None,
    grid: Annotated[int, typer.Option(help="coarse scan points")] = library_default(
        calibrate_showers, "grid"
    ),
    seed: Annotated[int, typer.Option(help="seeds the input noise (as in training)")] = 0,
) -> None:
    """Incident energies by maximum flow likelihood, with their 68 % likelihood intervals.

    Prints the median response E_MLE / E_inc and the pull width when the file holds the
    true incident energies (every simulated file does).
    """
    import numpy as np

    from hepflows.calo import read_showers
    from hepflows.io.atomic import atomic_write

    output(out, "--out", "calibration file", (".h5", ".hdf5"))
    output(plot, "--plot", "plot", PNG)
    flow, _ = load_model(model_path)
    showers = read_showers(showers_path, geometry=flow.geometry)
    result = calibrate_showers(flow, showers, grid=grid, seed=seed, progress=True)
    ok = ~result.at_edge
    response = result.energy / showers.energy
    pulls = (result.energy - showers.energy) / result.sigma
    console.print(f"{len(showers):,} showers; {int((~ok).sum())} at an end of the scan range "
                  f"[{10 ** float(flow.log_e_range[0]) / 1e3:.3g}, "
                  f"{10 ** float(flow.log_e_range[1]) / 1e3:.3g}] GeV")  # fmt: skip
    if ok.any():
        from hepflows.calo.calibration import pull_width

        console.print(f"median E_MLE / E_inc = {np.median(response[ok]):.4f}; median "
                      f"sigma / E = {np.median(result.sigma[ok] / result.energy[ok]):.4f}; "
                      f"pull width (half 16-84 %) = {pull_width(pulls[ok]):.3f}")  # fmt: skip
    if out is not None:
        import h5py

        def write(tmp: str) -> None:
            with h5py.File(tmp, "w") as f:
                for name in ("energy", "low", "high", "sigma", "at_edge"):
                    f[name] = getattr(result, name)
                f["true_energy"] = showers.energy
                f.attrs["units"] = "MeV"

        atomic_write(out, write)
        console.print(f"wrote {out}")
    if plot is not None:
        from hepflows.calo.calibration import plot_response

        plot_response(showers.energy[ok], {"MLE": result.energy[ok]}, plot,
                      title=showers_path.name)  # fmt: skip
        console.print(f"plot: {plot}")


@app.command()
def evaluate(
    reference: Annotated[Path, typer.Argument(help="reference showers (.h5)")],
    samples: Annotated[list[str], typer.Argument(help="generated showers, as FILE or LABEL=FILE")],
    out: Annotated[Path, typer.Option(help="JSON report")] = Path("calo_eval.json"),
    plot: Annotated[
        str, typer.Option(help="feature histograms (PNG); 'none' for no plot")
    ] = "calo_features.png",
    levels: Annotated[
        str,
        typer.Option(
            help="MLP classifier input views: low (voxel/E_inc), log (log10(1 + "
            "E_voxel/keV)), high (features); comma-separated, or none"
        ),
    ] = ",".join(EVAL["levels"]),
    gbdt: Annotated[
        bool, typer.Option(help="cross-check the voxel/E_inc MLP with gradient-boosted trees")
    ] = EVAL["gbdt"],
    epochs: Annotated[
        int,
        typer.Option(
            help="cap on the MLP's epochs (it stops earlier when the validation loss "
            "stops improving; reaching the cap is reported as not converged)"
        ),
    ] = EVAL["epochs"],
    patience: Annotated[
        int, typer.Option(help="epochs without validation improvement before the MLP stops")
    ] = EVAL["patience"],
    lr_decay: Annotated[
        float,
        typer.Option(
            help="factor on the MLP's learning rate after 3 epochs without validation "
            "improvement; 1 keeps it constant (CaloChallenge)"
        ),
    ] = EVAL["lr_decay"],
    max_showers: Annotated[
        str, typer.Option(help="showers per sample for the classifier")
    ] = f"{EVAL['max_showers']:g}",
    geometry: Annotated[
        str | None, typer.Option(help="geometry of the files (default: detected)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the classifiers")] = EVAL["seed"],
) -> None:
    """CaloChallenge-style comparison: features, separation powers, classifier AUC/JSD, FPD/KPD.

    CaloChallenge files are read in chunks (never whole): features, separation powers,
    FPD and KPD from every shower, the classifiers and the plot from the first
    --max-showers of each file.
    """
    import json

    from hepflows.calo import read_showers
    from hepflows.calo.showerfiles import detect_layout
    from hepflows.io.atomic import atomic_write

    output(out, "--out", "report", JSON)
    plot_path = None if plot.strip().lower() in ("", "none") else Path(plot)
    if plot_path is not None:
        output(plot_path, "--plot", "plot", PNG)
    paths = {}
    for item in samples:
        label, _, path = item.rpartition("=")
        paths[label or Path(path).stem] = Path(path)
    if all(detect_layout(p) == "calochallenge" for p in (reference, *paths.values())):
        # CaloChallenge files are streamed: features from every shower, chunk by chunk;
        # the classifiers read the first --max-showers
        ref, gen = reference, paths
    else:
        ref = read_showers(reference, geometry=geometry)
        gen = {label: read_showers(p, geometry=geometry or ref.geometry)
               for label, p in paths.items()}  # fmt: skip
    lv = () if levels.strip().lower() == "none" else tuple(v.strip() for v in levels.split(","))
    if not 0 < lr_decay <= 1:
        raise ConfigError(f"--lr-decay must be in (0, 1] (1: constant rate), got {lr_decay}")
    report = evaluate_showers(ref, gen, levels=lv, gbdt=gbdt, epochs=epochs, patience=patience,
                              lr_decay=None if lr_decay == 1 else lr_decay,
                              max_showers=count(max_showers, "--max-showers"), plot=plot_path,
                              seed=seed, progress=True, geometry=geometry)  # fmt: skip
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1)))
    table = Table(title=f"against {reference} ({report['reference']['n_showers']:,} showers)")
    keys = [*lv, *(["gbdt"] if gbdt else [])]
    names = {"low": "voxel/E_inc", "log": "log voxels", "high": "features", "gbdt": "GBDT"}
    best = ["AUC max"] if keys else []
    for col in ("sample", "showers", *(f"AUC {names[v]}" for v in keys), *best, "FPD",
                "mean sep."):  # fmt: skip
        table.add_column(col, justify="left" if col == "sample" else "right")
    for label, r in report["models"].items():
        table.add_row(label, f"{r['n_showers']:,}",
                      *(f"{r['classifier'][v]['auc']:.3f}" for v in keys),
                      *([f"[bold]{r['auc_max']:.3f}[/bold]"] if keys else []),
                      f"{r['fpd']:.4g}", f"{r['separation_mean']:.4f}")  # fmt: skip
    console.print(table)
    if keys:
        state = "converged" if report["classifier_converged"] else "NOT all converged"
        console.print(f"classifiers: {state}; AUC 0.5 = indistinguishable from the reference")
    for note in report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {note}")
    console.print(f"wrote {out}" + (f" and {plot_path}" if plot_path else ""))
