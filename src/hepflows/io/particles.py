"""Particle records of events as one array: the table both event formats are written from.

A process describes its events' particles as an (n, P, 13) float64 table, one
row per particle in LHEF order (:data:`PARTICLE_COLUMNS`). LHEH5 files take the
table as it is (:mod:`hepflows.io.lheh5`); the XML formats turn it into
``pylhe.LHEParticle`` records (:func:`records`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hepflows.errors import ShapeError
from hepflows.extras import require

if TYPE_CHECKING:
    import pylhe

#: The 13 columns of a particle record, in LHEF order (pylhe's LHEH5 names).
PARTICLE_COLUMNS = ("id", "status", "mother1", "mother2", "color1", "color2",
                    "px", "py", "pz", "e", "m", "lifetime", "spin")  # fmt: skip
#: Columns that hold integers in the XML formats.
INTEGER_COLUMNS = 6
#: SPINUP of unknown helicity (LHEF: 9).
UNKNOWN_SPIN = 9.0


def particle_table(
    pid: Tensor,
    status: Sequence[int],
    mothers: Sequence[tuple[int, int]],
    momenta: Tensor,
    masses: Tensor | Sequence[float],
    colours: Tensor | None = None,
) -> Tensor:
    """(n, P, 13) particle records of n events with P particles each.

    Args:
        pid: (n, P) PDG ids.
        status: (P,) ISTUP of each particle (-1 incoming, 1 outgoing...).
        mothers: (P,) (MOTHUP1, MOTHUP2) of each particle (1-based, 0: none).
        momenta: (n, P, 4) four-momenta (E, px, py, pz) in GeV.
        masses: (n, P) or (P,) masses in GeV.
        colours: (n, P, 2) colour lines (ICOLUP1, ICOLUP2), or ``None`` (colourless).

    Returns:
        (n, P, 13) float64 rows in :data:`PARTICLE_COLUMNS` order; lifetimes 0,
        spins unknown (9).
    """
    n, p = pid.shape
    if momenta.shape != (n, p, 4) or len(status) != p or len(mothers) != p:
        raise ShapeError(f"{p} particles: momenta must be ({n}, {p}, 4), status and mothers "
                         f"of length {p}; got {tuple(momenta.shape)}, {len(status)}, "
                         f"{len(mothers)}")  # fmt: skip
    dev = momenta.device
    table = torch.zeros(n, p, len(PARTICLE_COLUMNS), dtype=torch.float64, device=dev)
    table[..., 0] = pid
    table[..., 1] = torch.tensor(status, dtype=torch.float64, device=dev)
    table[..., 2:4] = torch.tensor(mothers, dtype=torch.float64, device=dev)
    if colours is not None:
        table[..., 4:6] = colours
    table[..., 6:9] = momenta[..., 1:]
    table[..., 9] = momenta[..., 0]
    table[..., 10] = torch.as_tensor(masses, dtype=torch.float64, device=dev)
    table[..., 12] = UNKNOWN_SPIN
    return table


def records(table: Tensor) -> list[list[pylhe.LHEParticle]]:
    """``pylhe.LHEParticle`` records of an (n, P, 13) particle table: n lists of P."""
    pylhe = require("pylhe", "physics", "Writing particle records")
    if table.ndim != 3 or table.shape[2] != len(PARTICLE_COLUMNS):
        raise ShapeError(f"a particle table is (n, P, 13), got {tuple(table.shape)}")
    events = []
    for event in table.tolist():
        events.append([
            pylhe.LHEParticle(*(int(v) for v in row[:INTEGER_COLUMNS]), *row[INTEGER_COLUMNS:])
            for row in event
        ])  # fmt: skip
    return events
