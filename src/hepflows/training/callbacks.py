"""Callbacks of the training engine: progress, logging, checkpoints, early stopping, best epoch.

A callback is any object with the four methods of :class:`Callback` (each
may be left as the no-op it inherits). The engine calls ``on_iteration`` with
the figures the iteration returned (``{"loss": ...}``) and ``on_epoch`` with
those of the end-of-epoch function (``{"val": ...}``).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hepflows.errors import ConfigError
from hepflows.io.atomic import atomic_write
from hepflows.progress import progress_bar

if TYPE_CHECKING:  # pragma: no cover
    from hepflows.training.engine import Engine


class Callback:
    """Base class: override what you need."""

    def on_start(self, engine: Engine) -> None:
        """Before the first iteration of :meth:`Engine.run`."""

    def on_iteration(self, engine: Engine, logs: dict[str, float]) -> None:
        """After every iteration (``engine.iteration`` already counts it)."""

    def on_epoch(self, engine: Engine, epoch: int, logs: dict[str, float]) -> None:
        """After every epoch (0-based ``epoch``), with the end-of-epoch figures."""

    def on_end(self, engine: Engine) -> None:
        """After the last iteration, also when the run stops with an error."""


class ProgressCallback(Callback):
    """A progress bar over the iterations showing the latest figures (see :mod:`hepflows.progress`).

    Args:
        description: label of the bar.
        total: iterations of the whole run (a resumed run starts at the engine's iteration).
    """

    def __init__(self, description: str, total: int) -> None:
        self.description, self.total = description, total
        self._context: Any = None
        self._bar: Any = None

    def on_start(self, engine: Engine) -> None:
        self._context = progress_bar(self.total, self.description)
        self._bar = self._context.__enter__()
        self._bar.advance(engine.iteration)

    def on_iteration(self, engine: Engine, logs: dict[str, float]) -> None:
        self._bar.advance(1, **{k: v for k, v in logs.items() if isinstance(v, int | float)})

    def on_end(self, engine: Engine) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None


class History(Callback):
    """Keeps every iteration's and epoch's figures in lists (``iterations``, ``epochs``)."""

    def __init__(self) -> None:
        self.iterations: list[dict[str, float]] = []
        self.epochs: list[dict[str, float]] = []

    def on_iteration(self, engine: Engine, logs: dict[str, float]) -> None:
        self.iterations.append({"iteration": engine.iteration, **logs})

    def on_epoch(self, engine: Engine, epoch: int, logs: dict[str, float]) -> None:
        self.epochs.append({"epoch": epoch, **logs})

    def column(self, key: str) -> list[float]:
        """One figure over the iterations, e.g. ``history.column("loss")``."""
        return [row[key] for row in self.iterations if key in row]


class CSVLogger(History):
    """:class:`History` that also writes the iteration figures to a CSV file (atomic, at the end).

    Args:
        path: the CSV file (one row per iteration; columns from the first row).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.path = Path(path)

    def on_end(self, engine: Engine) -> None:
        if not self.iterations:
            return
        keys = list(dict.fromkeys(k for row in self.iterations for k in row))

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=keys)
                writer.writeheader()
                writer.writerows(self.iterations)

        atomic_write(self.path, write)


class Checkpoint(Callback):
    """Calls ``save()`` every ``every`` iterations (and, with ``at_epoch``, after every epoch).

    Args:
        save: writes the checkpoint (atomically), e.g. ``lambda: integ.save(path)``.
        every: iterations between saves (``None``: none).
        at_epoch: save after every epoch too.
    """

    def __init__(
        self, save: Callable[[], None], every: int | None = None, at_epoch: bool = False
    ) -> None:
        if every is not None and every < 1:
            raise ConfigError(f"checkpoint every must be >= 1, got {every}")
        self.save, self.every, self.at_epoch = save, every, at_epoch

    def on_iteration(self, engine: Engine, logs: dict[str, float]) -> None:
        if self.every and engine.iteration % self.every == 0:
            self.save()

    def on_epoch(self, engine: Engine, epoch: int, logs: dict[str, float]) -> None:
        if self.at_epoch:
            self.save()


class EarlyStopping(Callback):
    """Stops the run when an epoch figure has not improved for ``patience`` epochs.

    Args:
        monitor: the figure (e.g. ``"val"``), lower is better.
        patience: epochs without improvement before stopping.
        min_delta: the smallest decrease that counts as an improvement.
    """

    def __init__(self, monitor: str = "val", patience: int = 5, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ConfigError(f"patience must be >= 1, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best = math.inf
        self.wait = 0

    def on_epoch(self, engine: Engine, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ConfigError(f"early stopping monitors {self.monitor!r}, not in {sorted(logs)}")
        value = logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                engine.stop = True


class KeepBest(Callback):
    """Keeps a module's weights of its best epoch and puts them back when the run ends.

    With a held-out figure (``"val"``) this is early stopping's other half: the
    run may go on past the best epoch (or stop with :class:`EarlyStopping`),
    and the module ends with the weights that generalised best.

    Args:
        module: the :class:`torch.nn.Module` whose ``state_dict`` is kept.
        monitor: the epoch figure, lower is better.

    Attributes:
        best: the best figure seen (``inf`` before the first epoch).
        best_epoch: its epoch (-1 before the first).
    """

    def __init__(self, module: Any, monitor: str = "val") -> None:
        self.module, self.monitor = module, monitor
        self.best, self.best_epoch = math.inf, -1
        self._state: dict[str, Any] | None = None

    def on_epoch(self, engine: Engine, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ConfigError(f"KeepBest monitors {self.monitor!r}, not in {sorted(logs)}")
        if logs[self.monitor] < self.best:
            self.best, self.best_epoch = logs[self.monitor], epoch
            self._state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def on_end(self, engine: Engine) -> None:
        if self._state is not None:
            self.module.load_state_dict(self._state)
