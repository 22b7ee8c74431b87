"""The training engine: schedule, clipping, NaN policy, callbacks, optimisers, resumable state."""

from __future__ import annotations

import math

import pytest
import torch

from hepflows.errors import ConfigError, InputError
from hepflows.training import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    Engine,
    History,
    KeepBest,
    cosine,
)


def quadratic(seed: int = 0) -> tuple[torch.nn.Parameter, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.Parameter(torch.randn(4, generator=g)), torch.randn(4, generator=g)


def test_cosine_schedule_runs_from_lr_to_the_floor():
    assert cosine(0, 10) == 1.0 and cosine(10, 10) == pytest.approx(0.0)
    assert cosine(5, 10) == pytest.approx(0.5)
    assert cosine(10, 10, floor=0.01) == pytest.approx(0.01) and cosine(20, 10, 0.01) == 0.01
    w, _ = quadratic()
    engine = Engine([w], lr=0.1, total_steps=4)
    seen = []
    for _ in range(4):
        engine.step((w**2).sum())
        seen.append(engine.learning_rate())
    assert seen == pytest.approx([0.1 * cosine(k, 4) for k in range(4)])


def test_the_engine_minimises_and_clips():
    w, target = quadratic()
    engine = Engine([w], lr=0.05, total_steps=300, clip=1.0)
    for _ in range(300):
        engine.step(((w - target) ** 2).sum())
    assert torch.allclose(w.detach(), target, atol=1e-3)
    # clipping: one SGD step with a huge gradient moves by at most lr * clip
    v = torch.nn.Parameter(torch.zeros(3))
    sgd = Engine([v], lr=1.0, total_steps=1, clip=0.5, scheduler=None,
                 optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr))  # fmt: skip
    sgd.step((1e6 * v).sum())
    assert v.detach().norm().item() == pytest.approx(0.5)


def test_nonfinite_losses_are_skipped_or_raise():
    w, _ = quadratic()
    engine = Engine([w], lr=0.1, total_steps=3)
    before = w.detach().clone()
    assert math.isnan(engine.step((w * math.nan).sum()))
    assert engine.skipped == 1 and torch.equal(w.detach(), before)
    strict = Engine([w], lr=0.1, total_steps=3, nonfinite="raise", name="teacher")
    with pytest.raises(InputError, match="teacher: the loss is inf"):
        strict.step((w**2).sum() * math.inf)


def test_callbacks_log_checkpoint_and_stop_early(tmp_path):
    w, target = quadratic()
    engine = Engine([w], lr=0.05, total_steps=100)
    log = CSVLogger(tmp_path / "log.csv")
    saves = []
    order = []

    class Order(Callback):
        def on_start(self, engine):
            order.append("start")

        def on_end(self, engine):
            order.append("end")

    def iteration(i):
        return {"loss": engine.step(((w - target) ** 2).sum())}

    vals = iter([3.0, 2.0, 2.5, 2.4, 2.6, 1.0])
    engine.run(iteration, 100, callbacks=[log, Checkpoint(lambda: saves.append(engine.iteration),
                                                          every=4, at_epoch=False),
                                          EarlyStopping("val", patience=3), Order()],
               per_epoch=2, end_of_epoch=lambda epoch: {"val": next(vals)})  # fmt: skip
    # best 2.0 in the second epoch, then 3 epochs without improvement: stop after the fifth
    assert engine.iteration == 10 and len(log.iterations) == 10 and len(log.epochs) == 5
    assert saves == [4, 8] and order == ["start", "end"]
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "iteration,loss" and len(rows) == 11
    assert log.column("loss")[-1] < log.column("loss")[0]


def test_user_optimizer_and_scheduler_factories():
    w, _ = quadratic()
    engine = Engine([w], lr=1.0, total_steps=10,
                    optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr),
                    scheduler=lambda opt, total: torch.optim.lr_scheduler.ExponentialLR(opt, 0.5))
    for _ in range(3):
        engine.step((w**2).sum())
    assert isinstance(engine.optimizer, torch.optim.SGD)
    assert engine.learning_rate() == pytest.approx(0.125)
    with pytest.raises(ConfigError, match="scheduler"):
        Engine([w], lr=1.0, total_steps=1, scheduler="linear")
    with pytest.raises(ConfigError, match="nothing to train"):
        Engine([torch.zeros(2)], lr=1.0, total_steps=1)
    with pytest.raises(ConfigError, match="learning rate"):
        Engine([w], lr=-1.0, total_steps=1)


def test_state_round_trip_resumes_bitwise():
    def make():
        w, target = quadratic(3)
        return w, target, Engine([w], lr=0.05, total_steps=20)

    w1, t1, e1 = make()
    history = History()
    e1.run(lambda i: {"loss": e1.step(((w1 - t1) ** 2).sum())}, 20, callbacks=[history])
    w2, t2, e2 = make()
    e2.run(lambda i: {"loss": e2.step(((w2 - t2) ** 2).sum())}, 8)
    tensors, meta = e2.state()
    w3, t3, e3 = make()
    with torch.no_grad():
        w3.copy_(w2)
    e3.load_state(tensors, meta)
    assert (e3.iteration, e3.step_count) == (8, 8)
    e3.run(lambda i: {"loss": e3.step(((w3 - t3) ** 2).sum())}, 20)
    assert torch.equal(w3.detach(), w1.detach())


def test_a_period_makes_the_cosine_tick_per_epoch():
    w, _ = quadratic()
    engine = Engine([w], lr=1.0, total_steps=12, floor=0.01, period=4)  # 3 epochs of 4 steps
    rates = []
    for _ in range(12):
        engine.step((w**2).sum())
        rates.append(engine.learning_rate())
    expected = [0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (k // 4) / 3)) for k in range(12)]
    assert rates == pytest.approx(expected)


def test_keep_best_puts_back_the_weights_of_the_best_epoch():
    module = torch.nn.Linear(2, 1)
    engine = Engine(module.parameters(), lr=0.1, total_steps=10)
    snapshots = []

    def iteration(_: int) -> None:
        engine.step((module(torch.ones(1, 2)) ** 2).sum())
        snapshots.append(module.weight.detach().clone())

    keep = KeepBest(module)
    vals = iter([3.0, 1.0, 2.0, 2.5, 4.0])
    engine.run(iteration, 10, callbacks=[keep], per_epoch=2,
               end_of_epoch=lambda epoch: {"val": next(vals)})  # fmt: skip
    # the second epoch (iterations 2, 3) was best: its end-of-epoch weights are back
    assert keep.best == 1.0 and keep.best_epoch == 1
    assert torch.equal(module.weight, snapshots[3])
    assert not torch.equal(module.weight, snapshots[-1])
    with pytest.raises(ConfigError, match="monitors 'val'"):
        Engine(module.parameters(), lr=0.1, total_steps=2).run(
            lambda i: None, 2, callbacks=[KeepBest(module)], per_epoch=1,
            end_of_epoch=lambda epoch: {"loss": 1.0})  # fmt: skip
