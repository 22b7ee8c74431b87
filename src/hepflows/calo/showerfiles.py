"""Read and write calorimeter showers in the two HDF5 layouts people already have.

* **CaloChallenge 2022**: datasets ``incident_energies`` (N, 1) and ``showers``
  (N, V), both in MeV. Voxels follow the geometry's order (for polar layers
  angle-major, radius-minor, as the CaloChallenge ``XMLHandler``). The file does
  not say which geometry it was made with: it comes from a binning XML, a
  built-in name, or is matched to a built-in by V.
* **CaloGAN** (CaloFlow I): ``energy`` (N, 1) in **GeV**, one dataset
  ``layer_i`` of shape (N, n_y, n_x) in MeV per voxelised layer ``i`` (the
  layer's position in :attr:`Geometry.layers`; all such layers must be
  cartesian), flattened row-major into the voxel vector, and ``overflow``
  (N, L) in MeV.

:class:`~hepflows.calo.showers.Showers` holds every energy in MeV, whatever
the file's units. Files written here carry two extra attributes that other
readers ignore: ``hepflows_geometry`` (the geometry's name, used to pick a
built-in geometry when reading) and ``units``.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from hepflows.calo.geometry import BUILTIN, Geometry
from hepflows.calo.showers import Showers
from hepflows.errors import ConfigError, HepflowsError, InputError, ShapeError
from hepflows.extras import require
from hepflows.io.atomic import atomic_write

if TYPE_CHECKING:
    import h5py

#: The shower-file layouts :func:`read_showers` and :func:`write_showers` know.
LAYOUTS = ("calochallenge", "calogan")

_GEOMETRY_FIX = "pass the geometry the file was made with (geometry=..., CLI --geometry)"
_GZIP = {"compression": "gzip", "compression_opts": 4}


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown shower-file layout {layout!r}: choose from {LAYOUTS}")
    return layout


def _h5py() -> ModuleType:
    return require("h5py", "calo", "Reading and writing shower files")


def _open(path: Path) -> h5py.File:
    h5py = _h5py()
    if not path.is_file():
        raise InputError(f"no shower file at {path}: check the path")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(
            f"{path} is not a readable HDF5 file ({err}); it may be truncated or of another "
            "format: copy or write it again"
        ) from None


def _layer_index(key: str) -> int | None:
    """``i`` for a key ``layer_i``, else None."""
    head, _, tail = key.partition("_")
    return int(tail) if head == "layer" and tail.isdigit() else None


def _layout_of(f: h5py.File, path: Path) -> str:
    keys = set(f.keys())
    cc = keys & {"incident_energies", "showers"}
    gan = (keys & {"energy", "overflow"}) | {k for k in keys if _layer_index(k) is not None}
    if cc and not gan:
        return "calochallenge"
    if gan and not cc:
        return "calogan"
    if cc and gan:
        raise InputError(
            f"{path} holds datasets of both layouts ({sorted(cc)} of CaloChallenge, "
            f"{sorted(gan)} of CaloGAN): pass layout= one of {LAYOUTS}"
        )
    raise InputError(
        f"cannot tell the layout of {path}: it holds {sorted(keys)}, expected "
        "'incident_energies' and 'showers' (CaloChallenge) or 'energy', 'layer_0', ... and "
        "'overflow' (CaloGAN); check that this is a shower file"
    )


def detect_layout(path: str | os.PathLike) -> str:
    """The layout of a shower file, from its dataset names.

    Returns:
        ``"calochallenge"`` or ``"calogan"``.

    Raises:
        InputError: missing or unreadable file, or datasets of neither or both layouts.
    """
    path = Path(path)
    with _open(path) as f:
        return _layout_of(f, path)


def _dataset(f: h5py.File, key: str, layout: str, path: Path) -> h5py.Dataset:
    obj = f.get(key)
    if not isinstance(obj, _h5py().Dataset):
        what = "no dataset" if obj is None else "a group, not a dataset,"
        raise InputError(
            f"{path} has {what} {key!r}, which the {layout} layout expects: check the file "
            f"or pass the right layout= (one of {LAYOUTS})"
        )
    return obj


def _read(ds: h5py.Dataset, path: Path) -> np.ndarray:
    try:
        return np.asarray(ds[()], np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(
            f"{path}: dataset {ds.name.lstrip('/')!r} is not numeric ({err}): it must hold energies"
        ) from None


def _incident(a: np.ndarray, key: str, path: Path) -> np.ndarray:
    """(N,) from an (N, 1) or (N,) dataset."""
    if a.ndim == 2 and a.shape[1] == 1:
        return a[:, 0]
    if a.ndim == 1:
        return a
    raise ShapeError(
        f"{path}: dataset {key!r} must have shape (N, 1) or (N,) (one incident energy per "
        f"shower), got {a.shape}: reshape it to (N, 1)"
    )


def _check_rows(arrays: dict[str, np.ndarray], path: Path) -> None:
    rows = {key: len(a) for key, a in arrays.items()}
    if len(set(rows.values())) > 1:
        raise ShapeError(
            f"{path}: datasets hold different numbers of showers {rows}: every dataset needs "
            "one row per shower; the file may have been cut or written incompletely"
        )


def _check_values(arrays: dict[str, np.ndarray], incident: str, path: Path) -> None:
    for key, a in arrays.items():
        bad = ~np.isfinite(a).reshape(len(a), -1).all(1)
        if bad.any():
            raise InputError(
                f"{path}: dataset {key!r} holds NaN or inf in {int(bad.sum())} showers: "
                "drop or fix those showers and write the file again"
            )
        neg = (a < 0).reshape(len(a), -1).any(1)
        if neg.any():
            raise InputError(
                f"{path}: dataset {key!r} holds negative energies in {int(neg.sum())} showers: "
                "energies must be >= 0; clip noise at zero (np.clip(x, 0, None)) and write "
                "the file again"
            )
    zero = arrays[incident] <= 0
    if zero.any():
        raise InputError(
            f"{path}: dataset {incident!r} holds {int(zero.sum())} incident energies <= 0: "
            "every shower needs a positive incident energy; drop those showers"
        )


def _stored_name(f: h5py.File) -> str | None:
    name = f.attrs.get("hepflows_geometry")
    if isinstance(name, bytes):
        name = name.decode()
    return name if isinstance(name, str) else None


def _candidates(f: h5py.File) -> list[Geometry]:
    """Built-in geometries, the one named in the file's attributes first."""
    names = sorted(BUILTIN)
    stored = _stored_name(f)
    if stored in BUILTIN:
        names.remove(stored)
        names.insert(0, stored)
    return [Geometry.builtin(n) for n in names]


def _read_calochallenge(f: h5py.File, path: Path, geometry: Geometry | None) -> Showers:
    layout = "calochallenge"
    inc = _incident(
        _read(_dataset(f, "incident_energies", layout, path), path), "incident_energies", path
    )
    showers = _read(_dataset(f, "showers", layout, path), path)
    if showers.ndim != 2:
        raise ShapeError(
            f"{path}: dataset 'showers' must have shape (N, V) (one row of voxel energies per "
            f"shower), got {showers.shape}"
        )
    _check_rows({"incident_energies": inc, "showers": showers}, path)
    v = showers.shape[1]
    if geometry is None:
        match = [g for g in _candidates(f) if g.n_voxels == v]
        if not match:
            known = {g.name: g.n_voxels for g in _candidates(f)}
            raise ConfigError(
                f"cannot tell the geometry of {path}: its showers have {v} voxels and no "
                f"built-in geometry has that many {known}: pass its binning XML "
                "(geometry=..., CLI --geometry)"
            )
        geometry = match[0]
    elif v != geometry.n_voxels:
        raise ShapeError(
            f"{path}: dataset 'showers' has {v} voxels per shower but geometry "
            f"{geometry.name!r} has {geometry.n_voxels}: {_GEOMETRY_FIX}"
        )
    # Incident energies are taken as MeV, as the layout says: no guessing from their
    # magnitude, even if they all look like GeV.
    _check_values({"incident_energies": inc, "showers": showers}, "incident_energies", path)
    return Showers(inc, showers, geometry)


def _require_cartesian(geometry: Geometry) -> None:
    layers = [geometry.layers[i] for i in geometry.voxel_layers]
    bad = [layer.id for layer in layers if layer.kind != "cartesian"]
    if bad:
        raise ConfigError(
            f"geometry {geometry.name!r} has non-cartesian layers {bad}: the CaloGAN layout "
            "stores (n_y, n_x) cell grids only; use layout='calochallenge' for this geometry"
        )


def _gan_shapes(geometry: Geometry) -> dict[int, tuple[int, int]]:
    return {i: geometry.layers[i].shape for i in geometry.voxel_layers}


def _read_calogan(f: h5py.File, path: Path, geometry: Geometry | None) -> Showers:
    layout = "calogan"
    found = {}  # layer position -> (n_y, n_x) of the file's layer_i datasets
    for key, obj in f.items():
        if _layer_index(key) is not None and isinstance(obj, _h5py().Dataset):
            found[_layer_index(key)] = obj.shape[1:]
    if geometry is None:
        match = [
            g
            for g in _candidates(f)
            if all(layer.kind != "polar" for layer in g.layers) and _gan_shapes(g) == found
        ]
        if not match:
            raise ConfigError(
                f"cannot tell the geometry of {path}: its layers have shapes "
                f"{ {f'layer_{i}': s for i, s in sorted(found.items())} } (n_y, n_x), which "
                "match no built-in geometry: pass its binning XML with x_edges/y_edges "
                "(geometry=..., CLI --geometry)"
            )
        geometry = match[0]
    _require_cartesian(geometry)
    expected = _gan_shapes(geometry)
    extra = sorted(set(found) - set(expected))
    if extra:
        raise ShapeError(
            f"{path} has datasets {[f'layer_{i}' for i in extra]} that geometry "
            f"{geometry.name!r} has no voxelised layer for: {_GEOMETRY_FIX}"
        )
    energy = _read(_dataset(f, "energy", layout, path), path)
    arrays = {"energy": _incident(energy, "energy", path)}
    for i, shape in expected.items():
        key = f"layer_{i}"
        a = _read(_dataset(f, key, layout, path), path)
        if a.ndim != 3 or a.shape[1:] != shape:
            raise ShapeError(
                f"{path}: dataset {key!r} must have shape (N, n_y, n_x) = (N, {shape[0]}, "
                f"{shape[1]}) for layer {geometry.layers[i].id} of geometry "
                f"{geometry.name!r}, got {a.shape}: {_GEOMETRY_FIX}"
            )
        arrays[key] = a
    overflow = None
    if "overflow" in f:
        overflow = _read(_dataset(f, "overflow", layout, path), path)
        n_layers = len(geometry.layers)
        if overflow.ndim != 2 or overflow.shape[1] != n_layers:
            raise ShapeError(
                f"{path}: dataset 'overflow' must have shape (N, {n_layers}), one entry per "
                f"layer of geometry {geometry.name!r}, got {overflow.shape}: {_GEOMETRY_FIX}"
            )
        arrays["overflow"] = overflow
    _check_rows(arrays, path)
    _check_values(arrays, "energy", path)
    n = len(arrays["energy"])
    voxels = np.concatenate(
        [np.zeros((n, 0))] + [arrays[f"layer_{i}"].reshape(n, -1) for i in expected], 1
    )
    return Showers(1000.0 * arrays["energy"], voxels, geometry, overflow)  # GeV -> MeV


def read_showers(
    path: str | os.PathLike,
    geometry: str | os.PathLike | Geometry | None = None,
    layout: str | None = None,
) -> Showers:
    """Read a shower file (read fully into memory, in float64).

    Args:
        path: HDF5 file in the CaloChallenge or CaloGAN layout.
        geometry: a built-in geometry name, the path of a binning XML or a
            :class:`Geometry`; ``None`` picks the built-in geometry that fits
            the file (the one named in its ``hepflows_geometry`` attribute
            first; CaloChallenge: same number of voxels V, CaloGAN: same
            layer shapes).
        layout: ``"calochallenge"``, ``"calogan"`` or ``None`` to detect it
            (:func:`detect_layout`).

    Returns:
        :class:`Showers` with energy (N,) and voxels (N, V) in MeV; CaloGAN
        files also give overflow (N, L) (``None`` when the file has none).

    Raises:
        InputError: missing or unreadable file, missing dataset, NaN/inf or
            negative energies.
        ShapeError: datasets whose shapes do not fit each other or the geometry.
        ConfigError: unknown layout, no geometry given and none fits, or a
            non-cartesian geometry for a CaloGAN file.
    """
    path = Path(path)
    if layout is not None:
        _check_layout(layout)
    geom = None if geometry is None else Geometry.resolve(geometry)
    with _open(path) as f:
        try:
            layout = layout or _layout_of(f, path)
            if layout == "calochallenge":
                return _read_calochallenge(f, path, geom)
            return _read_calogan(f, path, geom)
        except OSError as err:  # corrupt chunks show up only when a dataset is read
            raise InputError(
                f"{path}: reading failed ({err}); the file may be truncated or corrupt: "
                "copy or write it again"
            ) from None
        except HepflowsError as err:
            if str(path) in str(err):
                raise
            raise type(err)(f"{path}: {err}") from None


def write_showers(path: str | os.PathLike, showers: Showers, layout: str = "calochallenge") -> None:
    """Write showers as HDF5 in a standard layout, atomically.

    Arrays are stored as float32 (about 7 significant digits, plenty for
    detector energies); the large ones gzip-compressed (level 4).

    Args:
        path: the file to write; an existing file is replaced only once the new
            one is complete.
        showers: energy (N,) and voxels (N, V) in MeV.
        layout: ``"calochallenge"``: ``incident_energies`` (N, 1) and
            ``showers`` (N, V) in MeV (any geometry; overflow is not stored);
            ``"calogan"``: ``energy`` (N, 1) in GeV, ``layer_i`` (N, n_y, n_x)
            and ``overflow`` (N, L) in MeV (geometries whose voxelised layers
            are all cartesian; overflow is written as zeros if ``None``).

    Raises:
        ConfigError: unknown layout, or a non-cartesian geometry for CaloGAN.
        InputError: no showers.
    """
    _check_layout(layout)
    h5py = _h5py()
    geometry = showers.geometry
    if layout == "calogan":
        _require_cartesian(geometry)
    n = len(showers)
    if n == 0:
        raise InputError("no showers to write: the file would be empty")

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["hepflows_geometry"] = geometry.name
            if layout == "calochallenge":
                f.attrs["units"] = "MeV"
                f.create_dataset("incident_energies", data=showers.energy.reshape(n, 1), dtype="f4")
                f.create_dataset("showers", data=showers.voxels, dtype="f4", **_GZIP)
                return
            f.attrs["units"] = "energy: GeV, layers: MeV"
            f.create_dataset("energy", data=showers.energy.reshape(n, 1) / 1000.0, dtype="f4")
            for i in geometry.voxel_layers:
                block = showers.voxels[:, geometry.slices[i]]
                shape = (n, *geometry.layers[i].shape)
                f.create_dataset(f"layer_{i}", data=block.reshape(shape), dtype="f4", **_GZIP)
            overflow = showers.overflow
            if overflow is None:
                overflow = np.zeros((n, len(geometry.layers)))
            f.create_dataset("overflow", data=overflow, dtype="f4")

    atomic_write(path, write)
