"""Running beyond one process on ``torch.distributed`` (core: below every pillar).

Launch any hepflows command or script with ``torchrun --nproc-per-node N ...``
(gloo on CPU, NCCL on GPUs; the same launch works under Slurm or Kubernetes):
:func:`init` joins the process group that ``torchrun`` describes in the
environment, and does nothing in a plain single process. The pieces:

* :mod:`~hepflows.distributed.context`: rank, world size, the main process,
  sums over ranks, broadcasting a model, averaging gradients;
* :mod:`~hepflows.distributed.streams`: random streams keyed by (seed, rank)
  or (seed, block), so results do not depend on how work is split.

The training engine averages gradients over ranks by itself
(:class:`hepflows.training.Engine`), so every trainer built on it trains on
the global batch.
"""

from hepflows.distributed.context import (
    all_gather_cat,
    all_reduce_sum,
    average_gradients,
    barrier,
    broadcast_module,
    broadcast_object,
    broadcast_tensors,
    init,
    is_distributed,
    is_main,
    rank,
    share,
    shared_counter,
    shutdown,
    world_size,
)
from hepflows.distributed.streams import block_generator, block_seed, rank_generator

__all__ = [
    "all_gather_cat", "all_reduce_sum", "average_gradients", "barrier", "block_generator",
    "block_seed", "broadcast_module", "broadcast_object", "broadcast_tensors", "init",
    "is_distributed", "is_main", "rank", "rank_generator", "share", "shared_counter", "shutdown",
    "world_size",
]  # fmt: skip
