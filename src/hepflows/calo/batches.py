"""Training showers as batches: from memory, or from a file a chunk at a time.

:func:`hepflows.calo.training.train` draws its batches from one of two sources
with the same interface:

* :class:`MemoryBatches`: tensors in memory (CaloGAN-size data); every epoch a
  fresh permutation of all rows;
* :class:`FileBatches`: a row range of a CaloChallenge HDF5 file, read
  ``chunk_size`` showers at a time (a dataset-2/3 file is never loaded whole).
  Every epoch visits the chunks in a fresh random order and shuffles the rows
  inside each chunk; rows left over at the end of a chunk are carried into the
  next, so every batch but the last of the epoch is full. Memory: about two
  chunks of ``chunk_size x V`` float32 values.

Both draw their orders from the generator they are given (the one that also
draws the noise of that epoch), so a seeded run is reproducible and a resumed
epoch repeats the same batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from hepflows.calo.showers import Showers
from hepflows.calo.showerstream import iter_showers

#: (voxels (n, V), incident energies (n,)) of a batch, float32 tensors in MeV.
Batch = tuple[Tensor, Tensor]


class MemoryBatches:
    """Batches of in-memory showers.

    Args:
        vox: (N, V) voxel energies, MeV.
        e: (N,) incident energies, MeV.
    """

    def __init__(self, vox: Tensor, e: Tensor) -> None:
        self.vox, self.e = vox, e

    def __len__(self) -> int:
        return len(self.vox)

    def epoch(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch of batches of ``batch_size`` showers (the last may be smaller), in
        the order of a permutation drawn from ``generator``."""
        order = torch.randperm(len(self.vox), generator=generator, device=self.vox.device)
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            yield self.vox[idx], self.e[idx]

    def blocks(self, size: int) -> Iterator[Batch]:
        """All showers in order, ``size`` at a time (validation)."""
        for i in range(0, len(self.vox), size):
            yield self.vox[i : i + size], self.e[i : i + size]


class FileBatches:
    """Batches of the showers ``start:stop`` of a CaloChallenge file, read chunk by chunk.

    Args:
        path: HDF5 file (``incident_energies``, ``showers``).
        start: first shower.
        stop: one past the last shower.
        to_tensors: :class:`Showers` -> (voxels (n, V), energies (n,)) float32 tensors
            on the training device (e.g. ``CaloFlow.tensors``, which checks the geometry).
        geometry: the file's geometry (passed to :func:`iter_showers`).
        chunk_size: showers read at a time.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        start: int,
        stop: int,
        to_tensors: Callable[[Showers], Batch],
        geometry: object = None,
        chunk_size: int = 5000,
    ) -> None:
        self.path, self.start, self.stop = Path(path), start, stop
        self.to_tensors, self.geometry, self.chunk_size = to_tensors, geometry, chunk_size
        self.chunks = [(lo, min(stop, lo + chunk_size)) for lo in range(start, stop, chunk_size)]

    def __len__(self) -> int:
        return self.stop - self.start

    def _read(self, lo: int, hi: int) -> Batch:
        (showers,) = iter_showers(self.path, chunk_size=hi - lo, geometry=self.geometry,
                                  start=lo, stop=hi)  # fmt: skip
        return self.to_tensors(showers)

    def epoch(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch: the chunks in a random order, the rows of each shuffled; batches of
        ``batch_size`` showers (the last may be smaller)."""
        dev = generator.device
        chunk_order = torch.randperm(len(self.chunks), generator=generator, device=dev)
        carry: Batch | None = None
        for c in chunk_order.tolist():
            vox, e = self._read(*self.chunks[c])
            perm = torch.randperm(len(vox), generator=generator, device=dev).to(vox.device)
            vox, e = vox[perm], e[perm]
            if carry is not None:
                vox, e = torch.cat([carry[0], vox]), torch.cat([carry[1], e])
            full = len(vox) - len(vox) % batch_size
            for k in range(0, full, batch_size):
                yield vox[k : k + batch_size], e[k : k + batch_size]
            carry = (vox[full:], e[full:]) if full < len(vox) else None
        if carry is not None:
            yield carry

    def blocks(self, size: int) -> Iterator[Batch]:
        """All showers in file order, ``size`` at a time (validation)."""
        for lo, hi in self.chunks:
            vox, e = self._read(lo, hi)
            for i in range(0, len(vox), size):
                yield vox[i : i + size], e[i : i + size]

    def head(self, n: int) -> Showers:
        """The first ``n`` showers of the range (e.g. to fit the preprocessing on)."""
        stop = min(self.stop, self.start + n)
        return Showers.concatenate(list(iter_showers(
            self.path, chunk_size=self.chunk_size, geometry=self.geometry, start=self.start,
            stop=stop)))  # fmt: skip
