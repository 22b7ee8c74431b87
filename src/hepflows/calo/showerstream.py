"""Large shower files in chunks: read a CaloChallenge file piece by piece, write one resumably.

A dataset-3 file of 10^5 showers holds 40 500 voxels each, 16 GB in float32:
it is never loaded whole. :func:`iter_showers` yields
:class:`~hepflows.calo.showers.Showers` of at most ``chunk_size`` rows (h5py
slicing reads only those rows), and :class:`ShowerWriter` appends chunks to a
``<file>.partial`` that it renames onto the file when :meth:`ShowerWriter.finish`
is called. The partial file records how many showers it holds after each
chunk (``n_done``, written after the data and flushed), so a run that is cut
off resumes after its last complete chunk and loses at most one chunk.

Example:
    >>> with ShowerWriter("ds2.h5", "ds2") as out:  # doctest: +SKIP
    ...     for chunk in chunks:
    ...         out.append(chunk)
    ...     out.finish()
    >>> sum(len(s) for s in iter_showers("ds2.h5", chunk_size=5000))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hepflows.calo.geometry import Geometry
from hepflows.calo.showerfiles import (
    _GZIP,
    _candidates,
    _check_values,
    _dataset,
    _h5py,
    _incident,
    _layout_of,
    _open,
)
from hepflows.calo.showers import Showers
from hepflows.errors import ConfigError, InputError, ShapeError

if TYPE_CHECKING:
    import h5py

#: Bytes per HDF5 chunk of the ``showers`` dataset (rows x V x 4 bytes).
CHUNK_BYTES = 1 << 20


def chunk_streams(
    n: int, chunk_size: int, seed: int, start: int = 0
) -> Iterator[tuple[int, int, np.random.SeedSequence]]:
    """The chunks of ``n`` rows from row ``start`` (a chunk boundary) on, each with its own
    random stream: ``(lo, hi, SeedSequence(seed, spawn_key=(k,)))`` for chunk k = lo //
    chunk_size. What a chunked writer draws depends only on (seed, chunk_size), not on
    where a run was cut and resumed.

    Raises:
        InputError: ``start`` not on a chunk boundary or outside [0, n].
    """
    if start % chunk_size or not 0 <= start <= n:
        raise InputError(f"start must be a multiple of chunk_size ({chunk_size}) in "
                         f"[0, {n}], got {start}")  # fmt: skip
    for lo in range(start, n, chunk_size):
        stream = np.random.SeedSequence(seed, spawn_key=(lo // chunk_size,))
        yield lo, min(n, lo + chunk_size), stream


def partial_path(path: str | os.PathLike) -> Path:
    """Where :class:`ShowerWriter` keeps an unfinished ``path``: ``<path>.partial``."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def _file_geometry(f: h5py.File, path: Path, geometry: Geometry | None, v: int) -> Geometry:
    if geometry is None:
        match = [g for g in _candidates(f) if g.n_voxels == v]
        if not match:
            raise ConfigError(
                f"cannot tell the geometry of {path}: its showers have {v} voxels and no "
                "built-in geometry has that many: pass its binning XML (geometry=..., CLI "
                "--geometry)"
            )
        return match[0]
    if v != geometry.n_voxels:
        raise ShapeError(
            f"{path}: dataset 'showers' has {v} voxels per shower but geometry "
            f"{geometry.name!r} has {geometry.n_voxels}: pass the geometry the file was made "
            "with (geometry=..., CLI --geometry)"
        )
    return geometry


def count_showers(path: str | os.PathLike) -> int:
    """Number of showers in a CaloChallenge file (reads no voxels).

    Raises:
        InputError: missing or unreadable file, not the CaloChallenge layout.
    """
    path = Path(path)
    with _open(path) as f:
        _require_calochallenge(f, path)
        return int(_dataset(f, "showers", "calochallenge", path).shape[0])


def _require_calochallenge(f: h5py.File, path: Path) -> None:
    layout = _layout_of(f, path)
    if layout != "calochallenge":
        raise InputError(
            f"{path} is a {layout} file: chunked reading needs the CaloChallenge layout "
            "(CaloGAN files are small: read them with read_showers)"
        )


def iter_showers(
    path: str | os.PathLike,
    chunk_size: int = 10_000,
    geometry: str | os.PathLike | Geometry | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[Showers]:
    """Showers of a CaloChallenge file, ``chunk_size`` at a time (never the whole file).

    Args:
        path: HDF5 file with ``incident_energies`` (N, 1) and ``showers`` (N, V) in MeV.
        chunk_size: showers per chunk (memory: chunk_size x V x 8 bytes).
        geometry: the file's geometry (name, XML or :class:`Geometry`); ``None``:
            the built-in one with V voxels (the one the file names first).
        start: first shower to read.
        stop: one past the last shower (``None``: the end).

    Yields:
        :class:`Showers` with energy (n,) and voxels (n, V), n <= chunk_size, in order.

    Raises:
        InputError: missing or unreadable file, NaN/inf or negative energies in a chunk,
            a bad range.
        ShapeError: datasets of different lengths, voxels that do not fit the geometry.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    path = Path(path)
    geom = None if geometry is None else Geometry.resolve(geometry)
    with _open(path) as f:
        _require_calochallenge(f, path)
        inc = _dataset(f, "incident_energies", "calochallenge", path)
        vox = _dataset(f, "showers", "calochallenge", path)
        if vox.ndim != 2:
            raise ShapeError(f"{path}: dataset 'showers' must have shape (N, V), got {vox.shape}")
        if inc.shape[0] != vox.shape[0]:
            raise ShapeError(
                f"{path}: 'incident_energies' has {inc.shape[0]} rows and 'showers' "
                f"{vox.shape[0]}: the file may have been written incompletely"
            )
        geom = _file_geometry(f, path, geom, vox.shape[1])
        n = vox.shape[0]
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise InputError(f"need 0 <= start <= stop <= {n} (showers in {path}), "
                             f"got start={start}, stop={stop}")  # fmt: skip
        for lo in range(start, stop, chunk_size):
            hi = min(stop, lo + chunk_size)
            e = _incident(np.asarray(inc[lo:hi], np.float64), "incident_energies", path)
            v = np.asarray(vox[lo:hi], np.float64)
            try:
                _check_values({"incident_energies": e, "showers": v}, "incident_energies", path)
            except InputError as err:
                raise InputError(f"{err} (rows {lo}-{hi})") from None
            yield Showers(e, v, geom)


class ShowerWriter:
    """Write a CaloChallenge shower file chunk by chunk; resumable; atomic at the end.

    Rows go to ``<path>.partial`` (float32; voxels gzip-compressed in HDF5
    chunks of about 1 MB). :meth:`finish` renames it onto ``path``; until then
    ``path`` is untouched. Opening a writer on a path whose ``.partial`` exists
    (same geometry) resumes it: :attr:`n_done` showers are kept.

    Args:
        path: the file to write.
        geometry: the showers' geometry (name, XML or :class:`Geometry`).
        resume: continue an existing ``.partial`` (else it is overwritten).
        attrs: extra file attributes (e.g. the simulator's settings); a resumed
            file must have been started with the same ones.

    Raises:
        ConfigError: a partial file of another geometry or other attributes.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        geometry: str | os.PathLike | Geometry,
        resume: bool = True,
        attrs: dict[str, str | int | float] | None = None,
    ) -> None:
        h5py = _h5py()
        self.path = Path(path)
        self.geometry = Geometry.resolve(geometry)
        self.partial = partial_path(self.path)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self.attrs = dict(attrs or {})
        self._file: h5py.File | None = None
        if resume and self.partial.exists():
            try:
                self._file = h5py.File(self.partial, "a")
            except OSError as err:  # cut off while the file was being created
                warnings.warn(f"{self.partial} is unreadable ({err}): starting again",
                              stacklevel=2)  # fmt: skip
            else:
                self._check_resumable()
        if self._file is None:
            self._create(h5py)

    def _create(self, h5py: object) -> None:
        v = self.geometry.n_voxels
        rows = max(1, CHUNK_BYTES // (4 * v))
        f = h5py.File(self.partial, "w")  # type: ignore[attr-defined]
        f.attrs["hepflows_geometry"] = self.geometry.name
        f.attrs["units"] = "MeV"
        for key, value in self.attrs.items():
            f.attrs[key] = value
        f.create_dataset("incident_energies", shape=(0, 1), maxshape=(None, 1), dtype="f4",
                         chunks=(max(rows, 1024), 1))  # fmt: skip
        f.create_dataset("showers", shape=(0, v), maxshape=(None, v), dtype="f4",
                         chunks=(rows, v), **_GZIP)  # fmt: skip
        f.attrs["n_done"] = 0
        f.flush()
        self._file = f

    def _check_resumable(self) -> None:
        f = self._file
        assert f is not None
        stored = {k: f.attrs.get(k) for k in self.attrs}
        stored = {k: v.item() if isinstance(v, np.generic) else v for k, v in stored.items()}
        v = f["showers"].shape[1] if "showers" in f else None
        if v != self.geometry.n_voxels or stored != self.attrs:
            f.close()
            raise ConfigError(
                f"{self.partial} was started with other settings (voxels {v}, attributes "
                f"{stored}) than this run (voxels {self.geometry.n_voxels}, {self.attrs}): "
                "delete it to start again, or run with the settings it was started with"
            )
        n = int(f.attrs["n_done"])
        for key in ("incident_energies", "showers"):  # drop rows of an unfinished chunk
            f[key].resize(n, axis=0)

    @property
    def n_done(self) -> int:
        """Showers written (and committed) so far."""
        if self._file is None:
            raise InputError(f"{self.path}: the writer is closed")
        return int(self._file.attrs["n_done"])

    def append(self, showers: Showers) -> None:
        """Append showers (energy (n,), voxels (n, V) in MeV) and commit them.

        Raises:
            ShapeError: showers of another geometry.
            InputError: the writer is closed.
        """
        if self._file is None:
            raise InputError(f"{self.path}: the writer is closed")
        if showers.geometry.n_voxels != self.geometry.n_voxels:
            raise ShapeError(
                f"showers of geometry {showers.geometry.name!r} ({showers.geometry.n_voxels} "
                f"voxels) cannot go into a {self.geometry.name!r} file "
                f"({self.geometry.n_voxels} voxels)"
            )
        f, n, k = self._file, self.n_done, len(showers)
        for key, rows in (("incident_energies", showers.energy.reshape(k, 1)),
                          ("showers", showers.voxels)):  # fmt: skip
            f[key].resize(n + k, axis=0)
            f[key][n:] = rows
        f.flush()
        f.attrs["n_done"] = n + k  # committed only once the rows are on disk
        f.flush()

    def finish(self) -> Path:
        """Close the file and rename it onto ``path`` (atomic); returns ``path``.

        Raises:
            InputError: nothing was written.
        """
        n = self.n_done
        if n == 0:
            raise InputError(f"no showers were written to {self.path}: the file would be empty")
        self.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        """Close the partial file (kept for a later resume unless :meth:`finish` ran)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ShowerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
