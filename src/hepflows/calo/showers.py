"""A set of calorimeter showers: incident energies and voxel energies, in MeV."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hepflows.calo.geometry import Geometry
from hepflows.errors import InputError, ShapeError


@dataclass
class Showers:
    """Showers in one geometry. All energies are in **MeV**.

    Attributes:
        energy: (N,) incident energies.
        voxels: (N, V) voxel energies, V = ``geometry.n_voxels``.
        geometry: the calorimeter.
        overflow: (N, L) energy per layer that fell outside the voxels
            (CaloGAN's ``overflow``), or ``None``.
    """

    energy: np.ndarray
    voxels: np.ndarray
    geometry: Geometry
    overflow: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.energy = np.asarray(self.energy, np.float64).reshape(-1)
        self.voxels = np.asarray(self.voxels, np.float64)
        n, v = len(self.energy), self.geometry.n_voxels
        if self.voxels.ndim != 2 or self.voxels.shape != (n, v):
            raise ShapeError(
                f"voxels must have shape (N, V) = ({n}, {v}) for {n} incident energies and "
                f"geometry {self.geometry.name!r}, got {self.voxels.shape}"
            )
        if self.overflow is not None:
            self.overflow = np.asarray(self.overflow, np.float64)
            if self.overflow.shape != (n, len(self.geometry.layers)):
                raise ShapeError(
                    f"overflow must have shape ({n}, {len(self.geometry.layers)}), "
                    f"got {self.overflow.shape}"
                )
        for name in ("energy", "voxels", "overflow"):
            a = getattr(self, name)
            if a is None:
                continue
            if not np.isfinite(a).all():
                raise InputError(f"{name} holds NaN or inf: drop or fix those showers")
            if (a < 0).any():
                rows = int((a < 0).reshape(n, -1).any(1).sum())
                raise InputError(
                    f"{name} holds negative energies in {rows} showers: energies must be >= 0 "
                    "(clip noise at zero before writing the file)"
                )
        if (self.energy <= 0).any():
            raise InputError("incident energies must be > 0")

    def __len__(self) -> int:
        return len(self.energy)

    def __getitem__(self, index: slice | np.ndarray) -> Showers:
        """A subset of the showers (slice, index array or boolean mask)."""
        over = None if self.overflow is None else self.overflow[index]
        return Showers(self.energy[index], self.voxels[index], self.geometry, over)

    def layer_energies(self) -> np.ndarray:
        """(N, L_v) energy per voxelised layer (see :attr:`Geometry.voxel_layers`)."""
        return self.geometry.layer_energies(self.voxels)

    @staticmethod
    def concatenate(parts: list[Showers]) -> Showers:
        """Join shower sets of one geometry."""
        if not parts:
            raise InputError("nothing to concatenate")
        over = None
        if all(p.overflow is not None for p in parts):
            over = np.concatenate([p.overflow for p in parts])
        return Showers(
            np.concatenate([p.energy for p in parts]),
            np.concatenate([p.voxels for p in parts]),
            parts[0].geometry,
            over,
        )
