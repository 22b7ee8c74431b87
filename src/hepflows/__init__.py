"""hepflows: fast and faithful particle-physics simulation and inference with normalizing flows.

The flow core lives in :mod:`hepflows.flows`; the pillars (integration,
physics, calorimeter showers, inference) build on it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from hepflows.errors import (
    CheckpointError,
    ConfigError,
    HepflowsError,
    InputError,
    MissingExtraError,
    ShapeError,
)

try:
    __version__ = version("hepflows")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "HepflowsError",
    "InputError",
    "MissingExtraError",
    "ShapeError",
    "__version__",
]
