"""``hepflows merge``: the shards of a sharded run into one event file.

A sharded run (``hepflows generate drell-yan --shards DIR``, on one process or
under ``torchrun``) writes one file per block; this command pools their weight
sums into one cross-section and error and rewrites the events, in block order,
into one file (:func:`hepflows.io.shards.merge_shards`). It refuses shards of
different runs and names the missing blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hepflows.console import console

app = typer.Typer(no_args_is_help=True)


@app.command()
def merge(
    shard_dir: Annotated[
        Path, typer.Argument(metavar="SHARD_DIR",
                             help="shard directory (block-*.json and their event files)")
    ],
    out: Annotated[Path, typer.Option(help="merged event file: .lhe, .lhe.gz or .h5")],
) -> None:
    """Merge the shards of a sharded run into one event file.

    The header's sigma and error are pooled over every call of every block; the
    events keep their block order, so the file equals the one a single process writes.
    """
    from hepflows.errors import InputError
    from hepflows.io import check_event_path
    from hepflows.io.shards import merge_shards

    check_event_path(out, "--out")
    if not shard_dir.exists():
        raise InputError(f"no shard directory {shard_dir}: check the path (the --shards "
                         "directory of hepflows generate)")  # fmt: skip
    if not shard_dir.is_dir():
        raise InputError(f"{shard_dir} is a file: give the directory holding the shards")
    console.print(merge_shards(shard_dir, out).summary())
