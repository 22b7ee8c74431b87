"""Shared set-up of the test suite: threads, seeds, and the helper modules in tests/.

The helper modules (``toys``, ``helpers``) live next to this file; pytest's default
import mode only puts each test file's own folder on ``sys.path``, so this folder is
added here (pyproject.toml stays untouched).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The test machines have 2 cores; more threads only add contention.
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Every test starts from the same global torch RNG state, whatever ran before it."""
    torch.manual_seed(0)
