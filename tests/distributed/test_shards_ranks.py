"""Sharded generation on 2 torchrun ranks: blocks claimed from a shared counter.

Each rank takes the next unfinished block when it is free (``shared_counter`` in the
process group's store): every block is made exactly once, by whichever rank, and the
merged file holds the same events as one process's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from distributed_launch import run
from hepflows.integrate import NeuralIntegrator, camel
from hepflows.io.lheh5 import read_columns


def test_two_ranks_claim_every_block_once_and_merge_the_events_of_one(tmp_path: Path) -> None:
    integ = NeuralIntegrator(camel(2), 2, seed=0)
    integ.train(calls=20_000, progress=False)
    integ.save(tmp_path / "camel.safetensors")
    one = run("shards", tmp_path, 1)[0]
    two = run("shards", tmp_path, 2)
    assert one["generated"] == list(range(8)) and one["skipped"] == []
    claimed = two[0]["generated"] + two[1]["generated"]
    assert sorted(claimed) == list(range(8)), claimed  # each block once, none missing
    cols1, rows1 = read_columns(tmp_path / "all1.h5")
    cols2, rows2 = read_columns(tmp_path / "all2.h5")
    assert cols1.keys() == cols2.keys() and len(cols1["NOMINAL"]) == 800
    assert all(np.array_equal(cols1[k], cols2[k], equal_nan=True) for k in cols1)
    assert np.array_equal(rows1, rows2)
