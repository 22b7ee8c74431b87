"""Event records and files, below every pillar: the :class:`Events` record, LHE files
(plain, gzipped, HDF5) through pylhe, atomic writes and output checks.

``pylhe`` belongs to the ``[physics]`` extra; it is imported when a file is
read or written, with a one-line error naming the extra when it is missing.
"""

from __future__ import annotations

from hepflows.io.atomic import atomic_write, check_writable
from hepflows.io.events import Events
from hepflows.io.lhe import check_event_path, read_events, write_events

__all__ = ["Events", "atomic_write", "check_event_path", "check_writable", "read_events",
           "write_events"]  # fmt: skip
