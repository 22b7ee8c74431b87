"""The torch VEGAS map reproduces vegas' own map on the same grid."""

import numpy as np
import torch
import vegas

from hepflows.integrate import VegasMap, adapt_vegas, camel


def test_torch_map_equals_vegas_map():
    f = camel(3)
    vmap, calls = adapt_vegas(f, 3, 30_000, seed=3)
    assert 20_000 <= calls <= 40_000
    grids = [g[: n + 1] for g, n in zip(vmap.grid.numpy(), vmap.ninc.tolist(), strict=True)]
    amap = vegas.AdaptiveMap(grids)
    y = np.random.default_rng(1).random((1000, 3))
    y[:3] = [[0, 0, 0], [1, 1, 1], [0.5, 1e-12, 1 - 1e-12]]
    x = np.empty_like(y)
    jac = np.empty(len(y))
    amap.map(y, x, jac)
    xt, jt = vmap(torch.from_numpy(y))
    assert np.abs(x - xt.numpy()).max() < 1e-14
    assert np.abs(jac / jt.numpy() - 1).max() < 1e-12


def test_map_preserves_integrals():
    """E_y[f(x(y)) jac(y)] = integral of f: checked by plain MC over y."""
    f = camel(2)
    vmap, _ = adapt_vegas(f, 2, 20_000, seed=0)
    y = torch.rand(400_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x, jac = vmap(y)
    w = f(x) * jac
    err = w.std().item() / len(w) ** 0.5
    assert abs(w.mean().item() - f.exact) < 4 * err
    plain = f(y)
    assert w.std() < 0.7 * plain.std()  # the adapted grid reduces the variance


def test_uniform_map_is_identity():
    y = torch.rand(10, 4, dtype=torch.float64)
    x, jac = VegasMap.uniform(4)(y)
    assert torch.equal(x, y) and torch.all(jac == 1)
