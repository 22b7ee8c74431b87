"""Helpers of the command modules: library defaults and output checks before any work."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

#: Endings of the files the commands write, by kind.
PNG = (".png",)
JSON = (".json",)
SHOWERS = (".h5", ".hdf5")
SAFETENSORS = (".safetensors",)

#: The ``--device`` option of every command that trains or samples (:mod:`hepflows.device`).
Device = Annotated[
    str,
    typer.Option(help="where the flows run: cpu (the default), cuda, cuda:N or mps; the "
                 "same seed gives other (equally valid) draws on another device type"),
]  # fmt: skip


def library_default(function: Callable[..., Any], name: str) -> Any:
    """The default of argument ``name`` of a library function or class: CLI defaults come
    from here, so that the command and the library cannot disagree."""
    return inspect.signature(function).parameters[name].default


def output(
    path: str | os.PathLike | None, option: str, what: str, suffixes: tuple[str, ...] = ()
) -> Path | None:
    """Check an output file of option ``option`` before any work (format and place).

    Returns:
        The path, or ``None`` when none is given.

    Raises:
        InputError: unknown ending, a directory, or a place that cannot be written; the
            message names the option.
    """
    if path is None:
        return None
    from hepflows.io.atomic import check_writable

    return check_writable(path, suffixes, what, option)
