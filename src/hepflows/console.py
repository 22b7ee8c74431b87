"""Terminal output shared by the command-line modules: consoles and argument parsing."""

from __future__ import annotations

from rich.console import Console

from hepflows.errors import HepflowsError

console = Console()
err_console = Console(stderr=True)


def count(text: str, name: str) -> int:
    """Parse a count given as text (``"1e6"``, ``"50000"``) for option ``name``.

    Raises:
        HepflowsError: not a number, or outside [1, 1e13).
    """
    try:
        value = float(text)
    except ValueError:
        raise HepflowsError(f"{name} must be a number such as 1e6, got {text!r}") from None
    if not (value >= 1 and value < 1e13):
        raise HepflowsError(f"{name} must lie between 1 and 1e13, got {text!r}")
    return int(value)
