"""Trainers are objects: every one saves and loads through one path, new ones plug in."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from hepflows.errors import CheckpointError, ConfigError
from hepflows.integrate import (
    FAB,
    Channel,
    FABIntegrator,
    ImportanceTrainer,
    NeuralIntegrator,
    PathwiseKL,
    ReparamKLIntegrator,
    Trainer,
    camel,
)
from hepflows.training import CSVLogger, History


def bumps(x: torch.Tensor) -> torch.Tensor:
    """Two Gaussian bumps on the unit square, differentiable, positive."""
    a = torch.exp(-((x - 0.3) ** 2).sum(1) / 0.02)
    b = torch.exp(-((x - 0.7) ** 2).sum(1) / 0.02)
    return a + b + 1e-3


SMALL = dict(hidden=(8, 8), transforms=2)
TRAINERS = {
    "variance": lambda: ImportanceTrainer(batch_size=128, buffered_steps=2),
    "moment8": lambda: ImportanceTrainer(loss="moment8", batch_size=128, buffered_steps=2),
    "kl": lambda: ImportanceTrainer(loss="kl", batch_size=128, buffered_steps=1),
    "fab": lambda: FAB(batch_size=64, replay_steps=2),
    "pathwise": lambda: PathwiseKL(batch_size=64),
}


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_trainer_saves_and_loads_through_one_path(tmp_path, name):
    integ = NeuralIntegrator(bumps, 2, seed=3, trainer=TRAINERS[name](), vegas=False, **SMALL)
    integ.train(calls=2_000, progress=False)
    path = tmp_path / f"{name}.safetensors"
    integ.save(path)
    loaded = NeuralIntegrator.load(path, bumps)  # one code path, whatever the trainer
    assert type(loaded.trainer) is type(integ.trainer)
    assert loaded.trainer.options() == integ.trainer.options()
    assert (loaded.calls, loaded.grad_calls) == (integ.calls, integ.grad_calls)
    a = integ.integrate(calls=3_000)
    b = loaded.integrate(calls=3_000)
    assert (a.value, a.error) == (b.value, b.error)  # bit-identical: weights and generator state


def test_presets_load_their_own_files_and_refuse_others(tmp_path):
    fab = FABIntegrator(bumps, 2, seed=1, batch_size=64, replay_steps=2, **SMALL)
    fab.train(calls=1_000, progress=False)
    fab.save(tmp_path / "fab.safetensors")
    rkl = ReparamKLIntegrator(bumps, 2, seed=1, batch_size=64, **SMALL)
    rkl.train(calls=1_000, progress=False)
    rkl.save(tmp_path / "rkl.safetensors")
    assert isinstance(ReparamKLIntegrator.load(tmp_path / "rkl.safetensors", bumps).trainer,
                      PathwiseKL)  # fmt: skip
    assert isinstance(NeuralIntegrator.load(tmp_path / "fab.safetensors", bumps).trainer, FAB)
    loaded = FABIntegrator.load(tmp_path / "fab.safetensors", bumps)
    assert loaded.step_sizes == fab.step_sizes and torch.equal(loaded.replay.x, fab.replay.x)
    with pytest.raises(CheckpointError, match="pathwise-kl"):
        FABIntegrator.load(tmp_path / "rkl.safetensors", bumps)


def test_pathwise_training_resumes_from_a_checkpoint(tmp_path):
    kw = dict(seed=5, batch_size=32, **SMALL)
    full = ReparamKLIntegrator(bumps, 2, **kw)
    full.train(calls=64 * 6, progress=False)
    ckpt = tmp_path / "ckpt.safetensors"
    killed = ReparamKLIntegrator(bumps, 2, **kw)
    seen = []

    def dying(x):
        seen.append(1)
        if len(seen) > 4:
            raise KeyboardInterrupt
        return bumps(x)

    killed.f = dying
    with pytest.raises(KeyboardInterrupt):
        killed.train(calls=64 * 6, progress=False, checkpoint=ckpt, checkpoint_every=2)
    resumed = ReparamKLIntegrator(bumps, 2, **kw)
    history = resumed.train(calls=64 * 6, progress=False, checkpoint=ckpt)
    assert len(history.loss) == 2  # iterations 5 and 6 only
    x = torch.rand(100, 2, generator=torch.Generator().manual_seed(0)).to(full.flow.dtype)
    with torch.no_grad():
        torch.testing.assert_close(resumed.flow.log_prob(x), full.flow.log_prob(x))


@dataclass
class SquaredError(Trainer):
    """A new method in a few lines: regress log q on log f (not a good trainer, a plug-in test)."""

    name = "test-squared-error"
    lr: float = 1e-2

    def iteration(self, integ, engine, batch, history):
        points = integ.draw(batch)  # public: fresh points, counted
        log_f = torch.log(points.fj.clamp_min(1e-300))
        loss = engine.step(((integ.log_q(points) - log_f + log_f.mean()) ** 2).mean())
        history.loss.append(loss)
        return {"loss": loss}


def test_a_new_trainer_plugs_in_and_round_trips(tmp_path):
    integ = NeuralIntegrator(bumps, 2, seed=0, trainer=SquaredError(batch_size=100), vegas=False,
                             **SMALL)  # fmt: skip
    history = integ.train(calls=1_000, progress=False)
    assert len(history.loss) == 10 and integ.calls == 1_000
    integ.save(tmp_path / "custom.safetensors")
    loaded = NeuralIntegrator.load(tmp_path / "custom.safetensors", bumps)
    assert isinstance(loaded.trainer, SquaredError) and loaded.trainer.batch_size == 100


def test_user_optimizer_scheduler_and_callbacks(tmp_path):
    integ = NeuralIntegrator(camel(2), 2, seed=0, vegas=False, batch_size=200, buffered_steps=1,
                             **SMALL)  # fmt: skip
    lrs = []
    log = CSVLogger(tmp_path / "log.csv")

    def sgd(params, lr):
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    def step_lr(opt, total):
        return torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    class LR(History):
        def on_iteration(self, engine, logs):
            lrs.append(engine.learning_rate())

    integ.train(calls=1_000, progress=False, optimizer=sgd, scheduler=step_lr,
                callbacks=[log, LR()])  # fmt: skip
    assert isinstance(integ._engine.optimizer, torch.optim.SGD)
    # 2 optimiser steps per iteration, StepLR halves every 2 steps
    assert lrs == pytest.approx([5e-3 * 0.5**k for k in range(1, 6)])
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["iteration", "loss"] and len(rows) == 6


def test_trainer_options_are_checked():
    with pytest.raises(ConfigError, match="option does not fit"):
        NeuralIntegrator(camel(2), 2, trainer="fab", buffered_steps=3)
    with pytest.raises(ConfigError, match="one channel"):
        two = [Channel(name="a"), Channel(name="b")]
        NeuralIntegrator(camel(2), 2, trainer=FAB(), channels=two)
    with pytest.raises(ConfigError, match="either trainer"):
        NeuralIntegrator(camel(2), 2, trainer="fab", loss="kl")
    with pytest.raises(ConfigError, match="VEGAS"):
        NeuralIntegrator(camel(2), 2, trainer=PathwiseKL(), vegas=True)
    with pytest.raises(ConfigError, match="lr"):
        FAB(lr=-1.0)
    assert math.isclose(NeuralIntegrator(camel(2), 2, trainer="fab").trainer.lr, 1e-2)
    assert ImportanceTrainer(buffered_steps=0).steps_per_iteration() == 1  # fresh steps only
    with pytest.raises(ConfigError, match="buffer_batches must be an int >= 1"):
        ImportanceTrainer(buffer_batches=0)
    with pytest.raises(ConfigError, match="buffered_steps must be an int >= 0"):
        ImportanceTrainer(buffered_steps=-1)
    named = NeuralIntegrator(camel(2), 2, trainer="importance", buffered_steps=2).trainer
    assert (named.loss, named.buffered_steps) == ("variance", 2)


def test_a_file_of_the_earlier_flat_layout_loads_with_its_trainer(tmp_path):
    """Integrators saved before trainers were objects kept loss/lr/... flat in the config."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    integ = NeuralIntegrator(bumps, 2, seed=3, loss="moment8", vegas=False, batch_size=128,
                             buffered_steps=2, **SMALL)  # fmt: skip
    integ.train(calls=1_000, progress=False)
    path = tmp_path / "new.safetensors"
    integ.save(path)
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    config = json.loads(meta["config"])
    trainer = config.pop("trainer")["options"]
    config.update(loss=trainer["loss"], lr=trainer["lr"], batch_size=trainer["batch_size"],
                  buffered_steps=trainer["buffered_steps"],
                  buffer_batches=trainer["buffer_batches"])  # fmt: skip
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata={**meta, "config": json.dumps(config)})
    loaded = NeuralIntegrator.load(old, bumps)
    assert loaded.trainer == integ.trainer  # ImportanceTrainer(loss="moment8", ...)
    assert loaded.integrate(calls=2_000).value == integ.integrate(calls=2_000).value
