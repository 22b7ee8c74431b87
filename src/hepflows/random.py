"""Randomness without side effects: seeds for objects that own their generators.

Library objects draw from their own ``torch.Generator`` (and
``numpy.random.Generator``). Module initialisation in PyTorch draws from the
global generator, so it runs inside :func:`seeded`, which forks the global
state and restores it: the caller's random stream is never changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def fresh_seed() -> int:
    """A non-deterministic seed from the operating system (the global generator is not used)."""
    return int(torch.Generator().seed() % 2**63)


def generator(seed: int) -> torch.Generator:
    """A new CPU ``torch.Generator`` seeded with ``seed``."""
    return torch.Generator().manual_seed(int(seed))


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body (e.g. building ``nn.Module`` s) on a global torch stream seeded with ``seed``.

    The caller's global CPU random state is saved before and restored after,
    so code outside sees no change.
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(int(seed))
        yield
