"""Progress for long work, one style for the whole package.

On a terminal: a rich progress bar. When the output goes to a file or a pipe
(batch jobs, CI logs), a bar would print nothing useful, so plain lines are
printed instead: one at the start, then whenever 10 % more is done or a
minute has passed, and one at the end.
"""

from __future__ import annotations

import sys
import time
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

from hepflows.console import err_console

#: Plain progress lines: at most one per this many seconds, unless 10 % more is done.
PLAIN_INTERVAL = 60.0


def _info(fields: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in fields.items())


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self.progress, self.task = progress, task

    def advance(self, n: int = 1, **fields: float) -> None:
        """Advance by ``n`` steps and show ``fields`` (e.g. ``loss=...``)."""
        if self.progress is not None:
            self.progress.update(self.task, advance=n, info=_info(fields))


class _PlainBar(_Bar):
    """Progress as plain lines on stderr (not a terminal)."""

    def __init__(self, total: int, description: str) -> None:
        super().__init__(None, None)
        self.total, self.description = max(int(total), 1), description
        self.done, self.fields = 0, {}
        self.t0 = self.t_last = time.monotonic()
        self.next_share = 0.1
        self._print("started")

    def _print(self, what: str) -> None:
        elapsed = time.monotonic() - self.t0
        line = f"{self.description}: {what} {self.done:,}/{self.total:,} ({elapsed:.0f} s)"
        info = _info(self.fields)
        print(f"{line}  {info}" if info else line, file=sys.stderr, flush=True)
        self.t_last = time.monotonic()

    def advance(self, n: int = 1, **fields: float) -> None:
        self.done += n
        self.fields = fields or self.fields
        share = self.done / self.total
        if share >= self.next_share or time.monotonic() - self.t_last > PLAIN_INTERVAL:
            while self.next_share <= share:
                self.next_share += 0.1
            if self.done < self.total:
                self._print("at")

    def close(self) -> None:
        self._print("done")


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[_Bar]:
    """A progress display over ``total`` steps; a no-op when ``enabled`` is False."""
    if not enabled:
        yield _Bar(None, None)
        return
    if not err_console.is_terminal:
        bar = _PlainBar(total, description)
        yield bar
        bar.close()
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, transient=False, console=err_console) as progress:
        yield _Bar(progress, progress.add_task(description, total=total, info=""))
