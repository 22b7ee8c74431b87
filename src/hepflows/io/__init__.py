"""Event records and files, below every pillar: the :class:`Events` record, LHE files
(plain, gzipped, HDF5) through pylhe, atomic writes.

``pylhe`` belongs to the ``[physics]`` extra, so the LHE functions are imported on
first use.
"""

from __future__ import annotations

from typing import Any

from hepflows.io.atomic import atomic_write
from hepflows.io.events import Events

__all__ = ["Events", "atomic_write", "read_events", "write_events"]


def __getattr__(name: str) -> Any:
    if name in ("read_events", "write_events"):
        from hepflows.io import lhe

        return getattr(lhe, name)
    raise AttributeError(f"module 'hepflows.io' has no attribute {name!r}")
