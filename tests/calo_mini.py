"""Granular-calorimeter test helpers: a small geometry with toy electrons in it, and a spy
on the reads of a shower file's voxel dataset."""

import h5py

from hepflows.calo import Showers, ToySimulator
from hepflows.calo.geometry import Geometry, Layer

#: 6 polar layers of 8 angles x 4 radii (32 voxels each): one layer shape, as ds2/ds3.
MINI = Geometry(tuple(Layer(i, 1.0, (0, 3, 6, 10, 16), 8) for i in range(6)), "electron", 11,
                "mini", "tungsten-silicon")  # fmt: skip


def mini_showers(n: int, seed: int = 0) -> Showers:
    """``n`` toy electrons of 5-50 GeV (log-uniform) in :data:`MINI`."""
    sim = ToySimulator(MINI, particle="electron", energy_range_mev=(5e3, 5e4),
                       energy_distribution="log-uniform", max_spots=400, seed=seed)  # fmt: skip
    return sim.simulate(n)


def spy_voxel_reads(monkeypatch) -> list:
    """The keys of every read of a file's ``/showers`` dataset from now on (h5py patched
    through ``monkeypatch``): a test asserts no read asks for more rows than a chunk."""
    seen = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        if self.name == "/showers":
            seen.append(key)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    return seen
