"""The process group: who am I, how many are we, and the few collectives hepflows needs.

Every function works without ``torch.distributed`` too: in a single process
(no ``torchrun``, or a group of one) the rank is 0, the world has size 1 and
the collectives return their input. Code written with them runs unchanged
either way.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from hepflows.errors import ConfigError

#: Environment variables ``torchrun`` sets for every process it launches.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: The key-value store of the group joined by :func:`init` (``None`` before, or when the
#: group was joined otherwise).
_store: dist.Store | None = None


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its variables are set)."""
    return all(v in os.environ for v in TORCHRUN_VARIABLES)


def init(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Join the process group described by ``torchrun``'s environment, once.

    Does nothing when the group is already initialised or when the process
    was not launched by ``torchrun`` (a single process). Under ``torchrun``
    every rank also runs with one thread per process unless ``OMP_NUM_THREADS``
    says otherwise: N ranks on N cores with several threads each oversubscribe.

    Args:
        backend: ``"gloo"`` (CPU, the default) or ``"nccl"`` (CUDA tensors).
        timeout_s: how long a collective waits for the other ranks.

    Returns:
        True when this process now belongs to a group of more than one rank.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if not launched_by_torchrun():
        return False
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed: install the standard "
                          "CPU or CUDA wheel")  # fmt: skip
    backend = backend or "gloo"
    if backend not in ("gloo", "nccl"):
        raise ConfigError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    timeout = datetime.timedelta(seconds=timeout_s)
    # torchrun's store outlives a restart (--max-restarts): without a prefix per attempt,
    # the restarted ranks would read the previous attempt's gloo addresses and be refused.
    store, rank_, world = next(dist.rendezvous("env://", timeout=timeout))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    global _store
    _store = dist.PrefixStore(f"hepflows/attempt_{attempt}", store)
    dist.init_process_group(backend, store=_store, rank=rank_, world_size=world,
                            timeout=timeout)  # fmt: skip
    return dist.get_world_size() > 1


def shared_counter(key: str) -> Callable[[], int] | None:
    """A counter the ranks share: each call, on any rank, returns the next of 0, 1, 2, ...

    Every value is handed out once, to whichever rank asks first (work that ranks
    take as they become free). ``key`` names the counter; every rank must use the
    same key for the same counter. ``None`` in a single process, or when the
    process group was not joined through :func:`init` (no store to count in).
    """
    if not is_distributed() or _store is None:
        return None
    store, full = _store, f"counter/{key}"
    return lambda: int(store.add(full, 1)) - 1


def shutdown() -> None:
    """Leave the process group (no-op when there is none)."""
    global _store
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _store = None


def is_distributed() -> bool:
    """True inside an initialised group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process' rank (0 without a group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of ranks (1 without a group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0: the one process that prints and writes checkpoints."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


#: Payloads up to this many elements (summed over ranks) are summed by gathering every
#: rank's copy and adding them in rank order; larger ones by ``all_reduce``. On gloo a
#: gather of 10^3-10^4 floats took 0.3-0.8 ms against 1.0-1.6 ms for an all-reduce
#: (2 ranks, this 2-core machine), and an integrator's training syncs every few ms.
GATHER_SUM_LIMIT = 1 << 22


def _via_host(t: Tensor) -> bool:
    """Whether ``t`` must pass through the CPU for a collective (gloo works on CPU tensors)."""
    return t.device.type != "cpu" and dist.get_backend() == "gloo"


def _sum_over_ranks(flat: Tensor) -> Tensor:
    """The element-wise sum over ranks of a contiguous 1-D tensor, identical on every rank."""
    if _via_host(flat):
        return _sum_over_ranks(flat.cpu()).to(flat.device)
    size = world_size()
    if flat.numel() * size > GATHER_SUM_LIMIT:
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        return flat
    rows = flat.new_empty(size * flat.numel())
    dist.all_gather_into_tensor(rows, flat)
    return rows.view(size, -1).sum(0)


def all_reduce_sum(values: Tensor) -> Tensor:
    """The element-wise sum of ``values`` over ranks, as a new tensor (same shape and dtype).

    Every rank must call it with a tensor of the same shape and dtype; every
    rank gets the same bits.
    """
    out = values.detach().clone()
    if is_distributed():
        out = _sum_over_ranks(out.reshape(-1).contiguous()).view_as(values)
    return out


def all_gather_cat(values: Tensor) -> Tensor:
    """The concatenation over ranks (in rank order) of each rank's (n_r, ...) ``values``.

    Ranks may hold different n_r; trailing shapes and dtype must agree.
    """
    if not is_distributed():
        return values
    if _via_host(values):
        return all_gather_cat(values.cpu()).to(values.device)
    n = torch.tensor([len(values)], dtype=torch.int64, device=values.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    longest = int(max(int(k) for k in sizes))
    padded = values.new_zeros((longest, *values.shape[1:]))
    padded[: len(values)] = values
    parts = [torch.zeros_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[: int(k)] for p, k in zip(parts, sizes, strict=True)])


def share(total: int, of_rank: int | None = None) -> int:
    """This rank's share of ``total`` items split as evenly as possible over the ranks."""
    r = rank() if of_rank is None else of_rank
    size = world_size()
    return total // size + (r < total % size)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s picklable ``obj`` on every rank (``obj`` itself in a single process)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_tensors(tensors: Iterable[Tensor], src: int = 0) -> None:
    """Copy rank ``src``'s values of ``tensors`` (same order on every rank) to every rank."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in tensors:
            if _via_host(t):
                host = t.data.cpu()
                dist.broadcast(host, src=src)
                t.data.copy_(host)
            else:
                dist.broadcast(t.data, src=src)


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (in place)."""
    broadcast_tensors([*module.parameters(), *module.buffers()], src)


def average_gradients(parameters: Iterable[nn.Parameter], skip: bool = False) -> bool:
    """Average the gradients of ``parameters`` over ranks, in one flat sum over ranks.

    A parameter without a gradient counts as zero. ``skip`` is this rank's
    vote to skip the step (e.g. its loss was not finite); the vote is shared,
    so every rank takes the same decision.

    Args:
        parameters: the parameters, in the same order on every rank.
        skip: this rank wants the step skipped.

    Returns:
        True when any rank voted to skip (gradients then are not to be applied).
    """
    params = list(parameters)
    if not is_distributed():
        return skip
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    vote = torch.tensor([float(skip)], dtype=grads[0].dtype, device=grads[0].device)
    flat = torch.cat([g.reshape(-1) for g in grads] + [vote])
    if skip:
        flat.zero_()
        flat[-1] = 1.0
    flat = _sum_over_ranks(flat)
    votes = float(flat[-1])
    flat /= world_size()
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        if p.grad is None:
            p.grad = flat[offset : offset + n].view_as(p).clone()
        else:
            p.grad.copy_(flat[offset : offset + n].view_as(p))
        offset += n
    return votes > 0
