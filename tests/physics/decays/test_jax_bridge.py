"""JaxFunction: values and gradients through torch autograd, padding and bucket splitting."""

from __future__ import annotations

import pytest
import torch

from hepflows.physics.decays.jax_bridge import MAX_BUCKET, JaxFunction


@pytest.mark.parametrize("n", [1, 1025, MAX_BUCKET + 7])
def test_jax_bridge_values_and_gradients(n):
    import jax.numpy as jnp

    fn = JaxFunction(lambda a, b: jnp.sin(a) * b**2, pad=(0.0, 1.0))
    gen = torch.Generator().manual_seed(n)
    a = torch.rand(n, dtype=torch.float64, generator=gen).requires_grad_(True)
    b = torch.rand(n, dtype=torch.float64, generator=gen).requires_grad_(True)
    out = fn(a, b)
    torch.testing.assert_close(out, torch.sin(a) * b**2)
    out.sum().backward()
    torch.testing.assert_close(a.grad, torch.cos(a.detach()) * b.detach() ** 2)
    torch.testing.assert_close(b.grad, 2 * torch.sin(a.detach()) * b.detach())
    with torch.no_grad():
        torch.testing.assert_close(fn(a, b), out.detach())
