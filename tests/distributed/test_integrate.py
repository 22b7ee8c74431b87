"""Integration across ranks (gloo, 2 CPU processes): pooled estimates and their pulls."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from distributed_launch import run


def test_two_ranks_pool_into_the_one_process_formula_and_pull_right(tmp_path: Path) -> None:
    ranks = run("integrate", tmp_path, 2)
    a, b = ranks
    assert a["world"] == 2 and a["runs"] == b["runs"] and a["one"] == b["one"]
    # unstratified: exactly the plain Monte-Carlo formula on every rank's points
    w = a["w"].double()
    value, error, calls = a["one"]
    assert calls == 3001 == len(w)
    assert math.isclose(value, float(w.mean()), rel_tol=1e-12)
    assert math.isclose(error, float(w.std() / math.sqrt(len(w))), rel_tol=1e-9)
    # 30 seeds: the pooled value and error are an unbiased estimate with the right spread
    runs = torch.tensor(a["runs"], dtype=torch.float64)
    for col in (0, 2):
        pulls = (runs[:, col] - a["exact"]) / runs[:, col + 1]
        assert abs(float(pulls.mean())) < 4 / math.sqrt(len(pulls)), pulls
        assert 0.6 < float(pulls.std()) < 1.5, pulls
    assert int(runs[0, 4]) == 4000  # calls of the whole job, not of one rank


def test_training_on_two_ranks_keeps_them_identical_and_integrates(tmp_path: Path) -> None:
    a, b = run("train", tmp_path, 2)
    for p, q in zip(a["params"], b["params"], strict=True):
        assert torch.equal(p, q)
    assert a["result"] == b["result"]
    value, error, _ = a["result"]
    assert abs(value - a["exact"]) < 5 * error
    assert error / value < 0.02
