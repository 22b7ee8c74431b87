"""Training CaloFlow: flow I and the teacher by likelihood, then the student by distillation.

One function, :func:`train`, runs the three stages in order with progress
bars, a held-out validation split (the best validation epoch is kept) and a
checkpoint written atomically after every epoch: a run that is cut off
resumes from the checkpoint where it stopped (same stage, same epoch,
optimiser state and data order restored).

Under ``torchrun`` every rank runs :func:`train` on the same showers: each
takes its slice of every batch (``DistributedSampler``-style), the engine
averages the gradients, and rank 0 alone prints and writes the checkpoint.

Devices: ``train(..., device="cuda")`` moves the model (all stages) and the
training showers to the device once and draws the batch order and the noise
from generators there (:func:`hepflows.device.generator_on`); on the CPU the
results are those of a seeded CPU run as before. Under ``torchrun`` a
``"cuda"`` without an index means ``cuda:{LOCAL_RANK}``
(:func:`hepflows.device.resolve_device`).
Checkpoints hold CPU tensors and resume on any device.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from hepflows.calo.batches import FileBatches, MemoryBatches
from hepflows.calo.caloflow import CaloFlow
from hepflows.calo.showers import Showers
from hepflows.calo.showerstream import count_showers
from hepflows.device import generator_on, resolve_device
from hepflows.distributed import is_main, rank, world_size
from hepflows.errors import CheckpointError, ConfigError, InputError
from hepflows.flows.distill import check_pair, distillation_loss
from hepflows.training import Callback, Checkpoint, Engine
from hepflows.training.engine import OptimizerFactory, SchedulerFactory

STAGES = ("flow1", "teacher", "student")
#: Showers of a training file the preprocessing (standardisation constants) is fitted on.
FIT_SHOWERS = 10_000


@dataclass
class TrainingPlan:
    """Epochs, batch sizes and learning rates of the three stages.

    Attributes:
        epochs: epochs per stage (``{"flow1": ..., "teacher": ..., "student": ...}``;
            0 skips a stage).
        batch_size: showers per optimiser step.
        lr: initial Adam learning rate per stage (cosine decay to 1 % of it).
        val_fraction: share of the showers held out for validation.
        seed: seed of the split, the batch order and the noise.
        student_from_teacher: start the student from the teacher's weights.
    """

    epochs: dict[str, int] = field(
        default_factory=lambda: {"flow1": 30, "teacher": 30, "student": 20}
    )
    batch_size: int = 500
    lr: dict[str, float] = field(
        default_factory=lambda: {"flow1": 2e-3, "teacher": 1e-3, "student": 1e-3}
    )
    val_fraction: float = 0.1
    seed: int = 0
    student_from_teacher: bool = True

    def check(self) -> None:
        """Raise :class:`~hepflows.ConfigError` on a bad plan."""
        for s in STAGES:
            if int(self.epochs.get(s, 0)) < 0:
                raise ConfigError(f"epochs[{s!r}] must be >= 0, got {self.epochs[s]}")
            if s not in self.lr:
                raise ConfigError(f"lr has no rate for the {s!r} stage: give every stage {STAGES}")
            if not self.lr[s] > 0:
                raise ConfigError(f"lr[{s!r}] must be > 0, got {self.lr[s]}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be >= 2, got {self.batch_size}")
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction must lie in (0, 0.5), got {self.val_fraction}")


def _stage_flow(model: CaloFlow, stage: str) -> torch.nn.Module:
    return {"flow1": model.flow1, "teacher": model.teacher, "student": model.student}[stage]


def _loss(
    model: CaloFlow, stage: str, vox: Tensor, e: Tensor, g: torch.Generator,
    part: slice = slice(None),
) -> Tensor:
    """The stage's loss on the rows ``part`` of a batch whose noise is drawn for all rows
    (so that a rank's slice gets the noise one process would give those showers)."""
    if stage == "flow1":
        y, c = model.flow1_data(vox, e, g)
        return -model.flow1.log_prob(y[part], c[part]).mean()
    y, c = model.flow2_data(vox, e, g)
    if stage == "teacher":
        return -model.teacher.log_prob(y[part], c[part]).mean() / model.flow2_dims
    z = model.student.base.sample(len(y), g)
    return distillation_loss(model.teacher, model.student, y[part], c[part], z[part]).total


def _state(
    checkpoint: str | os.PathLike | None, kind: type[CaloFlow] = CaloFlow
) -> tuple[CaloFlow | None, dict[str, Any]]:
    """The model (of class ``kind``) and training state saved in ``checkpoint``
    (``(None, {})`` if there is none)."""
    if checkpoint is None or not Path(checkpoint).exists():
        return None, {}
    return kind.load(checkpoint)


def train(
    model: CaloFlow,
    showers: Showers | str | os.PathLike,
    plan: TrainingPlan | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    log: Any = None,
    optimizer: OptimizerFactory | None = None,
    scheduler: str | SchedulerFactory | None = "cosine",
    callbacks: Sequence[Callback] = (),
    device: str | torch.device | None = None,
    chunk_size: int = 5000,
    fit_showers: int = FIT_SHOWERS,
) -> dict[str, Any]:
    """Train flow I, the flow II teacher and the student (in that order).

    Args:
        model: a fresh model, or the one a checkpoint was written from.
        showers: training showers (the validation split is taken from them), or
            the path of a CaloChallenge HDF5 file, which is then read
            ``chunk_size`` showers at a time and never loaded whole
            (:class:`~hepflows.calo.batches.FileBatches`): its last
            ``val_fraction`` of showers are the validation split, and the
            preprocessing is fitted on its first ``fit_showers``.
        plan: epochs, batch size, learning rates; default :class:`TrainingPlan`.
        checkpoint: file to write after every epoch and to resume from if it
            exists (the model and plan must be those of the interrupted run).
        progress: show progress bars.
        log: optional ``print``-like function for one line per epoch.
        optimizer: ``optimizer(parameters, lr)`` factory for every stage (default Adam).
        scheduler: ``"cosine"`` (default: to 1 % of the stage's rate), ``None`` or a
            torch scheduler factory ``(optimizer, total_steps)``.
        callbacks: extra :mod:`hepflows.training.callbacks` for every stage (they see
            ``{"loss"}`` per step and ``{"train", "val"}`` per epoch).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``: the model is moved
            there (in place; it stays there) with the training showers (N, V)
            and the random generators; ``None``: the model's device (CPU unless
            moved). ``"cuda"`` under ``torchrun`` is ``cuda:{LOCAL_RANK}``.
        chunk_size: showers read at a time from a file (memory: two chunks of
            ``chunk_size x V`` float32 values).
        fit_showers: showers of a file the preprocessing is fitted on.

    Returns:
        The history: per stage the training and validation loss per epoch,
        the best epoch and the seconds spent.
    """
    plan = plan or TrainingPlan()
    plan.check()
    dev = model.device if device is None else resolve_device(device)
    if plan.batch_size % world_size():
        raise ConfigError(
            f"batch_size {plan.batch_size} must be a multiple of the {world_size()} ranks: each "
            "rank takes an equal slice of every batch"
        )
    if not is_main():  # under torchrun rank 0 alone prints and writes the checkpoint
        progress, log = False, None
    if model.student is not None:
        check_pair(model.teacher, model.student)
    from_file = not isinstance(showers, Showers)
    if from_file:
        showers = Path(showers)
        if not showers.exists():
            raise InputError(f"no shower file {showers}: simulate one first "
                             "(hepflows calo simulate) or check the path")  # fmt: skip
    n = count_showers(showers) if from_file else len(showers)
    n_val = max(1, int(plan.val_fraction * n))
    if n - n_val < plan.batch_size:
        raise InputError(
            f"{n} showers leave {n - n_val} for training, fewer than one batch of "
            f"{plan.batch_size}: simulate more showers or lower the batch size"
        )
    model.to(dev)
    loaded, state = _state(checkpoint, type(model))
    if state:
        if state.get("plan") != asdict(plan):
            raise CheckpointError(
                f"{checkpoint} was written with another training plan ({state.get('plan')}); "
                "use another checkpoint path or the same settings"
            )
        if loaded.config != model.config:
            raise CheckpointError(
                f"{checkpoint} holds a model of another configuration: use another checkpoint "
                "path or the same model settings"
            )
        model.load_state_dict(loaded.state_dict())
    if from_file:  # training rows first, the validation rows at the end of the file
        def read(part: Showers) -> tuple[Tensor, Tensor]:
            return model.tensors(part, device=dev)

        train_data = FileBatches(showers, 0, n - n_val, read, model.geometry, chunk_size)
        val_data = FileBatches(showers, n - n_val, n, read, model.geometry, chunk_size)
    else:
        # the split on the CPU (the same on every device), then the parts to the device
        split = torch.randperm(n, generator=torch.Generator().manual_seed(plan.seed),
                               device="cpu")  # fmt: skip
        vox, e = model.tensors(showers, device="cpu")
        val_data = MemoryBatches(vox[split[:n_val]].to(dev), e[split[:n_val]].to(dev))
        train_data = MemoryBatches(vox[split[n_val:]].to(dev), e[split[n_val:]].to(dev))
        del vox, e
    if not state:
        fit_on = train_data.head(fit_showers) if from_file else showers
        model.fit_preprocessing(fit_on, seed=plan.seed)
        state = {"plan": asdict(plan), "history": {}, "stage": STAGES[0], "epoch": 0}
    if state["stage"] == "done":
        return state["history"]
    history: dict[str, Any] = state["history"]

    for stage in STAGES[STAGES.index(state["stage"]) :]:
        epochs = int(plan.epochs.get(stage, 0))
        if stage == "student" and model.student is None:
            continue
        engine_options = {"optimizer": optimizer, "scheduler": scheduler}
        _train_stage(model, stage, epochs, plan, state, train_data, val_data,
                     checkpoint, progress, log, engine_options, callbacks)  # fmt: skip
        next_stage = STAGES[STAGES.index(stage) + 1] if stage != STAGES[-1] else "done"
        state.update(stage=next_stage, epoch=0, engine={})
        if checkpoint is not None and is_main():
            model.save(checkpoint, state)
    model.eval()
    return history


def _train_stage(
    model: CaloFlow,
    stage: str,
    epochs: int,
    plan: TrainingPlan,
    state: dict[str, Any],
    train_data: MemoryBatches | FileBatches,
    val_data: MemoryBatches | FileBatches,
    checkpoint: str | os.PathLike | None,
    progress: bool,
    log: Any,
    engine_options: dict[str, Any],
    extra_callbacks: Sequence[Callback],
) -> None:
    """One stage on the training engine: epochs of shuffled batches, validation, best epoch kept."""
    dev = model.device
    flow = _stage_flow(model, stage)
    steps = math.ceil(len(train_data) / plan.batch_size)
    h = state["history"].setdefault(
        stage, {"train": [], "val": [], "best_epoch": -1, "seconds": 0.0}
    )
    resumed = state["stage"] == stage and state["epoch"] > 0
    if stage == "student" and not resumed and plan.student_from_teacher:
        # The student's blocks mirror the teacher's: start from its weights (also with
        # 0 student epochs, as before the engine).
        model.student.load_state_dict(model.teacher.state_dict())
    if epochs == 0:
        return
    # Cosine decay per epoch to 1 % of the initial rate; a NaN loss stops the run.
    engine = Engine(flow.parameters(), lr=plan.lr[stage], total_steps=epochs * steps,
                    floor=0.01, period=steps, nonfinite="raise", name=stage,
                    **engine_options)  # fmt: skip
    best = {k: v.clone() for k, v in flow.state_dict().items()}
    if resumed and checkpoint is not None:
        tensors = load_file(str(checkpoint))
        engine.load_state(tensors, state.get("engine", {}))
        engine.iteration = state["epoch"] * steps
        engine.step_count = max(engine.step_count, engine.iteration)
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or best
    epoch_state: dict[str, Any] = {}  # order, generator, loss sum and start of this epoch

    def batches(epoch: int) -> tuple[Iterator[tuple[Tensor, Tensor]], torch.Generator]:
        if epoch_state.get("epoch") != epoch:
            g = generator_on(dev, plan.seed * 1000 + STAGES.index(stage) * 100 + epoch)
            epoch_state.update(epoch=epoch, batches=train_data.epoch(plan.batch_size, g), g=g,
                               total=0.0, t0=time.perf_counter())  # fmt: skip
            flow.train()
        return epoch_state["batches"], epoch_state["g"]

    def iteration(i: int) -> dict[str, float]:
        batches_, g = batches(i // steps)
        vox, e = next(batches_)
        # this rank's slice of the global batch (the engine averages the ranks' gradients)
        part = slice(rank(), None, world_size())
        loss = engine.step(_loss(model, stage, vox, e, g, part))
        epoch_state["total"] += loss
        return {"loss": loss}

    def end_of_epoch(epoch: int) -> dict[str, float]:
        nonlocal best
        flow.eval()
        with torch.no_grad():
            gv = generator_on(dev, plan.seed + 7)
            val = sum(_loss(model, stage, vox, e, gv).item() * len(vox)
                      for vox, e in val_data.blocks(2000)) / len(val_data)  # fmt: skip
        seconds = time.perf_counter() - epoch_state["t0"]
        train_loss = epoch_state["total"] / steps
        h["train"].append(train_loss)
        h["val"].append(val)
        h["seconds"] += seconds
        if val <= min(h["val"]):
            h["best_epoch"] = epoch
            best = {k: v.clone() for k, v in flow.state_dict().items()}
        if log is not None:
            log(f"{stage} epoch {epoch + 1}/{epochs}: train {train_loss:.4f}, "
                f"val {val:.4f} ({seconds:.1f} s)")  # fmt: skip
        state.update(stage=stage, epoch=epoch + 1)
        return {"train": train_loss, "val": val}

    def save() -> None:
        tensors, state["engine"] = engine.state()
        model.save(checkpoint, state, {f"best.{k}": v for k, v in best.items()} | tensors)

    callbacks = [*extra_callbacks]
    if checkpoint is not None and is_main():
        callbacks.append(Checkpoint(save, at_epoch=True))
    engine.run(iteration, epochs * steps, callbacks=callbacks,
               progress=stage if progress else None, per_epoch=steps,
               end_of_epoch=end_of_epoch)  # fmt: skip
    flow.load_state_dict(best)
