"""Training on torch.distributed (gloo, 2 CPU processes) equals one process on the global batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distributed_launch import run


def test_two_ranks_take_the_steps_of_one_process_on_the_global_batch(tmp_path: Path) -> None:
    one = run("fit", tmp_path, 1)[0]
    two = run("fit", tmp_path, 2)
    assert one["world"] == 1 and two[0]["world"] == 2
    for a, b in zip(two[0]["params"], two[1]["params"], strict=True):
        assert torch.equal(a, b)  # the ranks stay identical
    for a, b in zip(one["params"], two[0]["params"], strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    # the ranks' losses are halves of the global batch: their mean is the global loss
    mean_loss = [(x + y) / 2 for x, y in zip(two[0]["losses"], two[1]["losses"], strict=True)]
    assert mean_loss == pytest.approx(one["losses"], rel=1e-5)



def test_caloflow_stages_on_two_ranks_equal_one_process(tmp_path: Path) -> None:
    """Each rank trains on its half of every batch: after one epoch of flow I and of the
    teacher the weights equal one process' on the whole batches; rank 0 wrote the checkpoint."""
    one = run("calo", tmp_path, 1)[0]
    two = run("calo", tmp_path, 2)
    assert one["moved"] > 0.05  # the training moved the weights far beyond the tolerance
    for a, b in zip(two[0]["params"], two[1]["params"], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(one["params"], two[0]["params"], strict=True):
        # float32 sums over two half batches instead of one batch: rounding only
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert two[0]["val"] == two[1]["val"]
    for stage, val in one["val"].items():
        assert two[0]["val"][stage] == pytest.approx(val, rel=1e-4)
    assert one["ckpt"] and two[0]["ckpt"]


def test_a_killed_rank_is_restarted_and_every_rank_resumes_from_the_checkpoint(
    tmp_path: Path,
) -> None:
    """torchrun --max-restarts 1 restarts both ranks after rank 1 dies; they resume from
    rank 0's checkpoint (the restarted group gets a fresh store prefix per attempt)."""
    a, b = run("resume", tmp_path, 2, max_restarts=1)
    assert a["killed"] and a["restart"] == 1 == b["restart"]
    # rank 1 died after iteration 12; the last checkpoint was written at 10
    total = a["plan"]["iterations"]
    assert a["plan"]["done"] == 1
    assert a["iterations_this_attempt"] == b["iterations_this_attempt"] < total
    for p, q in zip(a["params"], b["params"], strict=True):
        assert torch.equal(p, q)
    value, error = a["result"]
    assert abs(value - a["exact"]) < 5 * error
