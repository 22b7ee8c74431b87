"""The generation workflow: train (or load) an integrator, integrate, unweight, write.

:func:`run` is the one workflow every process and decay uses; the command
``hepflows generate ...`` calls it through :func:`generate_events`
(Drell-Yan and other processes) and :func:`generate_decay` (three-body decays).
It checks the output path before any work, then reports **one** result: the
integral and its error from every fresh sample of the run (the sample that
also sets w_max and is unweighted into events, plus any further batches the
events needed), and one unweighting efficiency per w_max rule from that
sample. The event file's header carries exactly that sigma and error.

:func:`generate_sharded` (and :func:`run_sharded` for any integrand) is the same
workflow in blocks whose random streams depend only on (seed, block), one shard
file per block, on one process or many ranks (``torchrun``): the merged event
set does not depend on the number of ranks, and a restarted job skips finished
blocks (:mod:`hepflows.integrate.blocks`, :mod:`hepflows.io.shards`).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from hepflows.distributed import (
    all_reduce_sum,
    barrier,
    broadcast_object,
    is_main,
    rank,
    shared_counter,
    world_size,
)
from hepflows.errors import CheckpointError, ConfigError
from hepflows.integrate import IntegrationResult, NeuralIntegrator
from hepflows.integrate.blocks import fingerprint, generate_block, pilot, records_generator
from hepflows.integrate.channels import Channel, check_channels
from hepflows.integrate.integrands import Integrand
from hepflows.integrate.integrator import default_transforms, read_config
from hepflows.io import Events, check_event_path, write_events
from hepflows.io.lhe import SUFFIXES
from hepflows.io.shards import MergeReport, RunInfo, finished_blocks, merge_shards, write_shard
from hepflows.progress import progress_bar

#: Training loss of process integrators: the 32nd moment of the weights
#: (:func:`hepflows.integrate.losses.moment`), close to minimising the largest
#: weight. On Drell-Yan with the Z' (folded, 2e5 + 2e5 calls, seeds 0-2) the
#: max-rule unweighting efficiency was 0.818 / 0.827 / 0.825 against 0.613 /
#: 0.590 / 0.624 with the third moment and relative errors 8.1e-5 / 9.1e-5 /
#: 8.3e-5 against about 6.8e-5; p = 48 gave 0.839 at 1.07e-4 (seed 0): a
#: higher order buys unweighting with precision. On camel the variance stays
#: better, so it remains the integrator's general default.
LOSS = "moment32"

#: LHEF process id of three-body decays in the files hepflows writes.
DECAY_ID = 2
#: Trainers of :func:`generate_decay`: FAB or a loss of the importance trainer.
DECAY_METHODS = ("fab", "variance", "rkl")
#: Defaults of the workflow (the CLI takes its defaults from here).
DEFAULTS = {"train_calls": 200_000, "calls": 100_000, "seed": 0}
#: Channel weights of the process integrators (``NeuralIntegrator(weights=...)``).
CHANNEL_WEIGHTS = ("mixture", "learned")
#: The command-line option of each integrator setting a saved file must match.
EXPECT_OPTIONS = {"weights": "--channel-weights", "transforms": "--transforms"}
DECAY_DEFAULTS = {"train_calls": 100_000, "calls": 100_000, "seed": 0, "method": "fab"}


@dataclass
class Generation:
    """Everything a generation run produced.

    Attributes:
        integrator: the trained (or loaded) integrator.
        result: the one result of the run (integral, error, unweighting
            efficiencies), from every fresh sample; with events it is
            ``events.result`` and the file header carries it.
        events: the unweighted events, or ``None``.
        path: the event file written, or ``None``.
        trained: whether the integrator was trained in this run (else loaded).
        training_calls: (density, gradient) evaluations of the training in this
            run, ``None`` when loaded.
    """

    integrator: NeuralIntegrator
    result: IntegrationResult
    events: Events | None
    path: Path | None
    trained: bool
    training_calls: tuple[int, int] | None = None

    @property
    def calls_per_event(self) -> float | None:
        """Integrand calls of this run (training included) per written event."""
        if self.events is None or not len(self.events):
            return None
        training = sum(self.training_calls) if self.training_calls else 0
        return (training + self.result.calls) / len(self.events)


def run(
    f: Integrand,
    n_events: int,
    build: Callable[[], NeuralIntegrator],
    out: str | os.PathLike | None = None,
    channels: Sequence[Channel] | None = None,
    train_calls: int = DEFAULTS["train_calls"],
    calls: int = DEFAULTS["calls"],
    seed: int = DEFAULTS["seed"],
    integrator: str | os.PathLike | None = None,
    progress: bool = True,
    expand: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    particles: Callable[[torch.Tensor, torch.Generator], Any] | None = None,
    write: dict[str, Any] | None = None,
    expect: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> Generation:
    """Train or load, integrate, unweight and write: the workflow of every process.

    Args:
        f: the integrand on [0, 1]^d.
        n_events: unweighted events to generate (0: only the integral).
        build: makes a fresh integrator for ``f`` (used when none is loaded).
        out: event file (``.lhe``, ``.lhe.gz``, ``.h5``) or ``None``; checked before any work.
        channels: the channels ``build`` uses (needed to load a saved integrator).
        train_calls: training budget (density + gradient calls).
        calls: fresh calls for the integral (the first sample, also unweighted into events).
        seed: seed of the event expansion and particle records.
        integrator: saved integrator: loaded if the file exists (any trainer), else written.
        progress: progress bars.
        expand: maps the events' points (n, d) to the process' full phase space
            (a folded integrand's ``expand``).
        particles: ``particles(x, generator)``: the events' particle records (see
            :func:`hepflows.io.write_events`); it draws from the same stream as
            ``expand``, after it.
        write: other keyword arguments of :func:`hepflows.io.write_events` (beams...).
        expect: integrator settings ``build`` uses that a loaded integrator must
            have too (``{"weights": ..., "transforms": ...}``; ``None``: any).
        device: where a loaded integrator goes (``build`` places a new one itself);
            events come back to the CPU for expansion, records and writing.

    Returns:
        A :class:`Generation`.
    """
    if n_events < 0:
        raise ConfigError(f"n_events must be >= 0, got {n_events}")
    out_path = check_event_path(out, "--out") if out is not None and n_events else None
    integ, trained, used = _obtain(f, build, channels, integrator, train_calls, progress,
                                   expect, device)
    events = None
    if n_events:
        events = integ.generate(n_events, calls=calls, progress=progress)
        result = events.result
        gen = torch.Generator().manual_seed(seed)  # one stream: expansion, then records
        if expand is not None:
            events = replace(events, x=expand(events.x, gen))
        if out_path is not None:
            records = None if particles is None else (lambda x: particles(x, gen))
            write_events(out_path, events, particles=records, **(write or {}))
    else:
        result = integ.integrate(calls=calls, progress=progress)
    return Generation(integ, result, events, out_path if events is not None else None, trained,
                      used)  # fmt: skip


def _obtain(
    f: Integrand,
    build: Callable[[], NeuralIntegrator],
    channels: Sequence[Channel] | None,
    integrator: str | os.PathLike | None,
    train_calls: int,
    progress: bool,
    expect: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> tuple[NeuralIntegrator, bool, tuple[int, int] | None]:
    """Load the saved integrator if its file exists, else build and train one (and save it).

    Only the main rank saves (every rank keeps the one it trained).

    Returns:
        ``(integrator, trained, (density, gradient) training calls or None)``.
    """
    path = Path(integrator) if integrator is not None else None
    if path is not None and path.exists():
        return _load(path, f, channels, expect, device), False, None
    integ = build()
    history = integ.train(calls=train_calls, progress=progress)
    if path is not None and is_main():
        integ.save(path)
    return integ, True, (history.density_calls, history.grad_calls)


def _load(
    path: Path, f: Integrand, channels: Sequence[Channel] | None,
    expect: dict[str, Any] | None = None, device: str | torch.device | None = None,
) -> NeuralIntegrator:
    """A saved integrator for ``f``, with errors that name the command-line options."""
    config = read_config(path)
    if config["dims"] != getattr(f, "dims", config["dims"]):
        raise ConfigError(
            f"--integrator {path} holds an integrator of {config['dims']} dimensions but this run "
            f"integrates {f.dims}: retrain it (another --integrator file) or switch "
            "--fold/--no-fold to match it"
        )
    names = [ch.name for ch in check_channels(channels)]
    if config["channels"] != names:
        raise CheckpointError(
            f"--integrator {path} was trained with channels {config['channels']}, this run uses "
            f"{names}: use the same --multichannel/--no-multichannel setting or another file"
        )
    for key, wanted in (expect or {}).items():
        if key == "weights" and len(names) == 1:
            continue  # one channel: nothing is weighted
        if wanted is not None and config.get(key) != wanted:
            option = EXPECT_OPTIONS.get(key, key)
            raise CheckpointError(
                f"--integrator {path} was trained with {key} = {config.get(key)}, this run asks "
                f"for {wanted}: pass {option} {config.get(key)} or another --integrator file"
            )
    return NeuralIntegrator.load(path, f, channels=channels, device=device)


def generate_events(
    process: Any,
    n_events: int,
    out: str | os.PathLike | None = None,
    train_calls: int = DEFAULTS["train_calls"],
    calls: int = DEFAULTS["calls"],
    seed: int = DEFAULTS["seed"],
    multichannel: bool = True,
    integrator: str | os.PathLike | None = None,
    progress: bool = True,
    fold: bool = True,
    channel_weights: str = "mixture",
    transforms: int | None = None,
    device: str | torch.device | None = None,
) -> Generation:
    """Events of a physics process (e.g. :class:`~hepflows.physics.DrellYan`), cross-section in pb.

    A multi-channel :class:`NeuralIntegrator` over the process' channels (one
    per propagator) with mixture channel weights, trained on :data:`LOSS`.

    Args:
        process: the physics integrand (``folded()`` if ``fold``, ``channels()`` if
            ``multichannel``, ``particle_table``, ``event_header()``; optionally
            ``event_scales``: per-event SCALUP and AQCDUP), e.g. a
            :class:`~hepflows.physics.DrellYan` or :class:`~hepflows.physics.processes.MultiJet`.
        n_events: unweighted events to generate (0: only the cross-section).
        out: event file (``.lhe``, ``.lhe.gz``, ``.h5``) or ``None``.
        train_calls: matrix-element calls for training.
        calls: calls for the cross-section (the sample also unweighted into events).
        seed: random seed.
        multichannel: one channel per propagator (else a single channel).
        integrator: file of a saved integrator: loaded if it exists, else written.
        progress: progress bars.
        fold: integrate ``process.folded()`` (exact symmetries folded away:
            phi flat, the beam swap; see :mod:`hepflows.physics.symmetry`) and
            expand the events back to the full phase space.
        channel_weights: how the channels share a point (:data:`CHANNEL_WEIGHTS`):
            ``"mixture"`` (every channel's flow density, Kleiss-Pittau: the best
            efficiency, one flow pass per channel for each point) or ``"learned"``
            (a channel-weight network, MadNIS: one flow pass per point, the
            fastest generation).
        transforms: coupling blocks of the flow (default: by dimension,
            :func:`~hepflows.integrate.integrator.default_transforms`; Drell-Yan's
            three folded dimensions reach the same efficiency with 3, at twice the
            generation speed: docs/scale.md).
        device: ``"cpu"`` (default) or ``"cuda"``: training, integration and
            unweighting run there (:mod:`hepflows.device`).
    """
    setup = _process_setup(process, seed, multichannel, fold, channel_weights, transforms,
                           device)  # fmt: skip
    write = dict(setup.write)
    if hasattr(process, "event_scales"):  # SCALUP and AQCDUP event by event
        write["scales"] = process.event_scales
    return run(
        setup.f, n_events, setup.build, out=out, channels=setup.channels,
        train_calls=train_calls, calls=calls, seed=seed, integrator=integrator,
        progress=progress, expand=setup.expand, particles=process.particle_table,
        write=write, expect=setup.expect, device=device,
    )  # fmt: skip


@dataclass
class _ProcessSetup:
    """What the process workflows need of a physics process."""

    f: Any
    channels: list[Channel] | None
    build: Callable[[], NeuralIntegrator]
    expand: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None
    write: dict[str, Any]
    expect: dict[str, Any] = field(default_factory=dict)


def _process_setup(
    process: Any, seed: int, multichannel: bool, fold: bool, channel_weights: str = "mixture",
    transforms: int | None = None, device: str | torch.device | None = None,
) -> _ProcessSetup:
    """The integrand, channels, integrator factory, expansion and LHE header of a process."""
    if channel_weights not in CHANNEL_WEIGHTS:
        raise ConfigError(
            f"channel weights must be one of {CHANNEL_WEIGHTS}, got {channel_weights!r}"
        )
    if transforms is not None and transforms < 1:
        raise ConfigError(f"transforms must be >= 1, got {transforms}")
    f = process.folded() if fold else process
    channels = f.channels() if multichannel else None
    write = process.event_header()
    return _ProcessSetup(
        f, channels,
        lambda: NeuralIntegrator(f, f.dims, seed=seed, channels=channels, loss=LOSS,
                                 weights=channel_weights, transforms=transforms,
                                 device=device, **getattr(process, "training_options", {})),
        f.expand if fold else None, write,
        {"weights": channel_weights, "transforms": transforms or default_transforms(f.dims)},
    )  # fmt: skip


def generate_decay(
    decay: Any,
    n_events: int,
    out: str | os.PathLike | None = None,
    method: str = DECAY_DEFAULTS["method"],
    train_calls: int = DECAY_DEFAULTS["train_calls"],
    calls: int = DECAY_DEFAULTS["calls"],
    seed: int = DECAY_DEFAULTS["seed"],
    integrator: str | os.PathLike | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> Generation:
    """Decays of a three-body decay density (:mod:`hepflows.physics.decays`), integral in GeV^4.

    Args:
        decay: the decay density (a ``ThreeBodyDecay``).
        n_events: unweighted decays to generate (0: only the integral).
        out: event file (``.lhe``, ``.lhe.gz``, ``.h5``) or ``None``.
        method: ``"fab"`` (uses the amplitude's gradient) or an importance loss
            (``"variance"``, ``"rkl"``); a loaded integrator keeps its own trainer.
        train_calls: training budget (FAB: density plus gradient calls).
        calls: calls for the integral (the sample also unweighted into decays).
        seed: random seed.
        integrator: saved integrator: loaded if the file exists, else written.
        progress: progress bars.
        device: ``"cpu"`` (default) or ``"cuda"`` (:mod:`hepflows.device`).
    """
    if method not in DECAY_METHODS:
        raise ConfigError(f"method must be one of {DECAY_METHODS}, got {method!r}")
    write = dict(beams=(decay.pdg_ids[0], 0, decay.dalitz.M, 0.0), process_id=DECAY_ID,
                 scale=decay.dalitz.M)  # fmt: skip
    return run(
        decay, n_events,
        lambda: NeuralIntegrator(decay, 2, seed=seed, trainer=method, device=device), out=out,
        train_calls=train_calls, calls=calls, seed=seed, integrator=integrator,
        progress=progress, particles=decay.particle_table, write=write, device=device,
    )  # fmt: skip


#: Events generated per fiducial event of :func:`generate_pairs` (1 / 0.53 measured, + margin).
OVERGENERATE = 2.1


def generate_pairs(
    n: int,
    zprime: bool,
    seed: int = 0,
    detector: Any = None,
    names: Sequence[str] | None = None,
    train_calls: int = DEFAULTS["train_calls"],
    progress: bool = False,
    fiducial: bool = True,
    **process: Any,
) -> Any:
    """Unfolding pairs: n Drell-Yan events of the benchmark set-up, generated and detected.

    The set-up is :data:`hepflows.inference.pairs.SETUP` (m_ll > 150 GeV, a
    weak Z'); events come from :func:`generate_events` (a multi-channel flow
    integrator, unweighted), the detector is
    :class:`~hepflows.inference.ToyDetector`.

    Args:
        n: unweighted events to generate (all of them, detected or not).
        zprime: include the Z' (the data prior P1) or not (P0).
        seed: seed of the event generation; the default detector is
            ``ToyDetector(seed=seed + 1)``.
        detector: a :class:`~hepflows.inference.ToyDetector` (default settings of the design note).
        names: observables (default :data:`hepflows.inference.LO`).
        train_calls: training budget of the generator's integrator.
        progress: progress bars.
        fiducial: return n events inside the detector's acceptance at truth level
            (both leptons pT > 20 GeV, |eta| < 2.5: the region an unfolding can
            reach), from about ``OVERGENERATE * n`` generated ones; ``False``:
            n events, with those the detector can never see.
        **process: overrides of the set-up and any
            :class:`~hepflows.physics.DrellYanParameters` field.

    Returns:
        :class:`hepflows.inference.pairs.Pairs` with the set-up recorded (process
        parameters, seeds, the generator's cross-section).
    """
    from hepflows.inference import LO, ToyDetector
    from hepflows.inference.pairs import SETUP, detect
    from hepflows.physics import DrellYan

    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    params = {**SETUP, **process, "zprime": zprime}
    dy = DrellYan(**params)
    # about half of the events have a lepton outside the acceptance (measured: 53 %)
    total = math.ceil(OVERGENERATE * n + 50) if fiducial else n
    gen = generate_events(dy, total, out=None, train_calls=train_calls, seed=seed,
                          progress=progress)  # fmt: skip
    assert gen.events is not None  # n >= 1
    _, _, lepton, antilepton = dy.momenta(gen.events.x)
    plain = {k: v for k, v in params.items() if isinstance(v, bool | int | float | str)}
    setup = {"process": plain, "seed": seed, "sigma_pb": gen.result.value,
             "sigma_error_pb": gen.result.error}  # fmt: skip
    pairs = detect(lepton, antilepton, detector or ToyDetector(seed=seed + 1),
                   tuple(names or LO), gen.events.weights.abs(), setup, fiducial)  # fmt: skip
    if len(pairs) < n:
        raise ConfigError(f"only {len(pairs)} of {total} generated events are fiducial, "
                          f"{n} were asked for: lower n or raise OVERGENERATE")  # fmt: skip
    return pairs[:n]


# --------------------------------------------------------------------- sharded generation
#: Defaults of the sharded workflow (besides :data:`DEFAULTS`).
SHARD_DEFAULTS = {"events_per_block": 100_000, "batch_size": 100_000, "format": ".h5"}


@dataclass
class ShardedGeneration:
    """What one rank of a sharded run did.

    Attributes:
        integrator: the trained (or loaded) integrator.
        run: the run description every shard carries (run id, w_max, blocks...).
        directory: the shard directory.
        generated: blocks this rank generated in this call.
        skipped: blocks of this rank already finished (by an earlier, interrupted job).
        merged: the merge report on the main rank when ``merge_to`` was given, else ``None``.
        trained: whether the integrator was trained in this run (else loaded).
        training_calls: (density, gradient) training calls of this run, ``None`` when loaded.
    """

    integrator: NeuralIntegrator
    run: RunInfo
    directory: Path
    generated: list[int]
    skipped: list[int]
    merged: MergeReport | None
    trained: bool
    training_calls: tuple[int, int] | None = None


def _event_suffix(path: str | os.PathLike) -> str:
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise ConfigError(f"cannot tell the event format of {path}: use one of {SUFFIXES}")


def _check_same_run(run_id: str) -> None:
    """Raise on every rank when the ranks disagree on the run (e.g. different integrators)."""
    root = broadcast_object(run_id)
    differ = all_reduce_sum(torch.tensor([float(root != run_id)], device="cpu"))
    if differ.item() > 0:
        raise ConfigError(
            f"{int(differ.item())} rank(s) describe another run than rank 0 (different "
            "integrator weights or w_max): train and save the integrator once (--integrator "
            "FILE), then let every rank load that file"
        )


def run_sharded(
    f: Integrand,
    n_events: int,
    build: Callable[[], NeuralIntegrator],
    out_dir: str | os.PathLike,
    events_per_block: int = SHARD_DEFAULTS["events_per_block"],
    channels: Sequence[Channel] | None = None,
    train_calls: int = DEFAULTS["train_calls"],
    calls: int = DEFAULTS["calls"],
    seed: int = DEFAULTS["seed"],
    integrator: str | os.PathLike | None = None,
    progress: bool = True,
    expand: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    particles: Callable[[torch.Tensor, torch.Generator], Any] | None = None,
    write: dict[str, Any] | None = None,
    expect: dict[str, Any] | None = None,
    scales: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    merge_to: str | os.PathLike | None = None,
    shard_format: str | None = None,
    batch_size: int = SHARD_DEFAULTS["batch_size"],
    rule: str = "quantile",
    quantile: float = 0.999,
    extra: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> ShardedGeneration:
    """Sharded generation of any integrand: the same event set for 1 or N ranks.

    Every rank runs this function (``torchrun``, or a single process). Each
    obtains the integrator (see below), computes w_max from the pilot sample
    (:func:`~hepflows.integrate.blocks.pilot`, shared out, the same on every rank),
    and generates the blocks that are not finished yet: under ``torchrun`` each
    rank takes the next one from a counter the ranks share (in the store of the
    process group) whenever it is free, so no rank waits for a slower one at the
    end; without a shared store, the blocks b with ``b % world_size() == rank()``.
    Each block goes into its own shard (:func:`hepflows.io.shards.write_shard`);
    which rank makes it does not change it: block b's events, their expansion
    and particle records draw only from streams keyed by (seed, b), and the pilot
    sample from reserved streams, gathered in a fixed order. After a barrier the
    main rank merges the shards into ``merge_to`` (or run ``hepflows merge`` later). A restarted job
    skips finished blocks; a directory holding another run's blocks is refused.

    The integrator: load a saved file (``integrator`` exists) or train one. Under
    ``torchrun``, train and save it once first (e.g. ``hepflows generate ...
    --events 0 --integrator FILE``) and let every rank load that file; training
    inside a multi-rank job averages gradients over the ranks, so every rank ends
    with the same weights only if the training is deterministic. The ranks check
    that they agree (their run ids) and stop with an error otherwise.

    Args:
        f: the integrand on [0, 1]^d.
        n_events: events of the whole run (all ranks).
        build: makes a fresh integrator for ``f`` (used when none is loaded).
        out_dir: the shard directory.
        events_per_block: events per block (the last block holds the rest).
        channels: the channels ``build`` uses (needed to load a saved integrator).
        train_calls: training budget when training.
        calls: points of the w_max pilot sample.
        seed: seed of the run: block streams, pilot and records.
        integrator: saved integrator: loaded if the file exists, else trained and written.
        progress: progress bar over this rank's blocks (main rank only).
        expand: maps accepted points (n, d) to the full phase space (folded integrands).
        particles: ``particles(x, generator)``: particle records of the expanded points.
        scales: per-event (SCALUP, AQCDUP) of the expanded points, (n, d) -> two (n,)
            (dynamic scales, e.g. ``MultiJet.event_scales``); ``None``: the header's.
        write: other keyword arguments of :func:`hepflows.io.write_events` (beams...).
        expect: integrator settings ``build`` uses that a loaded integrator must
            have too (``{"weights": ..., "transforms": ...}``; ``None``: any).
        merge_to: merged event file written by the main rank at the end, or ``None``.
        shard_format: event format of the shards (default: that of ``merge_to``, else ``.h5``).
        batch_size: most points per flow pass (part of the run: it shapes the streams).
        rule: the w_max rule (``"quantile"`` or ``"max"``).
        quantile: its quantile.
        extra: further JSON values identifying the run (recorded, part of the run id).
        device: where a loaded integrator goes (``"cuda"``: each rank its own GPU);
            a run off the CPU records its device type in the run id, as its streams
            differ from the CPU's.

    Returns:
        This rank's :class:`ShardedGeneration`.
    """
    if n_events < 1 or events_per_block < 1:
        raise ConfigError(
            f"n_events and events_per_block must be >= 1, got {n_events}, {events_per_block}"
        )
    directory = Path(out_dir)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file: give a directory for the shards")
    merge_path = check_event_path(merge_to, "--merge-to") if merge_to is not None else None
    suffix = shard_format or (_event_suffix(merge_path) if merge_path else
                              SHARD_DEFAULTS["format"])  # fmt: skip
    if suffix not in SUFFIXES:
        raise ConfigError(f"unknown shard format {suffix!r}: choose one of {SUFFIXES}")
    integ, trained, used = _obtain(f, build, channels, integrator, train_calls, progress,
                                   expect, device)
    w_max, acceptance = pilot(integ, calls, seed, rule, quantile, batch_size)
    ident = {"integrator": fingerprint(integ), "batch_size": batch_size, "pilot_calls": calls}
    if integ.device.type != "cpu":
        ident["device"] = integ.device.type
    run = RunInfo.create(seed, n_events, events_per_block, w_max, suffix, rule, quantile,
                         write=write, extra={**ident, **(extra or {})})  # fmt: skip
    _check_same_run(run.run_id)
    finished = finished_blocks(directory, run)
    unfinished = [b for b in range(run.n_blocks) if b not in finished]
    claim = shared_counter(f"blocks/{run.run_id}/{next(_SHARDED_CALLS)}")
    if claim is None:  # blocks b with b % W == rank (one process: all of them)
        mine = list(range(rank(), run.n_blocks, world_size()))
        order, skipped = [b for b in mine if b not in finished], [b for b in mine if b in finished]
    else:  # each rank takes the next unfinished block when it is free: none waits at the end
        order, skipped = _claimed(claim, unfinished), sorted(finished) if is_main() else []
    generated: list[int] = []
    total, shown = (len(unfinished) if claim is not None else len(order)), 0
    with progress_bar(total, "blocks", enabled=progress and is_main()) as bar:
        for b in order:
            block = generate_block(integ, b, run.block_events(b), w_max, seed, batch_size,
                                   acceptance=acceptance)  # fmt: skip
            gen = records_generator(seed, b)  # one stream: expansion, then records
            x = block.x if expand is None else expand(block.x, gen)
            records = None if particles is None else (lambda u, g=gen: particles(u, g))
            write_shard(directory, run, b, x, block.weights, block.calls, block.sum_w,
                        block.sum_w2, particles=records, scales=scales)  # fmt: skip
            generated.append(b)
            # with claims, the main rank's bar follows the blocks handed out so far
            done = unfinished.index(b) + 1 if claim is not None else len(generated)
            bar.advance(max(done - shown, 0))
            shown = max(done, shown)
    barrier()
    merged = None
    if merge_path is not None and is_main():
        merged = merge_shards(directory, merge_path, expected_blocks=run.n_blocks)
    return ShardedGeneration(integ, run, directory, generated, skipped, merged, trained,
                             used)  # fmt: skip


#: Calls of :func:`run_sharded` in this process: part of the name of each call's shared
#: block counter (every rank calls it in the same order).
_SHARDED_CALLS = itertools.count()


def _claimed(claim: Callable[[], int], unfinished: list[int]) -> Iterator[int]:
    """The unfinished blocks this rank claims from the shared counter, until none is left."""
    while (k := claim()) < len(unfinished):
        yield unfinished[k]


def generate_sharded(
    process: Any,
    n_events: int,
    out_dir: str | os.PathLike,
    events_per_block: int = SHARD_DEFAULTS["events_per_block"],
    train_calls: int = DEFAULTS["train_calls"],
    calls: int = DEFAULTS["calls"],
    seed: int = DEFAULTS["seed"],
    integrator: str | os.PathLike | None = None,
    progress: bool = True,
    fold: bool = True,
    merge_to: str | os.PathLike | None = None,
    multichannel: bool = True,
    shard_format: str | None = None,
    batch_size: int = SHARD_DEFAULTS["batch_size"],
    channel_weights: str = "mixture",
    transforms: int | None = None,
    device: str | torch.device | None = None,
) -> ShardedGeneration:
    """Events of a physics process in reproducible blocks, one shard per block, on any ranks.

    The process set-up (channels, folding, LHE header, particle records) is
    that of :func:`generate_events`; the sharding is :func:`run_sharded`'s.
    Launch it the same way with one process or under ``torchrun``: the merged
    event set is the same. Under ``torchrun`` give a saved ``integrator`` file
    (train and save it once first), which every rank loads.

    Args:
        process: the physics integrand (e.g. :class:`~hepflows.physics.DrellYan`).
        n_events: events of the whole run.
        out_dir: the shard directory.
        events_per_block: events per block.
        train_calls: matrix-element calls for training (when no saved integrator is given).
        calls: points of the w_max pilot sample.
        seed: random seed of the run.
        integrator: saved integrator: loaded if the file exists, else trained and written.
        progress: progress bars.
        fold: integrate ``process.folded()`` and expand events back (as :func:`generate_events`).
        merge_to: merged event file written by the main rank at the end, or ``None``.
        multichannel: one channel per propagator (else a single channel).
        shard_format: event format of the shards (default: that of ``merge_to``, else ``.h5``).
        batch_size: most points per flow pass.
        channel_weights: ``"mixture"`` or ``"learned"`` (as :func:`generate_events`).
        transforms: coupling blocks of the flow (as :func:`generate_events`).
        device: ``"cpu"`` (default) or ``"cuda"`` (as :func:`generate_events`).
    """
    setup = _process_setup(process, seed, multichannel, fold, channel_weights, transforms,
                           device)  # fmt: skip
    return run_sharded(
        setup.f, n_events, setup.build, out_dir, events_per_block=events_per_block,
        channels=setup.channels, train_calls=train_calls, calls=calls, seed=seed,
        integrator=integrator, progress=progress, expand=setup.expand,
        particles=process.particle_table, write=setup.write, merge_to=merge_to,
        scales=getattr(process, "event_scales", None),
        shard_format=shard_format, batch_size=batch_size, expect=setup.expect,
        extra={"process": type(process).__name__, "fold": fold, "multichannel": multichannel,
               **setup.expect},
        device=device,
    )  # fmt: skip
