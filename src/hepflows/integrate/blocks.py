"""Events in blocks whose random streams depend only on (seed, block index).

A sharded run (:func:`hepflows.generate.generate_sharded`) splits its events
into blocks of ``events_per_block``. Block b draws every point and every
accept-reject number from ``block_generator(seed, b)``
(:mod:`hepflows.distributed.streams`) and unweights against **one** w_max for
the whole run, so its events depend only on (integrator weights, seed, b,
events_per_block, w_max, batch_size), never on which rank makes it or how many
ranks there are: the merged output of 1 or N ranks is the same event set (on one device
type: a CUDA stream draws other numbers than a CPU stream with the same seed).

w_max comes from a pilot sample drawn from the reserved block :data:`PILOT`
(:func:`pilot`): every rank computes the same value from the same
integrator without communication.

A block keeps the sums over **all** points it drew (calls, sum w, sum w^2);
pooled over the blocks they give the run's plain-MC cross-section and error
(:func:`pooled_sigma`), as for R ranks: I = sum w / N, not an average of
per-block errors.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hepflows.distributed import (
    all_gather_cat,
    block_generator,
    block_seed,
    is_distributed,
    rank,
    world_size,
)
from hepflows.errors import ConfigError
from hepflows.integrate.integrator import NeuralIntegrator
from hepflows.integrate.unweighting import choose_wmax, unweight_shuffled
from hepflows.io.shards import pooled_sigma

__all__ = ["PILOT", "RECORDS", "Block", "fingerprint", "generate_block", "pilot",
           "pooled_sigma", "records_generator"]  # fmt: skip

#: Reserved block index of the w_max pilot sample (2^40): event blocks are 0 ... n_blocks - 1
#: and a run never has that many, so the pilot never shares a stream with a block.
PILOT = 2**40
#: Stream family (see :func:`hepflows.distributed.block_seed`) of the records of block b:
#: the expansion of folded points and the particle records. Blocks use family 1, ranks 2.
RECORDS = 3
#: Fewest points drawn at once by a block (small blocks would otherwise draw a few points
#: per flow pass).
MIN_DRAW = 256
#: Margin on the points a block draws for the events it still needs.
MARGIN = 1.2
#: The first draw of a block asks for this many times the points the pilot's acceptance
#: predicts: a short fall costs one small extra draw, a surplus costs wasted points.
FIRST_MARGIN = 1.03
#: The pilot sample is drawn in this many pieces, piece k from the stream of "block"
#: PILOT + k, shared out over the ranks: its cost is split like the blocks'.
PILOT_PIECES = 16


@dataclass
class Block:
    """The events of one block and the sums over every point it drew.

    Attributes:
        index: the block index b.
        x: (n, d) accepted points in the unit cube (float64).
        weights: (n,) event weights: +-1, or sign(w) |w| / w_max for overweight events.
        channel: (n,) int64 channel that produced each event.
        calls: points drawn (accepted or not).
        sum_w: sum of the weights W of all drawn points (float64).
        sum_w2: sum of W^2 over all drawn points.
        w_max: the run's reference weight.
    """

    index: int
    x: Tensor
    weights: Tensor
    channel: Tensor
    calls: int
    sum_w: float
    sum_w2: float
    w_max: float

    def __len__(self) -> int:
        return len(self.x)

    @property
    def sigma(self) -> tuple[float, float]:
        """The block's own plain-MC estimate ``(value, error)``."""
        return pooled_sigma(self.sum_w, self.sum_w2, self.calls)


def records_generator(seed: int, block: int) -> torch.Generator:
    """The stream of block ``block``'s records (expansion of folded points, then particles)."""
    return torch.Generator(device="cpu").manual_seed(block_seed(seed, block, RECORDS))


def _draw(integ: NeuralIntegrator, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """One batch of n points from ``gen``: (n, d) x, (n,) weights W, (n,) channels."""
    x, w, ch = (torch.cat(t) for t in zip(*integ._weighted_batches(n, n, generator=gen),
                                          strict=True))  # fmt: skip
    return x, w, ch


def pilot(
    integ: NeuralIntegrator,
    calls: int,
    seed: int,
    rule: str = "quantile",
    quantile: float = 0.999,
    batch_size: int = 100_000,
) -> tuple[float, float]:
    """w_max and the expected acceptance <min(|w| / w_max, 1)> from the pilot sample.

    Deterministic given the trained integrator, ``seed``, ``calls`` and
    ``batch_size``, whatever the number of ranks: the sample is drawn in
    :data:`PILOT_PIECES` pieces, piece k from the stream keyed by (seed, PILOT + k);
    the ranks share the pieces out and gather the weights back in piece order,
    so every rank gets the same bits.
    The acceptance sizes each block's first draw (:func:`generate_block`), so that
    a block draws about the points it needs instead of twice its events.

    Args:
        integ: the trained integrator.
        calls: points of the pilot sample (drawn from the reserved block :data:`PILOT`).
        seed: the run's seed.
        rule: ``"quantile"`` or ``"max"`` (see :func:`~hepflows.integrate.choose_wmax`).
        quantile: quantile of |w| for the ``quantile`` rule.
        batch_size: points per flow pass.

    Returns:
        ``(w_max, acceptance)``: w_max > 0 and the expected acceptance in (0, 1].
    """
    if calls < 1:
        raise ConfigError(f"the w_max pilot needs calls >= 1, got {calls}")
    pieces = min(PILOT_PIECES, max(calls // max(MIN_DRAW, len(integ.channels)), 1))
    sizes = [calls // pieces + (k < calls % pieces) for k in range(pieces)]
    mine = list(range(rank(), pieces, world_size()))
    parts = []
    for k in mine:
        gen = block_generator(seed, PILOT + k, integ.device)
        parts += [w for _, w, _ in integ._weighted_batches(sizes[k], min(batch_size, sizes[k]),
                                                           generator=gen)]  # fmt: skip
    w = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=integ.device)
    if is_distributed():  # rank r holds pieces r, r + W, ...: put them back in piece order
        gathered = all_gather_cat(w)
        owners = [list(range(r, pieces, world_size())) for r in range(world_size())]
        offset, by_piece = 0, {}
        for ks in owners:
            for k in ks:
                by_piece[k] = gathered[offset : offset + sizes[k]]
                offset += sizes[k]
        w = torch.cat([by_piece[k] for k in range(pieces)])
    w_max = choose_wmax(w, rule, quantile)
    return w_max, float((w.abs() / w_max).clamp(max=1.0).mean())


def generate_block(
    integ: NeuralIntegrator,
    block: int,
    events_per_block: int,
    w_max: float,
    seed: int,
    batch_size: int = 100_000,
    max_calls: int | None = None,
    acceptance: float = 0.5,
) -> Block:
    """Exactly ``events_per_block`` unweighted events of block ``block``.

    Batches are drawn from ``block_generator(seed, block)``, shuffled (a batch
    is ordered by channel) and unweighted against the fixed ``w_max`` with the
    same generator, until enough are accepted; the last batch's surplus is cut.
    Batch sizes follow the block's own acceptance so far (at most
    ``batch_size``), so they too depend only on the block.

    Args:
        integ: the trained integrator (not changed, except its call counters).
        block: the block index b, 0 <= b < :data:`PILOT`.
        events_per_block: events wanted (the last block of a run may ask for fewer).
        w_max: the run's reference weight.
        seed: the run's seed.
        batch_size: most points per flow pass.
        max_calls: stop with an error beyond this many points (default
            min(10^4 events_per_block, 10^9)).
        acceptance: the expected fraction of points accepted (from :func:`pilot`): the
            first draw is ``FIRST_MARGIN * events / acceptance`` points.

    Returns:
        The :class:`Block`.
    """
    if not 0 <= block < PILOT:
        raise ConfigError(f"block must lie in [0, {PILOT}), got {block}")
    if events_per_block < 1:
        raise ConfigError(f"events_per_block must be >= 1, got {events_per_block}")
    if not (math.isfinite(w_max) and w_max > 0):
        raise ConfigError(f"w_max must be finite and > 0, got {w_max}")
    n_ch = len(integ.channels)
    if batch_size < max(MIN_DRAW, n_ch):
        raise ConfigError(f"batch_size must be >= {max(MIN_DRAW, n_ch)}, got {batch_size}")
    max_calls = int(max_calls or min(10_000 * events_per_block, 10**9))
    gen = block_generator(seed, block, integ.device)
    xs, weights, channels = [], [], []
    accepted = calls = 0
    s1 = s2 = 0.0
    if not 0 < acceptance <= 1:
        raise ConfigError(f"acceptance must lie in (0, 1], got {acceptance}")
    first = math.ceil(FIRST_MARGIN * events_per_block / acceptance)
    draw = min(batch_size, max(MIN_DRAW, n_ch, first))
    while accepted < events_per_block:
        if calls >= max_calls:
            raise ConfigError(
                f"block {block}: only {accepted} of {events_per_block} events after "
                f"{calls:,} calls: the efficiency is too low; train longer or raise max_calls"
            )
        x, w, ch = _draw(integ, draw, gen)
        calls += len(w)
        s1 += w.sum().item()
        s2 += (w * w).sum().item()
        xa, wa, ca = unweight_shuffled(x, w, ch, w_max, gen)
        xs.append(xa)
        channels.append(ca)
        weights.append(wa)
        accepted += len(xa)
        remaining = events_per_block - accepted
        if accepted:
            need = math.ceil(MARGIN * remaining * calls / accepted)
        else:
            need = 2 * draw
        draw = min(batch_size, max(MIN_DRAW, n_ch, need))
    n = events_per_block  # events come back to the CPU, to be written
    return Block(index=block, x=torch.cat(xs)[:n].cpu(), weights=torch.cat(weights)[:n].cpu(),
                 channel=torch.cat(channels)[:n].cpu(), calls=calls, sum_w=s1, sum_w2=s2,
                 w_max=float(w_max))  # fmt: skip


def fingerprint(integ: NeuralIntegrator) -> str:
    """SHA-256 (hex) of everything that decides an integrator's samples.

    The configuration, the flow's parameters and buffers, the VEGAS grids, the
    channel-weight network and the channel fractions; not the call counters,
    the training state or the integrator's own random state. Ranks that loaded
    the same file (or trained identically) agree on it.
    """
    h = hashlib.sha256(json.dumps(integ.config, sort_keys=True, default=str).encode())
    state = {f"flow.{k}": v for k, v in integ.flow.state_dict().items()}
    for i, vmap in enumerate(integ.maps):
        if vmap is not None:
            state[f"map.{i}.grid"], state[f"map.{i}.ninc"] = vmap.grid, vmap.ninc
    if integ.channel_weights is not None:
        state |= {f"alpha.{k}": v for k, v in integ.channel_weights.state_dict().items()}
    state["fractions"] = integ.fractions
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{t.numel()};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
