"""Write and read unweighted events as Les Houches Event files with ``pylhe``.

The format follows the file suffix, as ``pylhe.LHEFile.tofile`` does:
``.lhe`` (XML), ``.lhe.gz`` (gzipped) or ``.h5``/``.hdf5`` (pylhe's LHEH5).

Weighting strategy (LHEF, hep-ph/0609017): IDWTUP = +4 (or -4 when some
weights are negative) with XWGTUP = sigma * w_i / N for event weight w_i
(+-1, or > 1 for overweight events of partial unweighting), so that the sum
of XWGTUP over the file estimates sigma. XSECUP/XERRUP carry sigma and its
error.

Events of a generic integrand have no particles: their unit-cube
coordinates travel as named per-event weights ``x1 ... xd`` in a weight group
``hepflows-coordinates``, which all three formats keep (the XML formats with
the 5 significant digits pylhe writes for weights, LHEH5 in full). Physics processes
pass a ``particles`` function that turns coordinates into particle records, best
as one (n, P, 13) table: LHEH5 files are then written column-wise
(:mod:`hepflows.io.lheh5`, about 1 us per event instead of pylhe's 60).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hepflows.errors import InputError, ShapeError
from hepflows.extras import require
from hepflows.io.atomic import atomic_write, check_writable
from hepflows.io.events import Events
from hepflows.io.lheh5 import write_lheh5
from hepflows.io.particles import PARTICLE_COLUMNS, records

if TYPE_CHECKING:
    import pylhe

COORDINATES = "hepflows-coordinates"
SUFFIXES = (".lhe", ".lhe.gz", ".h5", ".hdf5")

#: Maps (n, d) event points to their particles: an (n, P, 13) particle table
#: (:func:`hepflows.io.particles.particle_table`) or n lists of ``pylhe.LHEParticle``.
Particles = Callable[[torch.Tensor], "torch.Tensor | Sequence[Sequence[pylhe.LHEParticle]]"]


def _pylhe(purpose: str) -> ModuleType:
    return require("pylhe", "physics", purpose)


def _check_suffix(path: Path) -> None:
    if not any(path.name.endswith(s) for s in SUFFIXES):
        raise InputError(f"cannot tell the event format of {path}: use one of {SUFFIXES}")


def check_event_path(path: str | os.PathLike, option: str = "") -> Path:
    """Check, before any work, that events can be written to ``path`` (format and place).

    Raises:
        InputError: unknown suffix or a place that cannot be written.
    """
    return check_writable(path, SUFFIXES, "event file", option)


def write_events(
    path: str | os.PathLike,
    events: Events,
    particles: Particles | None = None,
    beams: tuple[int, int, float, float] = (0, 0, 0.0, 0.0),
    pdf_set: int = 0,
    process_id: int = 1,
    generator: str = "hepflows",
    scale: float = 0.0,
    aqed: float = 0.0,
    scales: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> None:
    """Write unweighted events (atomically) in the format of the file suffix.

    Args:
        path: ``*.lhe``, ``*.lhe.gz``, ``*.h5`` or ``*.hdf5``.
        events: from :meth:`hepflows.integrate.NeuralIntegrator.generate`.
        particles: maps (n, d) coordinates to the events' particles (physics): an
            (n, P, 13) table or n lists of ``pylhe.LHEParticle``; without it the
            coordinates are stored as weights.
        beams: (id A, id B, energy A, energy B) for the ``<init>`` block.
        pdf_set: LHAPDF id of the PDF set on both beams (0: none).
        process_id: LPRUP.
        generator: name in the ``<generator>`` tag.
        scale: SCALUP of every event (GeV; e.g. the fixed factorisation scale).
        aqed: AQEDUP of every event.
        scales: per-event (SCALUP, AQCDUP) from the events' coordinates: (n, d) -> two
            (n,) (a dynamic scale and alpha_s there); replaces ``scale`` (AQCDUP else 0).
    """
    import hepflows

    path = Path(path)
    _check_suffix(path)
    pylhe = _pylhe("Writing LHE event files")
    n = len(events)
    if n == 0:
        raise InputError("no events to write")
    negative = bool((events.weights < 0).any())
    xw = events.sigma * events.weights / n  # XWGTUP per event
    init = pylhe.LHEInit(
        initInfo=pylhe.LHEInitInfo(
            beamA=beams[0], beamB=beams[1], energyA=beams[2], energyB=beams[3],
            PDFgroupA=0, PDFgroupB=0, PDFsetA=pdf_set, PDFsetB=pdf_set,
            weightingStrategy=-4 if negative else 4, numProcesses=1,
        ),  # fmt: skip
        procInfo=[
            pylhe.LHEProcInfo(
                xSection=events.sigma, error=events.sigma_error,
                unitWeight=float(xw.abs().max()), procId=process_id,
            )  # fmt: skip
        ],
        generators=[
            pylhe.LHEGenerator(name=generator, version=hepflows.__version__, description="")
        ],
    )
    header = None
    dims = events.x.shape[1]
    if particles is None:
        group = pylhe.LHEInitRWGTWeightGroup(
            name=COORDINATES,
            weights=[pylhe.LHEInitRWGTWeight(id=f"x{i + 1}", name=f"coordinate {i + 1}")
                     for i in range(dims)],  # fmt: skip
        )
        header = pylhe.LHEHeader(initrwgt=pylhe.LHEInitRWGT(entries=[group]))
    made = particles(events.x) if particles is not None else None
    if scales is not None:
        mu, a_s = (t.detach().cpu().double() for t in scales(events.x))
    else:
        mu = torch.full((n,), float(scale), dtype=torch.float64, device="cpu")
        a_s = torch.zeros(n, dtype=torch.float64, device="cpu")
    if mu.shape != (n,) or a_s.shape != (n,):
        raise ShapeError(f"scales must give two ({n},) tensors, got {tuple(mu.shape)} and "
                         f"{tuple(a_s.shape)}")  # fmt: skip
    if _is_hdf5(path):
        _write_columns(path, init, header, events, xw, made, process_id, mu, aqed, a_s)
        return
    if made is None:
        plists: Sequence[Sequence[pylhe.LHEParticle]] = [[] for _ in range(n)]
    else:
        plists = records(made) if isinstance(made, torch.Tensor) else made
    x = events.x.tolist()
    mu_list, as_list = mu.tolist(), a_s.tolist()
    lhe_events = []
    for i in range(n):
        weights = {} if particles is not None else {f"x{j + 1}": x[i][j] for j in range(dims)}
        lhe_events.append(
            pylhe.LHEEvent(
                eventinfo=pylhe.LHEEventInfo(
                    nparticles=len(plists[i]), pid=process_id, weight=float(xw[i]),
                    scale=mu_list[i], aqed=aqed, aqcd=as_list[i],
                ),  # fmt: skip
                particles=list(plists[i]),
                weights=weights,
            )
        )
    write_lhe(path, init, lhe_events, header)


def _is_hdf5(path: Path) -> bool:
    return path.suffix in (".h5", ".hdf5")


def _write_columns(
    path: Path,
    init: pylhe.LHEInit,
    header: pylhe.LHEHeader | None,
    events: Events,
    xw: torch.Tensor,
    made: torch.Tensor | Sequence[Sequence[pylhe.LHEParticle]] | None,
    process_id: int,
    scale: torch.Tensor,
    aqed: float,
    aqcd: torch.Tensor,
) -> None:
    """LHEH5, column-wise: the events' columns and their (m, 13) particle rows; (n,)
    per-event scales and alpha_s."""
    n = len(events)
    if made is None:
        table = torch.zeros(n, 0, len(PARTICLE_COLUMNS), dtype=torch.float64, device="cpu")
    elif isinstance(made, torch.Tensor):
        table = made.cpu()
    else:
        table = torch.tensor([[[getattr(p, c) for c in PARTICLE_COLUMNS] for p in event]
                              for event in made], dtype=torch.float64, device="cpu")  # fmt: skip
    if table.ndim != 3 or len(table) != n:
        raise ShapeError(f"particles must be ({n}, P, {len(PARTICLE_COLUMNS)}), "
                         f"got {tuple(table.shape)}")  # fmt: skip
    columns: dict[str, Any] = {
        "pid": np.full(n, float(process_id)), "nparticles": np.full(n, float(table.shape[1])),
        "NOMINAL": xw.numpy(), "scale": scale.numpy(), "aqed": np.full(n, aqed),
        "aqcd": aqcd.numpy(),
    }  # fmt: skip
    if made is None:
        columns.update({f"x{j + 1}": events.x[:, j].numpy() for j in range(events.x.shape[1])})
    write_lheh5(path, init, [(columns, table.reshape(-1, len(PARTICLE_COLUMNS)).numpy())], header)


def write_lhe(
    path: str | os.PathLike,
    init: pylhe.LHEInit,
    events: Iterable[pylhe.LHEEvent],
    header: pylhe.LHEHeader | None = None,
) -> None:
    """Write pylhe events under an ``<init>`` block (atomically), in the format of the suffix.

    ``events`` may be a generator: it is consumed once, while writing, so files
    larger than memory can be rewritten event by event (e.g. merged shards). An
    exception raised by the generator leaves no file behind.

    Args:
        path: ``*.lhe``, ``*.lhe.gz``, ``*.h5`` or ``*.hdf5``.
        init: the ``<init>`` block (beams, weighting strategy, cross-section).
        events: the events, in file order.
        header: the ``<header>`` (e.g. the weight group of generic coordinates), or ``None``.
    """
    path = Path(path)
    _check_suffix(path)
    pylhe = _pylhe("Writing LHE event files")
    lhe = pylhe.LHEFile(init=init, events=events, header=header)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".lhe.gz") else path.suffix

    def write(tmp: str) -> None:
        # pylhe picks the format from the suffix, so the temporary file keeps it.
        target = tmp + suffix
        try:
            lhe.tofile(target)
            os.replace(target, tmp)
        finally:
            Path(target).unlink(missing_ok=True)

    atomic_write(path, write)


def read_events(path: str | os.PathLike) -> tuple[pylhe.LHEInit, list[pylhe.LHEEvent]]:
    """Read an event file written by :func:`write_events` (or any LHE file) with pylhe.

    Returns:
        The ``<init>`` block and the list of events.
    """
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise InputError(f"no event file at {path}")
    pylhe = _pylhe("Reading LHE event files")
    lhe = pylhe.LHEFile.fromfile(str(path), generator=False)
    return lhe.init, list(lhe.events)


def coordinates(events: Sequence[pylhe.LHEEvent]) -> torch.Tensor:
    """(n, d) coordinates of generic events read back by :func:`read_events`."""
    if not events or not events[0].weights:
        raise InputError("these events carry no hepflows coordinates")
    keys = sorted(events[0].weights, key=lambda k: int(k[1:]))
    return torch.tensor([[e.weights[k] for k in keys] for e in events], dtype=torch.float64,
                        device="cpu")  # fmt: skip
