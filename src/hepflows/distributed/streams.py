"""Random streams that depend on what is computed, not on who computes it.

A sharded job draws from streams keyed by (seed, block): block b of a run
gets the same numbers whichever rank generates it and however many ranks
there are, so the merged output is the same event set for 1 or N ranks.
Training, where each rank must see different points, keys by (seed, rank).
Keys go through ``numpy.random.SeedSequence``, whose spawned seeds are
independent for practical purposes (unlike ``seed + block``, which makes
neighbouring runs share streams).
"""

from __future__ import annotations

import numpy as np
import torch

#: Stream families, so that blocks and ranks of one seed never share a stream.
BLOCK, RANK = 1, 2


def block_seed(seed: int, block: int, family: int = BLOCK) -> int:
    """A 63-bit seed for (seed, block) from ``numpy.random.SeedSequence``."""
    if seed < 0 or block < 0:
        raise ValueError(f"seed and block must be >= 0, got {seed}, {block}")
    words = np.random.SeedSequence([int(seed), int(family), int(block)]).generate_state(
        2, np.uint32)
    return int((int(words[0]) << 31) ^ int(words[1])) & (2**63 - 1)


def block_generator(seed: int, block: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The ``torch.Generator`` of block ``block`` of a run seeded ``seed``."""
    return torch.Generator(device=device).manual_seed(block_seed(seed, block, BLOCK))


def rank_generator(seed: int, rank: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The ``torch.Generator`` of rank ``rank`` of a run seeded ``seed`` (e.g. training points)."""
    return torch.Generator(device=device).manual_seed(block_seed(seed, rank, RANK))
