"""Training CaloFlow (hepflows.calo.training) through ``hepflows.calo.train`` and ``TrainingPlan``.

Complements tests/calo/test_caloflow.py (learning, a cut in the teacher stage):
plan validation, history and log bookkeeping, stages of zero epochs, the
student's start from the teacher, a cut in the first stage, and checkpoint
mismatches. Tiny flows (one block, 8 hidden units) on 400 toy showers.
"""

from __future__ import annotations

from functools import cache

import pytest
import torch

from hepflows import CheckpointError, ConfigError, InputError
from hepflows.calo import CaloFlow, Showers, ToySimulator, TrainingPlan, train

TINY = {"transforms": 1, "bins": 4, "hidden": [8]}


@cache
def showers() -> Showers:
    return ToySimulator("calogan", seed=11).simulate(400)


def model(seed: int = 0, student: bool = False, **flow2) -> CaloFlow:
    # the same seed gives the same initial weights
    return CaloFlow("calogan", flow1=TINY, flow2={**TINY, **flow2}, student=student, seed=seed)


def plan(flow1: int = 2, teacher: int = 1, student: int = 0, **kw) -> TrainingPlan:
    return TrainingPlan(epochs={"flow1": flow1, "teacher": teacher, "student": student},
                        batch_size=100, **kw)  # fmt: skip


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------ the plan
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": {"flow1": 1, "teacher": -2, "student": 1}}, r"epochs\['teacher'\] must be"),
        ({"epochs": {"flow1": 1, "teacher": 1, "student": -1}}, r"epochs\['student'\]"),
        ({"lr": {"flow1": 1e-3, "teacher": 0.0, "student": 1e-3}}, r"lr\['teacher'\] must be > 0"),
        ({"lr": {"flow1": -1e-3, "teacher": 1e-3, "student": 1e-3}}, r"lr\['flow1'\]"),
        ({"batch_size": 1}, "batch_size must be >= 2, got 1"),
        ({"val_fraction": 0.0}, r"val_fraction must lie in \(0, 0.5\)"),
        ({"val_fraction": 0.5}, r"val_fraction must lie in \(0, 0.5\)"),
    ],
)  # fmt: skip
def test_bad_plans_are_config_errors(kwargs, message):
    bad = TrainingPlan(**kwargs)
    with pytest.raises(ConfigError, match=message):
        bad.check()
    m = model()
    with pytest.raises(ConfigError, match=message):
        train(m, showers(), bad, progress=False)
    assert not bool(m.fitted)  # refused before any work


def test_default_plan_is_valid():
    p = TrainingPlan()
    p.check()
    assert set(p.epochs) == set(p.lr) == {"flow1", "teacher", "student"}


def test_too_few_showers_for_one_batch():
    # 400 showers, 10 % held out: 360 left, fewer than one batch of 361
    with pytest.raises(InputError, match="400 showers leave 360 for training.*361"):
        train(model(), showers(), TrainingPlan(batch_size=361), progress=False)


def test_an_lr_dict_without_every_stage_is_a_clear_error_or_works():
    p = plan(flow1=1, teacher=1, lr={"flow1": 1e-3})
    try:
        train(model(), showers(), p, progress=False)
    except ConfigError as err:
        assert "teacher" in str(err)


# ------------------------------------------------------------------ history and logs
def test_history_log_lines_and_best_epoch():
    m = model()
    lines: list[str] = []
    history = train(m, showers(), plan(flow1=3, teacher=2), progress=False, log=lines.append)
    assert set(history) == {"flow1", "teacher"}  # no student model: no student stage
    assert [len(history[s]["train"]) for s in ("flow1", "teacher")] == [3, 2]
    assert [len(history[s]["val"]) for s in ("flow1", "teacher")] == [3, 2]
    for h in history.values():
        val = h["val"]
        assert h["best_epoch"] == max(i for i, v in enumerate(val) if v == min(val))
        assert h["seconds"] > 0
        assert all(isinstance(v, float) for v in h["train"] + val)
    prefixes = [line.split(":")[0] for line in lines]
    assert prefixes == ["flow1 epoch 1/3", "flow1 epoch 2/3", "flow1 epoch 3/3",
                        "teacher epoch 1/2", "teacher epoch 2/2"]  # fmt: skip
    assert (
        f"train {history['flow1']['train'][0]:.4f}, val {history['flow1']['val'][0]:.4f}"
        in (lines[0])
    )
    assert not m.training and not m.flow1.training  # left in eval mode
    # flow I learns: its validation loss fell over three epochs
    assert history["flow1"]["val"][-1] < history["flow1"]["val"][0]


def test_a_stage_of_zero_epochs_leaves_its_flow_untouched():
    m, fresh = model(seed=4), model(seed=4)
    history = train(m, showers(), plan(flow1=1, teacher=0), progress=False)
    assert history["teacher"] == {"train": [], "val": [], "best_epoch": -1, "seconds": 0.0}
    assert same_weights(m.teacher, fresh.teacher)
    assert not same_weights(m.flow1, fresh.flow1)


def close_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 1e-8) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.allclose(sa[k], sb[k], rtol=0, atol=atol) for k in sa)


def test_one_epoch_of_every_stage_and_the_student_starts_from_the_teacher():
    """With a vanishing student learning rate the student ends where it started."""
    lr = {"flow1": 2e-3, "teacher": 1e-3, "student": 1e-12}
    m = model(seed=5, student=True)
    history = train(m, showers(), plan(flow1=1, teacher=1, student=1, lr=lr), progress=False)
    assert {s: len(h["val"]) for s, h in history.items()} == {"flow1": 1, "teacher": 1,
                                                              "student": 1}  # fmt: skip
    assert all(h["best_epoch"] == 0 for h in history.values())
    assert close_weights(m.student, m.teacher)  # copied block by block
    assert 0 <= history["student"]["val"][0] < 1e-3  # a copy distils at almost no loss
    m2, fresh = model(seed=5, student=True), model(seed=5, student=True)
    train(m2, showers(), plan(flow1=1, teacher=1, student=1, lr=lr, student_from_teacher=False),
          progress=False)  # fmt: skip
    assert close_weights(m2.student, fresh.student)
    assert not close_weights(m2.student, m2.teacher, atol=1e-3)


# ------------------------------------------------------------------ checkpoints
class _Cut(Exception):
    pass


def test_a_cut_in_the_first_stage_resumes_to_the_uninterrupted_result(tmp_path):
    p = plan(flow1=3, teacher=1)
    full = model(seed=7)
    full_history = train(full, showers(), p, progress=False)

    def cut_in_flow1_epoch_2(line: str) -> None:
        if line.startswith("flow1 epoch 2/"):  # before epoch 2 is saved
            raise _Cut

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(_Cut):
        train(model(seed=7), showers(), p, checkpoint=ckpt, progress=False,
              log=cut_in_flow1_epoch_2)  # fmt: skip
    assert [f.name for f in tmp_path.iterdir()] == ["run.ckpt"]  # atomic: no temp file left
    lines: list[str] = []
    resumed = model(seed=99)  # its own weights are replaced by the checkpoint's
    history = train(resumed, showers(), p, checkpoint=ckpt, progress=False, log=lines.append)
    assert lines[0].startswith("flow1 epoch 2/3")  # epoch 1 was not run again
    for stage in ("flow1", "teacher"):
        assert history[stage]["train"] == full_history[stage]["train"], stage
        assert history[stage]["val"] == full_history[stage]["val"], stage
        assert history[stage]["best_epoch"] == full_history[stage]["best_epoch"]
    assert same_weights(resumed, full)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    train(model(), showers(), plan(flow1=1, teacher=0), checkpoint=ckpt, progress=False)
    with pytest.raises(CheckpointError, match="another configuration"):
        train(model(hidden=[12]), showers(), plan(flow1=1, teacher=0), checkpoint=ckpt,
              progress=False)  # fmt: skip
    with pytest.raises(CheckpointError, match="another training plan"):
        train(model(), showers(), plan(flow1=2, teacher=0), checkpoint=ckpt, progress=False)


def test_user_optimizer_scheduler_and_callbacks_reach_every_stage():
    from hepflows.training import History

    log = History()
    train(model(seed=2), showers(), plan(flow1=1, teacher=2), progress=False,
          optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr), scheduler=None,
          callbacks=[log])  # fmt: skip
    steps = 4  # 400 showers, 10 % held out, batches of 100
    assert len(log.iterations) == 3 * steps and [e["epoch"] for e in log.epochs] == [0, 0, 1]
    assert all({"train", "val"} <= set(e) for e in log.epochs)


def test_zero_student_epochs_still_start_the_student_from_the_teacher():
    """As before the training engine: the copy happens whatever the student's epochs."""
    m = model(seed=6, student=True)
    history = train(m, showers(), plan(flow1=1, teacher=1, student=0), progress=False)
    assert history["student"]["val"] == []
    assert same_weights(m.student, m.teacher)
