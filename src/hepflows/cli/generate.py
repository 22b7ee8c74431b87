"""``hepflows generate``: unweighted events of a physics process or a three-body decay.

Both commands run :mod:`hepflows.generate` (train or load, integrate, unweight,
write) and print its one result: the table's integral is the sigma of the
event summary and of the file header.

``drell-yan --shards DIR`` (also with ``--jets``) and ``pp-jets --shards DIR``
generate in reproducible blocks instead (:func:`hepflows.generate.generate_sharded`),
one shard per block, then merge them into ``--out``. The same command runs as one
process, under ``torchrun`` (every rank runs it) or, with ``--workers N``, relaunches
itself under ``torchrun`` with N local processes; the merged events are the same.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from hepflows.cli.common import PNG, Device, library_default, output
from hepflows.console import console, count
from hepflows.generate import (
    CHANNEL_WEIGHTS,
    DECAY_DEFAULTS,
    DEFAULTS,
    Generation,
    ShardedGeneration,
    generate_events,
    generate_sharded,
)
from hepflows.physics.processes.drell_yan import LEPTONS, DrellYanParameters
from hepflows.physics.processes.drell_yan_jets import DrellYanJets, DrellYanJetsParameters
from hepflows.physics.processes.multijet import MultiJetParameters

app = typer.Typer(no_args_is_help=True)

#: Drell-Yan defaults of the library (the command shows and uses them).
DY = DrellYanParameters()
LEPTON_NAMES = {pdg: name for name, pdg in LEPTONS.items()}
LEPTON = LEPTON_NAMES[DY.lepton]
#: pp -> l l + jets and pp -> jets defaults of the library; the Delta R cut the
#: validations use (Pythia's RsepMin) where the library has none.
DYJ = DrellYanJetsParameters()
DYJ_DR_MIN = 0.4
JJ = MultiJetParameters()
JJ_DR_MIN = 0.4


#: Options the process commands share.
TrainCalls = Annotated[str, typer.Option(help="matrix-element calls for training")]
SigmaCalls = Annotated[
    str, typer.Option(help="calls for sigma (the sample also unweighted into events)")
]
PdfSet = Annotated[str, typer.Option(help="PDF set (LHAPDF6 grid)")]
SavedIntegrator = Annotated[
    Path | None, typer.Option(help="saved integrator: loaded if it exists, else written")
]
#: The saved integrator of a sharded run without --integrator, in its shard directory.
SHARD_INTEGRATOR = "integrator.safetensors"
#: The options of a sharded run (see :func:`_sharded`).
Shards = Annotated[
    Path | None,
    typer.Option(help="generate in blocks, one shard file per block, into this directory; "
                      "then merge them into --out. A restart skips finished blocks. Without "
                      f"--integrator the integrator is saved there ({SHARD_INTEGRATOR}) "
                      "and a restart reuses it (delete it to retrain)"),
]
EventsPerBlock = Annotated[str, typer.Option(help="with --shards: events per block")]
Merge = Annotated[
    bool, typer.Option(help="with --shards: merge into --out at the end (else: hepflows merge)")
]
Workers = Annotated[
    int, typer.Option(min=1, help="with --shards: local processes; N > 1 trains once here, "
                                  "then relaunches this command under torchrun")
]


def _calls(n: int) -> str:
    return f"{n:g}"


TRAIN_CALLS, SIGMA_CALLS = _calls(DEFAULTS["train_calls"]), _calls(DEFAULTS["calls"])
EVENTS_PER_BLOCK = _calls(library_default(generate_sharded, "events_per_block"))


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
    ctx: typer.Context,
    events: Annotated[str, typer.Option(help="unweighted events (0: only sigma)")] = "1e4",
    out: Annotated[
        Path | None, typer.Option(help=".lhe, .lhe.gz or .h5 (with --shards: the merged file, "
                                       "its format that of the shards)")
    ] = Path("dy.lhe"),
    zprime: Annotated[
        bool, typer.Option(help=f"include the Z' ({DY.mzp:g} GeV, {DY.wzp:g} GeV)")
    ] = DY.zprime,
    lepton: Annotated[str, typer.Option(help=" or ".join(LEPTONS))] = LEPTON,
    pdf: PdfSet = DY.pdf,
    train_calls: TrainCalls = TRAIN_CALLS,
    calls: SigmaCalls = SIGMA_CALLS,
    multichannel: Annotated[
        bool, typer.Option(help="one channel per propagator")
    ] = library_default(generate_events, "multichannel"),
    fold: Annotated[
        bool, typer.Option(help="fold the exact symmetries (phi, beam swap) before integrating")
    ] = library_default(generate_events, "fold"),
    channel_weights: Annotated[
        str, typer.Option(help="mixture (every channel's density: best efficiency) or learned "
                               "(a network: one flow pass per point, fastest generation)")
    ] = library_default(generate_events, "channel_weights"),
    transforms: Annotated[
        int | None, typer.Option(min=1, help="coupling blocks of the flow (default: by "
                                             "dimension, 6 for the folded 3; 3 is as efficient "
                                             "here and twice as fast)")
    ] = library_default(generate_events, "transforms"),
    mll_min: Annotated[
        float, typer.Option(help="lepton-pair mass cut (GeV)")
    ] = DY.sqrt_s_hat_min,
    pt_min: Annotated[
        float, typer.Option(help="lepton p_T cut, both leptons (GeV)")
    ] = DY.lepton_pt_min,
    eta_max: Annotated[
        float | None, typer.Option(help="lepton |eta| cut, both leptons (default: none)")
    ] = None if math.isinf(DY.lepton_eta_max) else DY.lepton_eta_max,
    integrator: SavedIntegrator = None,
    seed: Annotated[int, typer.Option(help="random seed")] = DEFAULTS["seed"],
    jets: Annotated[
        int, typer.Option(min=0, max=2, help="extra jets: 0, 1 or 2 (pp -> l- l+ + jets: all "
                                             "partonic channels, one flow channel)")
    ] = 0,
    jet_pt_min: Annotated[
        float, typer.Option(help="with --jets: p_T cut of every jet (GeV)")
    ] = DYJ.pt_min,
    jet_dr_min: Annotated[
        float, typer.Option(help="with --jets 2: Delta R cut between the jets")
    ] = DYJ_DR_MIN,
    mll_max: Annotated[
        float | None, typer.Option(help="lepton-pair mass upper cut (GeV; default: none, with "
                                        f"--jets {DYJ.m_ll_max:g})")
    ] = None,
    scale: Annotated[
        str, typer.Option(help="mu_R = mu_F: GeV, or ht/2 (with --jets)")
    ] = f"{DY.mu_f:g}",
    shards: Shards = None,
    events_per_block: EventsPerBlock = EVENTS_PER_BLOCK,
    merge: Merge = True,
    workers: Workers = 1,
    device: Device = "cpu",
) -> None:
    """pp -> l+ l- via gamma/Z/Z' at LO, 13 TeV (MadNIS set-up): sigma, channels, LHE events.

    With --shards DIR the events are generated in reproducible blocks, the same for any
    number of processes: here (--workers N) or under
    torchrun --nproc-per-node N -m hepflows generate drell-yan --shards DIR --integrator FILE
    """
    from hepflows.device import resolve_device
    from hepflows.errors import ConfigError
    from hepflows.io import check_event_path
    from hepflows.physics import DrellYan
    from hepflows.physics.processes.drell_yan import lepton_id

    resolve_device(device, float64=True)  # a missing GPU stops here, before any work
    mu = _scale(scale, jets > 0)
    if jets and (pt_min != DY.lepton_pt_min or eta_max is not None):
        raise ConfigError("--pt-min and --eta-max cut the leptons of pp -> l+ l- (--jets 0); "
                          "with --jets the cuts are --jet-pt-min, --jet-dr-min, --mll-min, "
                          "--mll-max")  # fmt: skip
    n_events = _n_events(events)
    if channel_weights not in CHANNEL_WEIGHTS:
        raise ConfigError(f"--channel-weights must be one of {', '.join(CHANNEL_WEIGHTS)}, "
                          f"got {channel_weights!r}")  # fmt: skip
    plan = _shard_plan(shards, n_events, events_per_block, workers, integrator, out,
                       Path("dy.lhe"))  # fmt: skip
    integrator = plan.integrator if plan is not None else integrator
    if out is not None and n_events:
        check_event_path(out, "--out")
    _check_integrator(integrator)
    n_train, n_calls = count(train_calls, "--train-calls"), count(calls, "--calls")
    if jets:
        process = _drell_yan_jets(jets, zprime, lepton_id(lepton), pdf, mll_min, mll_max,
                                  jet_pt_min, jet_dr_min, mu)  # fmt: skip
        fold, multichannel = False, True  # no folding; the two jet channels
        console.print(f"{process}: {len(process.channels())} channels, no folding")
    else:
        process = DrellYan(zprime=zprime, lepton=lepton_id(lepton), pdf=pdf,
                           sqrt_s_hat_min=mll_min, sqrt_s_hat_max=mll_max, lepton_pt_min=pt_min,
                           mu_f=mu, lepton_eta_max=math.inf if eta_max is None else eta_max)
    setup = dict(train_calls=n_train, calls=n_calls, seed=seed, multichannel=multichannel,
                 integrator=integrator, fold=fold, channel_weights=channel_weights,
                 transforms=transforms, device=device)  # fmt: skip
    if plan is not None:
        _sharded(ctx, process, n_events, plan, merge, setup)
        return
    run = generate_events(process, n_events, out=out if n_events else None, **setup)
    ew = process.params.electroweak if jets else process.params
    name = LEPTON_NAMES[ew.lepton]
    bosons = "gamma/Z/Z'" if ew.zprime else "gamma/Z"
    extra = f" + {jets} jet{'s' if jets > 1 else ''}" if jets else f" via {bosons}"
    _report(run, f"pp -> {name}+{name}-{extra}, {ew.sqrt_s / 1e3:g} TeV, LO", "pb", "event")
    if run.path is not None:
        console.print("(IDWTUP = ±4, XWGTUP = sigma / N, sigma and its error in <init>)")


@dataclass
class _ShardPlan:
    """The checked options of a sharded run."""

    directory: Path
    events_per_block: int
    workers: int
    integrator: Path
    merge_to: Path
    shard_format: str


def _shard_plan(shards: Path | None, n_events: int, events_per_block: str, workers: int,
                integrator: Path | None, out: Path | None, default_out: Path
                ) -> _ShardPlan | None:  # fmt: skip
    """Check --shards, --events-per-block, --workers (before any work): the plan, or None
    without --shards. Without --integrator the shard directory keeps (and a restart
    reuses) the integrator; --out is the merged file, its format the shards'."""
    from hepflows.errors import ConfigError
    from hepflows.io import check_event_path
    from hepflows.io.lhe import SUFFIXES

    if shards is None:
        if workers > 1:
            raise ConfigError(f"--workers {workers} splits a sharded run: add --shards DIR (the "
                              "directory of the shards), or drop --workers")  # fmt: skip
        return None
    n_block = _check_sharded(shards, n_events, events_per_block, workers)
    saved_here = integrator is None
    integrator = integrator if integrator is not None else shards / SHARD_INTEGRATOR
    if saved_here and integrator.exists() and os.environ.get("RANK", "0") == "0":
        console.print(f"reusing the integrator {integrator} (--train-calls does not apply; "
                      "delete the file to retrain)")  # fmt: skip
    merge_to = check_event_path(out if out is not None else default_out, "--out")
    shard_format = next(s for s in SUFFIXES if merge_to.name.endswith(s))
    return _ShardPlan(shards, n_block, workers, integrator, merge_to, shard_format)


def _sharded(ctx: typer.Context, process: object, n_events: int, plan: _ShardPlan, merge: bool,
             setup: dict) -> None:  # fmt: skip
    """Generate ``process`` in shards: here, under torchrun (every rank runs this), or with
    --workers N > 1 by training once and relaunching the command under torchrun."""
    if plan.workers > 1:
        if not plan.integrator.exists():  # every rank must load the same integrator
            console.print(f"training the integrator once for the {plan.workers} workers")
            trained = generate_events(process, 0, **setup)
            _report_training(trained.training_calls, plan.integrator)
        raise typer.Exit(_relaunch(ctx, plan.workers, plan.integrator))
    from hepflows import distributed

    distributed.init()
    try:
        sharded = generate_sharded(
            process, n_events, plan.directory, events_per_block=plan.events_per_block,
            progress=distributed.is_main(), merge_to=plan.merge_to if merge else None,
            shard_format=plan.shard_format, **setup,
        )  # fmt: skip
        if distributed.is_main():
            _report_sharded(sharded, plan.integrator, distributed.world_size())
    finally:
        distributed.shutdown()


def _scale(text: str, dynamic: bool) -> float | str:
    """--scale: GeV, or "ht/2" where the scale may vary event by event."""
    from hepflows.errors import ConfigError

    if text.strip().lower() == "ht/2":
        if not dynamic:
            raise ConfigError("--scale ht/2 needs jets: pp -> l+ l- takes a fixed scale (GeV)")
        return "ht/2"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise ConfigError(f"--scale must be a positive number of GeV or ht/2, got {text!r}")
    return value


def _drell_yan_jets(jets: int, zprime: bool, lepton: int, pdf: str, mll_min: float,
                    mll_max: float | None, pt_min: float, dr_min: float,
                    scale: float | str) -> DrellYanJets:  # fmt: skip
    """pp -> l- l+ + 1 or 2 jets: two channels (the sequential decays, with the Z
    Breit-Wigner and 1/s mixture built in, and jet variables with the lepton pair
    balancing), every partonic channel, colour flows in the records."""
    ew = DrellYanParameters(zprime=zprime, lepton=lepton, pdf=pdf)
    params = DrellYanJetsParameters(
        n_jets=jets, m_ll_min=mll_min, m_ll_max=DYJ.m_ll_max if mll_max is None else mll_max,
        pt_min=pt_min, dr_min=dr_min if jets == 2 else 0.0, scale=scale, electroweak=ew,
    )  # fmt: skip
    return DrellYanJets(params)


@app.command("pp-jets")
def pp_jets(
    ctx: typer.Context,
    jets: Annotated[int, typer.Option(min=2, max=3, help="final-state partons: 2 or 3")] = 2,
    events: Annotated[str, typer.Option(help="unweighted events (0: only sigma)")] = "1e4",
    out: Annotated[Path | None, typer.Option(help=".lhe, .lhe.gz or .h5")] = Path("jets.lhe"),
    pt_min: Annotated[float, typer.Option(help="p_T cut of every parton (GeV)")] = JJ.pt_min,
    eta_max: Annotated[
        float | None, typer.Option(help="|eta| cut of every parton (default: none)")
    ] = None,
    dr_min: Annotated[
        float, typer.Option(help="Delta R cut between partons (3 jets)")
    ] = JJ_DR_MIN,
    scale: Annotated[str, typer.Option(help="mu_R = mu_F: GeV, or ht/2")] = f"{JJ.scale:g}",
    alpha_s: Annotated[
        float | None, typer.Option(help="fixed alpha_s (default: the PDF set's at mu_R)")
    ] = None,
    pdf: PdfSet = JJ.pdf,
    train_calls: TrainCalls = TRAIN_CALLS,
    calls: SigmaCalls = SIGMA_CALLS,
    channel_weights: Annotated[
        str, typer.Option(help="mixture (every channel's density: best efficiency) or learned")
    ] = library_default(generate_events, "channel_weights"),
    integrator: SavedIntegrator = None,
    seed: Annotated[int, typer.Option(help="random seed")] = DEFAULTS["seed"],
    shards: Shards = None,
    events_per_block: EventsPerBlock = EVENTS_PER_BLOCK,
    merge: Merge = True,
    workers: Workers = 1,
    device: Device = "cpu",
) -> None:
    """pp -> 2 or 3 jets at LO, 13 TeV: every partonic channel (Berends-Giele amplitudes),
    one flow channel per balancing parton (and, for 3 jets, per collinear parton pair), LHE
    events with leading-colour flows.

    --shards DIR generates in reproducible blocks, as drell-yan --shards does."""
    from hepflows.device import resolve_device
    from hepflows.errors import ConfigError
    from hepflows.io import check_event_path
    from hepflows.physics.processes import MultiJet, MultiJetParameters

    resolve_device(device, float64=True)
    mu = _scale(scale, True)
    n_events = _n_events(events)
    if channel_weights not in CHANNEL_WEIGHTS:
        raise ConfigError(f"--channel-weights must be one of {', '.join(CHANNEL_WEIGHTS)}, "
                          f"got {channel_weights!r}")  # fmt: skip
    plan = _shard_plan(shards, n_events, events_per_block, workers, integrator, out,
                       Path("jets.lhe"))  # fmt: skip
    integrator = plan.integrator if plan is not None else integrator
    if out is not None and n_events:
        check_event_path(out, "--out")
    _check_integrator(integrator)
    n_train, n_calls = count(train_calls, "--train-calls"), count(calls, "--calls")
    params = MultiJetParameters(n_jets=jets, pt_min=pt_min, scale=mu, alpha_s=alpha_s, pdf=pdf,
                                eta_max=math.inf if eta_max is None else eta_max,
                                dr_min=dr_min if jets == 3 else 0.0)  # fmt: skip
    process = MultiJet(params)
    console.print(str(process))
    setup = dict(train_calls=n_train, calls=n_calls, seed=seed, integrator=integrator,
                 fold=False, channel_weights=channel_weights, device=device)  # fmt: skip
    if plan is not None:
        _sharded(ctx, process, n_events, plan, merge, setup)
        return
    run = generate_events(process, n_events, out=out if n_events else None, **setup)
    _report(run, f"pp -> {jets} jets, {params.sqrt_s / 1e3:g} TeV, LO", "pb", "event")


def _check_sharded(shards: Path, n_events: int, events_per_block: str, workers: int) -> int:
    """Check the options of a sharded run before any work; the events per block."""
    from hepflows.distributed.context import launched_by_torchrun
    from hepflows.errors import ConfigError, InputError
    from hepflows.io.atomic import check_writable

    if workers > 1 and launched_by_torchrun():
        raise ConfigError("--workers launches torchrun itself: under torchrun drop --workers "
                          "(torchrun's --nproc-per-node sets the processes)")  # fmt: skip
    if n_events < 1:
        raise ConfigError("--events must be >= 1 with --shards (--events 0 computes only "
                          "sigma: drop --shards)")  # fmt: skip
    n_block = count(events_per_block, "--events-per-block")
    if shards.exists() and not shards.is_dir():
        raise InputError(f"--shards {shards} is a file: give a directory for the shards")
    try:
        check_writable(shards / "block-000000.json")
    except InputError:
        raise InputError(f"cannot write shards into --shards {shards}: choose a writable "
                         "directory") from None  # fmt: skip
    return n_block


def _report_training(training_calls: tuple[int, int] | None, integrator: Path) -> None:
    if training_calls is None:
        console.print(f"integrator: loaded from {integrator}")
    else:
        density, gradient = training_calls
        console.print(f"integrator: trained on {density:,} density + {gradient:,} gradient "
                      f"evaluations, saved to {integrator}")  # fmt: skip


def _report_sharded(sharded: ShardedGeneration, integrator: Path, world: int) -> None:
    """What a sharded run did (main rank): integrator, blocks, the merge."""
    run = sharded.run
    _report_training(sharded.training_calls, integrator)
    done = f", {len(sharded.skipped)} already finished" if sharded.skipped else ""
    console.print(f"{run.n_blocks} blocks of up to {run.events_per_block:,} events on {world} "
                  f"process(es) in {sharded.directory} (run {run.run_id}, w_max = "
                  f"{run.w_max:.4g}); rank 0: {len(sharded.generated)} generated"
                  f"{done}")  # fmt: skip
    if sharded.merged is not None:
        console.print(sharded.merged.summary())
        console.print("(IDWTUP = ±4, XWGTUP = sigma / N, sigma and its error in <init>)")
    else:
        console.print(f"merge them with: hepflows merge {sharded.directory} --out FILE")


def _relaunch(ctx: typer.Context, workers: int, integrator: Path) -> int:
    """Run this command again under torchrun with ``workers`` local processes; its exit code.

    The options are passed on as given (as parsed values), with ``--integrator`` set and
    without ``--workers``; one thread per process.
    """
    command = ctx.command.name or ctx.info_name
    args: list[str] = []
    for param in ctx.command.params:
        value = integrator if param.name == "integrator" else ctx.params[param.name]
        if param.name == "workers" or value is None:
            continue
        if isinstance(value, bool) and param.secondary_opts:
            args.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            args += [param.opts[0], str(value)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={workers}", "-m", "hepflows", "generate", command, *args]
    console.print(f"launching {workers} workers: torchrun --standalone "
                  f"--nproc-per-node={workers} -m hepflows generate {command} {' '.join(args)}")
    sys.stdout.flush()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, check=False).returncode  # fmt: skip


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
    device: Device = "cpu",
) -> None:
    """Three-body decays from differentiable amplitudes: integral, ESS, Dalitz plot, events."""
    from hepflows.device import resolve_device
    from hepflows.errors import ConfigError
    from hepflows.generate import DECAY_METHODS, generate_decay
    from hepflows.io import check_event_path
    from hepflows.physics.decays import get_decay

    resolve_device(device, float64=True)
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
                         seed=seed, integrator=integrator, device=device)  # fmt: skip
    _report(run, f"{f.name}: int |M|^2 ds12 ds23 ({method})", "GeV^4", "decay")
    if plot is not None and run.events is not None:
        from hepflows.plots import event_dalitz_plot

        event_dalitz_plot(f, run.events, plot, f"{f.name}, {method}")
        console.print(f"wrote {plot}")
