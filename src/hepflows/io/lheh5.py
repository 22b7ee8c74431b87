"""Column-wise writing of LHEH5 event files (pylhe's HDF5 layout), for millions of events.

``pylhe.LHEFile.tofile`` builds one Python object per event and per particle,
about 60 us per Drell-Yan event. The layout of LHEH5 (arXiv:1905.05120,
2309.13154) is columnar, though: an ``events`` table (one row per event:
process id, particle count, first particle row, scales, weights) and a
``particles`` table (one row per particle), so whole blocks of events can be
written as arrays. Here pylhe writes the file's metadata (``init``,
``procInfo``, ``generators``, the XML header, the column names) and creates the
two tables empty; :class:`LHEH5Writer` then appends blocks of rows with h5py.
The files read back with ``pylhe.LHEFile.fromfile`` like those of ``tofile``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepflows.errors import InputError
from hepflows.extras import require
from hepflows.io.atomic import atomic_write
from hepflows.io.particles import PARTICLE_COLUMNS

if TYPE_CHECKING:
    import h5py
    import pylhe

#: Event columns a block may leave out: the first particle row is counted here,
#: the trials and the separate scales are unknown (NaN, as pylhe writes them).
EVENT_DEFAULTS = {"start": None, "trials": np.nan, "fscale": np.nan, "rscale": np.nan}
#: Rows per HDF5 chunk (pylhe's defaults are 1024 and 8192, slow for bulk writes).
CHUNK_ROWS = {"events": 16_384, "particles": 16_384}

Columns = Mapping[str, Any]


def _columns(dataset: h5py.Dataset) -> list[str]:
    return [c.decode() if isinstance(c, bytes) else str(c) for c in dataset.attrs["properties"]]


class LHEH5Writer:
    """Appends blocks of events, as columns, to the empty tables of a new LHEH5 file.

    Args:
        file: an open, writable ``h5py.File`` whose metadata :func:`write_lheh5`
            has written.
    """

    def __init__(self, file: h5py.File) -> None:
        self.events, self.particles = file["events"], file["particles"]
        self.event_columns = _columns(self.events)
        self.particle_columns = _columns(self.particles)
        self.n_events = 0
        self.n_particles = 0

    def append(self, events: Columns, particles: Columns | np.ndarray) -> None:
        """Append n events and their m particles.

        Args:
            events: event column name -> (n,) values: ``pid``, ``nparticles``,
                ``NOMINAL`` (XWGTUP), ``scale``, ``aqed``, ``aqcd`` and every named
                weight of the header; ``start``, ``trials``, ``fscale`` and
                ``rscale`` may be left out (:data:`EVENT_DEFAULTS`).
            particles: (m, 13) rows in :data:`PARTICLE_COLUMNS` order, or column
                name -> (m,) values; the particles of each event in turn.

        Raises:
            InputError: a missing or unknown column, columns of different lengths,
                or particle counts that do not add up to m.
        """
        unknown = sorted(set(events) - set(self.event_columns))
        if unknown:
            raise InputError(f"unknown LHEH5 event columns {unknown}: the file has "
                             f"{self.event_columns}")  # fmt: skip
        nparticles = np.asarray(events["nparticles"], dtype=np.float64)
        n = len(nparticles)
        rows = np.empty((n, len(self.event_columns)))
        for k, name in enumerate(self.event_columns):
            if name == "start" and name not in events:
                counts = np.concatenate(([0.0], np.cumsum(nparticles)[:-1]))
                rows[:, k] = self.n_particles + counts
            elif name in events:
                rows[:, k] = events[name]
            elif name in EVENT_DEFAULTS:
                rows[:, k] = EVENT_DEFAULTS[name]
            else:
                raise InputError(f"the LHEH5 event column {name!r} is missing from the block")
        table = self._particle_rows(particles)
        if int(nparticles.sum()) != len(table):
            raise InputError(f"the events count {int(nparticles.sum())} particles, the block "
                             f"holds {len(table)}")  # fmt: skip
        _extend(self.events, rows)
        _extend(self.particles, table)
        self.n_events += n
        self.n_particles += len(table)

    def _particle_rows(self, particles: Columns | np.ndarray) -> np.ndarray:
        if isinstance(particles, Mapping):
            missing = sorted(set(self.particle_columns) - set(particles))
            if missing:
                raise InputError(f"the LHEH5 particle columns {missing} are missing")
            return np.stack([np.asarray(particles[c], dtype=np.float64)
                             for c in self.particle_columns], axis=1)  # fmt: skip
        table = np.asarray(particles, dtype=np.float64).reshape(-1, len(PARTICLE_COLUMNS))
        if tuple(self.particle_columns) != PARTICLE_COLUMNS:  # another pylhe layout
            return self._particle_rows(dict(zip(PARTICLE_COLUMNS, table.T, strict=True)))
        return table


def _extend(dataset: h5py.Dataset, rows: np.ndarray) -> None:
    if len(rows) == 0:
        return
    start = dataset.shape[0]
    dataset.resize((start + len(rows), dataset.shape[1]))
    dataset[start:] = rows


def write_lheh5(
    path: str | os.PathLike,
    init: pylhe.LHEInit,
    blocks: Iterable[tuple[Columns, Columns | np.ndarray]],
    header: pylhe.LHEHeader | None = None,
) -> int:
    """Write an LHEH5 file (atomically) from blocks of event and particle columns.

    ``blocks`` may be a generator, consumed once while writing (e.g. the shards
    of a run being merged); an exception it raises leaves no file behind.

    Args:
        path: the ``.h5``/``.hdf5`` file.
        init: the ``<init>`` block (beams, weighting strategy, cross-section).
        blocks: ``(events, particles)`` pairs as :meth:`LHEH5Writer.append` takes them.
        header: the ``<header>`` (its named weights become event columns), or ``None``.

    Returns:
        The number of events written.
    """
    pylhe = require("pylhe", "physics", "Writing LHEH5 event files")
    h5py = require("h5py", "physics", "Writing LHEH5 event files")
    fmt = pylhe.LHEHDF5Format(event_chunk_rows=CHUNK_ROWS["events"],
                              particle_chunk_rows=CHUNK_ROWS["particles"])  # fmt: skip
    written = [0]

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            pylhe.lheh5.write(pylhe.LHEFile(init=init, events=[], header=header), f,
                              lheformat=fmt)  # fmt: skip
            writer = LHEH5Writer(f)
            for events, particles in blocks:
                writer.append(events, particles)
            written[0] = writer.n_events

    atomic_write(Path(path), write)
    return written[0]


def read_columns(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ``events`` table of an LHEH5 file as columns, and its (m, 13) particle rows.

    Returns:
        ``(events, particles)``: column name -> (n,) values, and the particles'
        rows in :data:`PARTICLE_COLUMNS` order.
    """
    h5py = require("h5py", "physics", "Reading LHEH5 event files")
    with h5py.File(path, "r") as f:
        events = f["events"][:]
        columns = _columns(f["events"])
        rows = f["particles"][:]
        names = _columns(f["particles"])
    order = [names.index(c) for c in PARTICLE_COLUMNS]
    return {c: events[:, k] for k, c in enumerate(columns)}, rows[:, order]
