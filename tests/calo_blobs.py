"""Gaussian-blob showers for the calorimeter evaluation tests (numpy only, CaloGAN geometry).

Two independent samples of one generator must look alike (AUC ~ 0.5, JSD ~ 0,
FPD/KPD ~ 0); a generator with blobs twice as wide must not.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from hepflows.calo import Geometry, Showers

GEOMETRY = Geometry.builtin("calogan")
CENTRES = GEOMETRY.centres()
V = GEOMETRY.n_voxels  # 288 + 144 + 72 = 504
FAST = {"hidden": (64, 64), "epochs": 20, "lr": 1e-3, "patience": 3, "batch_size": 256}


def blobs(n: int, seed: int, width: float = 25.0) -> Showers:
    """Gaussian-blob showers: random layer shares, a jittered centre, gamma voxel noise.

    Incident energies uniform in 1-100 GeV; voxels below 0.1 MeV are zeroed.
    """
    rng = np.random.default_rng(seed)
    e_inc = rng.uniform(1e3, 1e5, n)
    e_dep = e_inc * np.clip(rng.normal(0.9, 0.03, n), 0.5, 1.0)
    shares = rng.dirichlet([10.0, 60.0, 10.0], n)
    x0, y0 = rng.normal(0, 5, n), rng.normal(0, 5, n)
    voxels = np.zeros((n, V))
    for k, s in enumerate(GEOMETRY.slices):
        c = CENTRES[s]
        r2 = (c[:, 0] - x0[:, None]) ** 2 + (c[:, 1] - y0[:, None]) ** 2
        w = np.exp(-r2 / (2 * width**2)) * rng.gamma(4.0, 0.25, r2.shape)
        voxels[:, s] = w / w.sum(1, keepdims=True) * (e_dep * shares[:, k])[:, None]
    voxels[voxels < 0.1] = 0.0
    return Showers(e_inc, voxels, GEOMETRY)


@cache
def samples() -> dict[str, Showers]:
    """Two samples of the same generator and one of a twice-as-wide generator."""
    return {"a": blobs(2000, 1), "b": blobs(2000, 2), "wide": blobs(2000, 3, width=50.0)}
