"""Calorimeter geometry: layers of voxels, read from and written to binning XML.

Two kinds of voxelised layers cover the two data formats people have:

* **polar** (CaloChallenge): radial bin edges in mm and ``n_alpha`` equal
  angular bins on [-pi, pi]; voxels ordered angle-major, radius-minor, as in
  the CaloChallenge ``XMLHandler`` (``layer.reshape(n_alpha, n_r)``);
* **cartesian** (CaloGAN): cell edges in x and y (mm); voxels ordered
  row-major as the CaloGAN arrays ``layer_i`` of shape (n_y, n_x).

A layer without voxels (``r_edges="0"`` in CaloChallenge files) still has a
depth: energy deposited there is lost, like dead material.

The binning XML is the CaloChallenge one (``<Bins><Bin name=... pid=...>
<Layer id=... r_edges=... n_bin_alpha=.../>``), extended with optional
attributes that CaloChallenge readers ignore: ``x_edges``/``y_edges`` for a
cartesian layer, ``depth_x0`` (thickness in radiation lengths) and, on
``<Bin>``, ``material`` (a :data:`hepflows.calo.simulator.MATERIALS` name) and
``threshold_mev`` (the readout threshold: a voxel below it reads zero), all
used by the toy simulator; the flows zero generated voxels below the threshold too.

Built-in geometries: ``calogan`` (504 voxels), ``calochallenge-ds1-photon``
(368), ``calochallenge-ds2`` (45 layers x 16 angles x 9 radii = 6 480 voxels,
electrons) and ``calochallenge-ds3`` (45 x 50 x 18 = 40 500); ``ds1``, ``ds2``
and ``ds3`` are short names.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from hepflows.errors import ConfigError, InputError
from hepflows.io.atomic import atomic_write

#: Built-in geometries, by name (XML files in ``hepflows/calo/geometries``).
BUILTIN = {
    "calogan": "calogan.xml",
    "calochallenge-ds1-photon": "calochallenge_ds1_photon.xml",
    "calochallenge-ds2": "calochallenge_ds2_electron.xml",
    "calochallenge-ds3": "calochallenge_ds3_electron.xml",
}
#: Short names of built-in geometries.
ALIASES = {
    "ds1": "calochallenge-ds1-photon",
    "ds2": "calochallenge-ds2",
    "ds3": "calochallenge-ds3",
}


def _edges(text: str | None, what: str, layer: str) -> tuple[float, ...]:
    if text is None or not text.strip():
        return ()
    try:
        values = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise InputError(
            f"layer {layer}: {what} must be comma-separated numbers, got {text!r}"
        ) from None
    if len(values) > 1 and not np.all(np.diff(values) > 0):
        raise InputError(f"layer {layer}: {what} must increase strictly, got {text!r}")
    return values


def _number(text: str, what: str, path: object) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{path}: {what} must be a number, got {text!r}") from None


@dataclass(frozen=True)
class Layer:
    """One calorimeter layer.

    Attributes:
        id: layer number as in the file.
        depth_x0: thickness in radiation lengths, or ``None`` if the file
            does not say (reading and writing showers do not need it; the toy
            simulator does).
        r_edges: radial edges in mm (polar layer), else ``()``.
        n_alpha: number of angular bins (polar layer).
        x_edges: cell edges in x, mm (cartesian layer), else ``()``.
        y_edges: cell edges in y, mm (cartesian layer), else ``()``.
    """

    id: int
    depth_x0: float | None = None
    r_edges: tuple[float, ...] = ()
    n_alpha: int = 1
    x_edges: tuple[float, ...] = ()
    y_edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.r_edges and self.x_edges:
            raise InputError(f"layer {self.id} has both r_edges and x_edges: give one")
        if bool(self.x_edges) != bool(self.y_edges):
            raise InputError(f"layer {self.id}: a cartesian layer needs x_edges and y_edges")
        if self.n_alpha < 1:
            raise InputError(f"layer {self.id}: n_bin_alpha must be >= 1, got {self.n_alpha}")
        if self.r_edges and self.r_edges[0] < 0:
            raise InputError(f"layer {self.id}: r_edges must start at >= 0")
        if self.depth_x0 is not None and not self.depth_x0 >= 0:
            raise InputError(f"layer {self.id}: depth_x0 must be >= 0, got {self.depth_x0}")

    @property
    def kind(self) -> str:
        """``"polar"``, ``"cartesian"`` or ``"empty"`` (no voxels)."""
        if len(self.r_edges) > 1:
            return "polar"
        if len(self.x_edges) > 1 and len(self.y_edges) > 1:
            return "cartesian"
        return "empty"

    @property
    def shape(self) -> tuple[int, int]:
        """(n_alpha, n_r) for polar, (n_y, n_x) for cartesian, (0, 0) for empty layers."""
        if self.kind == "polar":
            return (self.n_alpha, len(self.r_edges) - 1)
        if self.kind == "cartesian":
            return (len(self.y_edges) - 1, len(self.x_edges) - 1)
        return (0, 0)

    @property
    def n_voxels(self) -> int:
        """Number of voxels of the layer."""
        a, b = self.shape
        return a * b

    def centres(self) -> np.ndarray:
        """Voxel centres in the layer plane.

        Returns:
            (n_voxels, 2) x and y in mm (polar: the CaloChallenge convention,
            r and alpha at their bin midpoints).
        """
        if self.kind == "polar":
            r = np.asarray(self.r_edges)
            a = np.linspace(-np.pi, np.pi, self.n_alpha + 1)
            rc, ac = 0.5 * (r[1:] + r[:-1]), 0.5 * (a[1:] + a[:-1])
            aa, rr = np.meshgrid(ac, rc, indexing="ij")
            return np.stack([rr * np.cos(aa), rr * np.sin(aa)], -1).reshape(-1, 2)
        if self.kind == "cartesian":
            x, y = np.asarray(self.x_edges), np.asarray(self.y_edges)
            xc, yc = 0.5 * (x[1:] + x[:-1]), 0.5 * (y[1:] + y[:-1])
            yy, xx = np.meshgrid(yc, xc, indexing="ij")
            return np.stack([xx, yy], -1).reshape(-1, 2)
        return np.zeros((0, 2))

    def locate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The voxel (index within the layer) that holds each point.

        Args:
            x: (n,) positions in mm.
            y: (n,) positions in mm.

        Returns:
            (n,) int64 voxel index, -1 for points outside the layer's voxels.
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        if self.kind == "empty":
            return np.full(x.shape, -1, np.int64)
        if self.kind == "polar":
            r = np.hypot(x, y)
            alpha = np.arctan2(y, x)
            edges = np.asarray(self.r_edges)
            ir = np.searchsorted(edges, r, side="right") - 1
            ia = np.clip(((alpha + np.pi) / (2 * np.pi) * self.n_alpha).astype(np.int64),
                         0, self.n_alpha - 1)  # fmt: skip
            inside = (ir >= 0) & (ir < len(edges) - 1)
            return np.where(inside, ia * (len(edges) - 1) + ir, -1).astype(np.int64)
        xe, ye = np.asarray(self.x_edges), np.asarray(self.y_edges)
        ix = np.searchsorted(xe, x, side="right") - 1
        iy = np.searchsorted(ye, y, side="right") - 1
        inside = (ix >= 0) & (ix < len(xe) - 1) & (iy >= 0) & (iy < len(ye) - 1)
        return np.where(inside, iy * (len(xe) - 1) + ix, -1).astype(np.int64)


@dataclass(frozen=True)
class Geometry:
    """A calorimeter: layers in depth order, voxels numbered layer by layer.

    Attributes:
        layers: the layers, front to back.
        particle: particle name of the binning file (``"photon"``, ``"pion"``...).
        pid: its PDG id.
        name: a label.
        material: name of the toy simulator's medium for this geometry
            (:data:`hepflows.calo.simulator.MATERIALS`), or ``None`` (its default).
        threshold_mev: readout threshold in MeV: a voxel with less energy reads 0
            (the toy simulator cuts its showers there, the flows their samples).
            CaloChallenge datasets 2 and 3: 0.01515 (15.15 keV); 0: no threshold.
    """

    layers: tuple[Layer, ...]
    particle: str = "photon"
    pid: int = 22
    name: str = "custom"
    material: str | None = None
    threshold_mev: float = 0.0

    def __post_init__(self) -> None:
        if not self.layers:
            raise InputError("a geometry needs at least one layer")
        if not (math.isfinite(self.threshold_mev) and self.threshold_mev >= 0):
            raise InputError(f"threshold_mev must be a finite energy >= 0 (MeV), got "
                             f"{self.threshold_mev}")  # fmt: skip
        if self.n_voxels == 0:
            raise InputError("the geometry has no voxels: every layer is empty")

    @property
    def n_voxels(self) -> int:
        """Total number of voxels V."""
        return sum(layer.n_voxels for layer in self.layers)

    @cached_property
    def voxel_layers(self) -> list[int]:
        """Positions (in :attr:`layers`) of the layers that have voxels."""
        return [i for i, layer in enumerate(self.layers) if layer.n_voxels]

    @cached_property
    def slices(self) -> list[slice]:
        """For each layer, its slice of the (V,) voxel vector (empty for empty layers)."""
        out, start = [], 0
        for layer in self.layers:
            out.append(slice(start, start + layer.n_voxels))
            start += layer.n_voxels
        return out

    @property
    def depths_x0(self) -> np.ndarray:
        """(L,) layer thicknesses in radiation lengths.

        Raises:
            ConfigError: if a layer has no ``depth_x0``.
        """
        missing = [layer.id for layer in self.layers if layer.depth_x0 is None]
        if missing:
            raise ConfigError(
                f"layers {missing} of geometry {self.name!r} have no depth_x0: add "
                'depth_x0="..." (radiation lengths) to their <Layer> elements in the XML'
            )
        return np.array([layer.depth_x0 for layer in self.layers], float)

    def centres(self) -> np.ndarray:
        """(V, 2) voxel centres (x, y) in mm, layer by layer."""
        return np.concatenate([layer.centres() for layer in self.layers])

    def layer_energies(self, voxels: np.ndarray) -> np.ndarray:
        """Energy per voxelised layer.

        Args:
            voxels: (N, V) voxel energies.

        Returns:
            (N, L_v) sums over the voxels of each layer in :attr:`voxel_layers`.
        """
        return np.stack([voxels[:, self.slices[i]].sum(1) for i in self.voxel_layers], 1)

    def voxel_index(self, layer: np.ndarray | int, first: np.ndarray | int,
                    second: np.ndarray | int) -> np.ndarray:  # fmt: skip
        """Position in the (V,) voxel vector of voxels given by layer and bin.

        Args:
            layer: (n,) or scalar position of the layer in :attr:`layers`.
            first: (n,) angular bin (polar layer) or row y (cartesian layer).
            second: (n,) radial bin (polar) or column x (cartesian).

        Returns:
            (n,) int64 voxel indices (CaloChallenge order: layer-major, then angle,
            then radius).

        Raises:
            InputError: a bin outside its layer (or an empty layer).
        """
        layer, first, second = np.broadcast_arrays(*(np.asarray(a, np.int64)
                                                     for a in (layer, first, second)))  # fmt: skip
        if ((layer < 0) | (layer >= len(self.layers))).any():
            raise InputError(f"layer positions must lie in [0, {len(self.layers)})")
        shapes = np.array([lay.shape for lay in self.layers], np.int64)  # (L, 2)
        starts = np.array([sl.start for sl in self.slices], np.int64)
        n_a, n_b = shapes[layer, 0], shapes[layer, 1]
        if ((first < 0) | (first >= n_a) | (second < 0) | (second >= n_b)).any():
            raise InputError("bins outside their layer: need 0 <= angle (row) < n_alpha (n_y) "
                             "and 0 <= radius (column) < n_r (n_x) of each layer")  # fmt: skip
        return starts[layer] + first * n_b + second

    def voxel_bins(self, index: np.ndarray | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inverse of :meth:`voxel_index`.

        Args:
            index: (n,) voxel indices in [0, V).

        Returns:
            layer position, angular bin (row) and radial bin (column), each (n,) int64.

        Raises:
            InputError: an index outside [0, V).
        """
        index = np.asarray(index, np.int64)
        if ((index < 0) | (index >= self.n_voxels)).any():
            raise InputError(f"voxel indices must lie in [0, {self.n_voxels})")
        starts = np.array([sl.start for sl in self.slices], np.int64)
        sizes = np.array([lay.n_voxels for lay in self.layers], np.int64)
        full = np.flatnonzero(sizes > 0)  # empty layers share the next layer's start
        layer = full[np.searchsorted(starts[full], index, side="right") - 1]
        n_b = np.array([lay.shape[1] for lay in self.layers], np.int64)[layer]
        local = index - starts[layer]
        return layer, local // n_b, local % n_b

    # --------------------------------------------------------------------- XML
    @classmethod
    def from_xml(cls, path: str | os.PathLike, particle: str | None = None) -> Geometry:
        """Read a CaloChallenge binning XML (with the optional hepflows attributes).

        Args:
            path: the XML file.
            particle: which ``<Bin name=...>`` to read if the file has several.

        Raises:
            InputError: missing file, malformed XML or layer attributes.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"no binning XML at {path}: check the path")
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as err:
            raise InputError(f"{path} is not valid XML ({err})") from None
        bins = list(root)
        if particle is not None:
            bins = [b for b in bins if b.get("name") == particle]
        if not bins:
            names = [b.get("name") for b in root]
            raise InputError(
                f"{path}: no <Bin> element for particle {particle!r}; the file has {names}"
            )
        if len(bins) > 1:
            names = [b.get("name") for b in bins]
            raise InputError(f"{path} holds several particles {names}: pass particle=...")
        b = bins[0]
        layers = []
        for el in b.iter("Layer"):
            lid = el.get("id", str(len(layers)))
            depth = el.get("depth_x0")
            try:
                layers.append(
                    Layer(
                        id=int(lid),
                        depth_x0=None if depth is None else float(depth),
                        r_edges=_edges(el.get("r_edges"), "r_edges", lid),
                        n_alpha=int(el.get("n_bin_alpha", "1")),
                        x_edges=_edges(el.get("x_edges"), "x_edges", lid),
                        y_edges=_edges(el.get("y_edges"), "y_edges", lid),
                    )
                )
            except ValueError as err:
                raise InputError(f"{path}: layer {lid}: {err}") from None
        return cls(
            tuple(layers), particle=b.get("name", "photon"), pid=int(b.get("pid", "22")),
            name=path.stem, material=b.get("material"),
            threshold_mev=_number(b.get("threshold_mev", "0"), "threshold_mev", path),
        )  # fmt: skip

    def to_xml(self, path: str | os.PathLike) -> None:
        """Write the geometry as binning XML (atomic write); :meth:`from_xml` reads it back."""

        def fmt(v: tuple[float, ...]) -> str:
            return ",".join(repr(float(e)) if e != int(e) else f"{e:g}" for e in v)

        root = ET.Element("Bins")
        b = ET.SubElement(root, "Bin", pid=str(self.pid), name=self.particle)
        if self.material is not None:
            b.set("material", self.material)
        if self.threshold_mev > 0:
            b.set("threshold_mev", repr(float(self.threshold_mev)))
        for layer in self.layers:
            attrs = {"id": str(layer.id)}
            if layer.x_edges:
                attrs |= {"x_edges": fmt(layer.x_edges), "y_edges": fmt(layer.y_edges)}
            else:
                attrs |= {"r_edges": fmt(layer.r_edges or (0.0,)),
                          "n_bin_alpha": str(layer.n_alpha)}  # fmt: skip
            if layer.depth_x0 is not None:
                attrs["depth_x0"] = repr(float(layer.depth_x0))
            ET.SubElement(b, "Layer", attrs)
        ET.indent(root)
        atomic_write(path, lambda tmp: ET.ElementTree(root).write(tmp, encoding="unicode"))

    @classmethod
    def builtin(cls, name: str) -> Geometry:
        """A geometry shipped with hepflows: ``"calogan"`` (3 layers, 3x96 + 12x12 +
        12x6 = 504 voxels), ``"calochallenge-ds1-photon"`` (368 voxels),
        ``"calochallenge-ds2"`` (6 480) or ``"calochallenge-ds3"`` (40 500); or a
        short name of :data:`ALIASES` (``"ds2"``)."""
        name = ALIASES.get(name, name)
        if name not in BUILTIN:
            raise ConfigError(f"unknown geometry {name!r}: choose from {sorted(BUILTIN)} "
                              f"(short names {sorted(ALIASES)}) or give the path of a "
                              "binning XML")  # fmt: skip
        ref = resources.files("hepflows.calo") / "geometries" / BUILTIN[name]
        with resources.as_file(ref) as p:
            geometry = cls.from_xml(p)
        return replace(geometry, name=name)

    @classmethod
    def resolve(cls, spec: str | os.PathLike | Geometry) -> Geometry:
        """A geometry from a built-in name, an XML path, or a :class:`Geometry`."""
        if isinstance(spec, Geometry):
            return spec
        name = str(spec).replace("_", "-")  # calochallenge_ds1_photon works too
        if not Path(spec).suffix and (name in BUILTIN or name in ALIASES
                                      or not Path(spec).exists()):  # fmt: skip
            return cls.builtin(name)  # names the built-in choices when unknown
        return cls.from_xml(spec)
