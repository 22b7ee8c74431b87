"""Atomic file writes and the header of hepflows' safetensors files (below every pillar)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    The rename is atomic on POSIX, so ``path`` holds either the old or the new
    file, never a half-written one; the temporary file is removed on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600 files; give the result the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(
    path: str | os.PathLike, suffixes: tuple[str, ...] = (), what: str = "output", option: str = ""
) -> Path:
    """Check, before any work, that ``path`` has a known suffix and can be written.

    Creates no file (a probe file in the directory is made and removed).

    Args:
        path: the output file.
        suffixes: accepted endings (empty: any).
        what: what the file holds, for messages.
        option: the command-line option that names it (``"--out"``), for messages.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: unknown format, a directory, or a place that cannot be written.
    """
    from hepflows.errors import InputError

    path = Path(path)
    name = f"{option} {path}" if option else str(path)
    if suffixes and not any(path.name.endswith(s) for s in suffixes):
        raise InputError(f"cannot tell the {what} format of {name}: use one of {suffixes}")
    if path.is_dir():
        raise InputError(f"{name} is a directory: give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".hepflows-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(
            f"cannot write the {what} {name}: {err.strerror or err}; choose a writable place"
        ) from None
    return path


def read_metadata(
    path: str | os.PathLike, fmt: str | tuple[str, ...], what: str, fix: str
) -> dict[str, str]:
    """The metadata header of a hepflows safetensors file, without reading its tensors.

    Args:
        path: the file.
        fmt: the value its ``format`` entry must have (or one of several).
        what: what the file should hold, for messages ("flow", "integrator").
        fix: how to make a good file, for the message on an unreadable one.

    Raises:
        CheckpointError: missing file, unreadable file, or another format.
    """
    from safetensors import SafetensorError, safe_open

    from hepflows.errors import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no saved {what} at {path}: check the path")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({err}); it may be truncated or "
            f"of another format: {fix}"
        ) from None
    formats = (fmt,) if isinstance(fmt, str) else fmt
    if meta.get("format") not in formats:
        header = " or ".join(f"'{f}'" for f in formats)
        raise CheckpointError(
            f"{path} is a safetensors file but not a saved hepflows {what} (no {header} header)"
        )
    return meta
