"""The one exception hierarchy of hepflows.

Every error raised on purpose by hepflows derives from :class:`HepflowsError`,
names the problem and says how to fix it. The CLI turns them into a one-line
message and exit code 2.
"""

from __future__ import annotations


class HepflowsError(Exception):
    """Root of all hepflows errors."""


class ShapeError(HepflowsError, ValueError):
    """A tensor has the wrong shape, dtype, or a context is missing or extra."""


class InputError(HepflowsError, ValueError):
    """Input values are invalid (NaN, inf, outside the domain)."""


class ConfigError(HepflowsError, ValueError):
    """An option or a combination of options is invalid."""


class CheckpointError(HepflowsError):
    """A saved file cannot be loaded: missing, corrupt, or of another architecture."""


class MissingExtraError(HepflowsError, ImportError):
    """An optional package is not installed; the message names the extra that brings it."""


class HepflowsWarning(UserWarning):
    """A result may mislead (e.g. a classifier stopped before it converged): read the message."""
