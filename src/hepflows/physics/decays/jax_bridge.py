"""Call a JAX function from torch, with its gradient in torch autograd.

JAX jit-compiles per input shape, so batches are padded to the next power of
two (at least :data:`MIN_BUCKET`) and split at :data:`MAX_BUCKET`: a few
compilations serve every batch size. The wrapped function takes k float64
arrays of shape (n,) and returns (n,) values; ``jax.vmap(jax.value_and_grad)``
gives the gradient, which the torch backward pass multiplies in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

MIN_BUCKET = 1024
MAX_BUCKET = 1 << 17


def _bucket(n: int) -> int:
    return min(max(MIN_BUCKET, 1 << max(n - 1, 0).bit_length()), MAX_BUCKET)


class JaxFunction:
    """A batched JAX function f(a_1, ..., a_k) -> (n,) usable on torch tensors with autograd.

    Args:
        fn: JAX function of k arrays of shape (n,) (float64) returning (n,) real values,
            elementwise in the batch (row i of the output depends on row i of the inputs).
        pad: k floats: a point where ``fn`` is finite, used to pad batches.

    Example:
        >>> import jax.numpy as jnp
        >>> square = JaxFunction(lambda a: a**2, pad=(1.0,))
        >>> x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        >>> square(x).sum().backward(); x.grad
        tensor([2., 4.], dtype=torch.float64)
    """

    def __init__(self, fn: Callable, pad: Sequence[float]) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)
        self.pad = tuple(float(p) for p in pad)
        k = len(self.pad)
        self._value = jax.jit(fn)
        scalar = jax.value_and_grad(
            lambda *a: fn(*(x[None] for x in a))[0], argnums=tuple(range(k))
        )
        self._value_and_grad = jax.jit(jax.vmap(scalar))

    def _run(self, arrays: list[np.ndarray], grad: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        n = len(arrays[0])
        values = np.empty(n)
        grads = [np.empty(n) for _ in arrays] if grad else []
        start = 0
        while start < n:
            stop = min(start + MAX_BUCKET, n)
            size = _bucket(stop - start)
            chunk = [np.full(size, p) for p in self.pad]
            for c, a in zip(chunk, arrays, strict=True):
                c[: stop - start] = a[start:stop]
            if grad:
                v, g = self._value_and_grad(*chunk)
                for out, gi in zip(grads, g, strict=True):
                    out[start:stop] = np.asarray(gi)[: stop - start]
            else:
                v = self._value(*chunk)
            values[start:stop] = np.asarray(v)[: stop - start]
            start = stop
        return values, grads

    def __call__(self, *args: Tensor) -> Tensor:
        """k tensors of shape (n,) -> (n,) values (float64), differentiable in every input."""
        return _JaxCall.apply(self, *args)


class _JaxCall(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn: JaxFunction, *args: Tensor) -> Tensor:  # type: ignore[override]
        arrays = [a.detach().to(torch.float64).cpu().numpy() for a in args]
        grad = any(ctx.needs_input_grad[1:])
        values, grads = fn._run(arrays, grad)
        ctx.save_for_backward(*(torch.from_numpy(g) for g in grads))
        return torch.from_numpy(values).to(args[0].dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        grads = ctx.saved_tensors
        return (None, *(grad_out * g.to(grad_out.dtype) for g in grads))
