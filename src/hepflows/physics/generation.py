"""Event generation for a physics process: train (or load) an integrator, estimate, unweight, write.

:func:`generate_decay` is what ``hepflows generate decay`` runs (FAB or a NIS
loss on a three-body decay). :func:`generate_events` is what ``hepflows generate
drell-yan`` runs. The integrator is a multi-channel :class:`~hepflows.integrate.NeuralIntegrator`
over the process' channels (one per propagator) with mixture channel
weights, trained on the third moment of the weights (:data:`LOSS`); a saved
integrator is loaded instead of retrained when ``integrator`` names an
existing file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from hepflows.errors import ConfigError
from hepflows.integrate import Events, IntegrationResult, NeuralIntegrator
from hepflows.io import write_events
from hepflows.physics.decays.decay import ThreeBodyDecay
from hepflows.physics.processes import DrellYan

#: Training loss of process integrators: the 32nd moment of the weights
#: (:func:`hepflows.integrate.losses.moment`), close to minimising the largest
#: weight. On Drell-Yan with the Z' (folded, 2e5 + 2e5 calls, seeds 0-2) the
#: max-rule unweighting efficiency was 0.818 / 0.827 / 0.825 against 0.613 /
#: 0.590 / 0.624 with the third moment and relative errors 8.1e-5 / 9.1e-5 /
#: 8.3e-5 against about 6.8e-5; p = 48 gave 0.839 at 1.07e-4 (seed 0): a
#: higher order buys unweighting with precision. On camel the variance stays
#: better, so it remains the integrator's general default.
LOSS = "moment32"

#: LHEF process id of Drell-Yan in the files hepflows writes.
DRELL_YAN_ID = 1


@dataclass
class Generation:
    """Everything a generation run produced.

    Attributes:
        integrator: the trained (or loaded) integrator.
        result: the cross-section estimate (pb) from fresh samples.
        events: the unweighted events (``events.sigma`` in pb).
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


def generate_events(
    process: DrellYan,
    n_events: int,
    out: str | os.PathLike | None = None,
    train_calls: int = 200_000,
    calls: int = 100_000,
    seed: int = 0,
    multichannel: bool = True,
    integrator: str | os.PathLike | None = None,
    progress: bool = True,
    fold: bool = True,
) -> Generation:
    """Train or load an integrator for ``process``, estimate sigma, generate and write events.

    Args:
        process: the physics integrand (e.g. :class:`DrellYan`).
        n_events: unweighted events to generate (0: only the cross-section).
        out: event file (``.lhe``, ``.lhe.gz``, ``.h5``) or ``None``.
        train_calls: matrix-element calls for training.
        calls: calls for the cross-section estimate.
        seed: random seed.
        multichannel: one channel per propagator (else a single channel).
        integrator: file of a saved integrator: loaded if it exists (no
            training), else written after training.
        progress: progress bars.
        fold: integrate ``process.folded()`` (exact symmetries folded away:
            phi flat, the beam swap; see :mod:`hepflows.physics.symmetry`) and
            expand the events back to the full phase space.

    Returns:
        A :class:`Generation`.
    """
    if n_events < 0:
        raise ConfigError(f"n_events must be >= 0, got {n_events}")
    f = process.folded() if fold else process
    channels = f.channels() if multichannel else None
    path = Path(integrator) if integrator is not None else None
    trained = not (path is not None and path.exists())
    if trained:
        integ = NeuralIntegrator(f, f.dims, seed=seed, channels=channels, loss=LOSS)
        integ.train(calls=train_calls, progress=progress)
        if path is not None:
            integ.save(path)
    else:
        integ = NeuralIntegrator.load(path, f, channels=channels)
        if integ.dims != f.dims:
            raise ConfigError(
                f"{path} holds an integrator of {integ.dims} dimensions but this run integrates "
                f"{f.dims} ({'folded' if fold else 'unfolded'}): retrain it (another "
                "--integrator file) or switch --fold/--no-fold to match it"
            )
    result = integ.integrate(calls=calls, progress=progress)
    events = None
    out_path = Path(out) if out is not None else None
    if n_events:
        events = integ.generate(n_events, progress=progress)
        gen = torch.Generator().manual_seed(seed)
        if fold:  # back to the full (n, 4) phase space of the process
            events = replace(events, x=f.expand(events.x, gen))
        if out_path is not None:
            p = process.params
            alpha = p.alpha_em if isinstance(p.alpha_em, float) else 0.0
            write_events(
                out_path, events, particles=lambda x: process.lhe_particles(x, gen),
                beams=(2212, 2212, p.sqrt_s / 2, p.sqrt_s / 2),
                pdf_set=getattr(process.pdf, "lhapdf_id", None) or 0,
                process_id=DRELL_YAN_ID, scale=p.mu_f, aqed=alpha,
            )  # fmt: skip
    return Generation(integ, result, events, out_path if events is not None else None, trained)


#: LHEF process id of three-body decays in the files hepflows writes.
DECAY_ID = 2
#: Trainers of :func:`generate_decay`.
DECAY_METHODS = ("fab", "variance", "rkl")


def generate_decay(
    decay: ThreeBodyDecay,
    n_events: int,
    out: str | os.PathLike | None = None,
    method: str = "fab",
    train_calls: int = 100_000,
    calls: int = 100_000,
    seed: int = 0,
    integrator: str | os.PathLike | None = None,
    progress: bool = True,
) -> Generation:
    """Train or load a flow for a three-body decay, integrate |M|^2, generate and write decays.

    Args:
        decay: the decay density (:mod:`hepflows.physics.decays`).
        n_events: unweighted decays to generate (0: only the integral).
        out: event file (``.lhe``, ``.lhe.gz``, ``.h5``) or ``None``.
        method: ``"fab"`` (:class:`~hepflows.integrate.FABIntegrator`, uses the
            amplitude's gradient) or a :class:`NeuralIntegrator` loss
            (``"variance"``, ``"rkl"``).
        train_calls: training budget (FAB: density plus gradient calls).
        calls: calls for the integral estimate.
        seed: random seed.
        integrator: saved integrator: loaded if the file exists, else written.
        progress: progress bars.

    Returns:
        A :class:`Generation` (integral in GeV^4: int ds12 ds23 |M|^2).
    """
    from hepflows.integrate import FABIntegrator

    if method not in DECAY_METHODS:
        raise ConfigError(f"method must be one of {DECAY_METHODS}, got {method!r}")
    if n_events < 0:
        raise ConfigError(f"n_events must be >= 0, got {n_events}")
    cls = FABIntegrator if method == "fab" else NeuralIntegrator
    path = Path(integrator) if integrator is not None else None
    trained = not (path is not None and path.exists())
    if trained:
        integ = (FABIntegrator(decay, 2, seed=seed) if method == "fab"
                 else NeuralIntegrator(decay, 2, seed=seed, loss=method))  # fmt: skip
        integ.train(calls=train_calls, progress=progress)
        used = (integ.calls, integ.grad_calls)
        if path is not None:
            integ.save(path)
    else:
        integ, used = cls.load(path, decay), None
    result = integ.integrate(calls=calls, progress=progress)
    events = None
    out_path = Path(out) if out is not None else None
    if n_events:
        events = integ.generate(n_events, progress=progress)
        if out_path is not None:
            gen = torch.Generator().manual_seed(seed)
            write_events(
                out_path, events, particles=lambda x: decay.lhe_particles(x, gen),
                beams=(decay.pdg_ids[0], 0, decay.dalitz.M, 0.0), process_id=DECAY_ID,
                scale=decay.dalitz.M,
            )  # fmt: skip
    return Generation(integ, result, events, out_path if events is not None else None, trained,
                      used)  # fmt: skip
