"""Event files: Les Houches Event files (plain, gzipped, HDF5) through pylhe."""

from hepflows.io.lhe import read_events, write_events

__all__ = ["read_events", "write_events"]
