"""Progress bars for long work (rich), one style for the whole package."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self.progress, self.task = progress, task

    def advance(self, n: int = 1, **fields: float) -> None:
        """Advance by ``n`` steps and show ``fields`` (e.g. ``loss=...``)."""
        if self.progress is not None:
            info = "  ".join(f"{k} {v:.4g}" for k, v in fields.items())
            self.progress.update(self.task, advance=n, info=info)


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[_Bar]:
    """A rich progress bar over ``total`` steps; a no-op when ``enabled`` is False."""
    if not enabled:
        yield _Bar(None, None)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, transient=False) as progress:
        yield _Bar(progress, progress.add_task(description, total=total, info=""))
