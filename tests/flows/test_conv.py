"""Convolutional coupling flows on a cylindrical grid: exact inverse and Jacobian, periodicity
in angle, context grids, errors, save/load."""

import pytest
import torch

from hepflows import ConfigError
from hepflows.flows import load, save
from hepflows.flows.conv import ConvCouplingFlow, CylinderConv


def _random(flow, scale=0.2, seed=0):
    """Perturb every weight (a fresh flow is the identity: zero last layers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


def _rot(t, a, r, k):
    return t.reshape(-1, a, r).roll(k, 1).reshape(-1, a * r)


def test_inverse_and_log_det_against_autograd():
    flow = _random(ConvCouplingFlow(6, context=2, transforms=2, hidden=[4], grid=(3, 2)),
                   0.3).double()  # fmt: skip
    x = torch.randn(1, 6, dtype=torch.float64)
    c = torch.randn(1, 2, dtype=torch.float64)
    z, ladj = flow.to_latent(x, c)
    jac = torch.autograd.functional.jacobian(lambda v: flow.to_latent(v, c)[0], x)[0, :, 0, :]
    torch.testing.assert_close(ladj[0], torch.logdet(jac))
    back, _ = flow.to_data(z, c)
    torch.testing.assert_close(back, x)


def test_every_cell_is_transformed_and_fresh_flow_is_identity():
    flow = ConvCouplingFlow(16 * 9, transforms=2, hidden=[8], grid=(16, 9))
    x = torch.randn(5, 144)
    z, ladj = flow.to_latent(x)
    torch.testing.assert_close(z, x)  # zero-initialised conditioners: identity
    torch.testing.assert_close(ladj, torch.zeros(5))
    _random(flow)
    z, _ = flow.to_latent(x)
    assert ((z - x).abs() > 1e-6).all()  # the two colours together cover the grid


def test_periodic_in_angle_and_previous_grid_matters():
    """Rotating the data and the context grid by two angular bins (the checkerboard's period)
    leaves the density unchanged: the convolutions wrap around in angle. The context grid
    enters: another previous layer changes the density."""
    a, r = 16, 9
    flow = _random(ConvCouplingFlow(a * r, context=3 + a * r, transforms=4, hidden=[8, 8],
                                    grid=(a, r), grid_context=1))  # fmt: skip
    x, glob, grid = torch.randn(4, a * r), torch.randn(4, 3), torch.randn(4, a * r)
    lp = flow.log_prob(x, torch.cat([glob, grid], 1))
    for k in (2, 6, -4):
        rotated = flow.log_prob(_rot(x, a, r, k), torch.cat([glob, _rot(grid, a, r, k)], 1))
        torch.testing.assert_close(rotated, lp, rtol=1e-4, atol=1e-4)
    other = flow.log_prob(x, torch.cat([glob, torch.randn(4, a * r)], 1))
    assert ((other - lp).abs() > 1e-3).all()
    # a radial shift is no symmetry (zero padding at the inner and outer edge)
    shifted = flow.log_prob(x.reshape(4, a, r).roll(2, 2).reshape(4, -1),
                            torch.cat([glob, grid.reshape(4, a, r).roll(2, 2).reshape(4, -1)], 1))
    assert ((shifted - lp).abs() > 1e-3).any()


def test_cylinder_conv_wraps_angle_only():
    conv = CylinderConv(1, 1, (4, 3))
    with torch.no_grad():
        conv.linear.weight.fill_(1.0)
        conv.linear.bias.zero_()
    x = torch.zeros(1, 12, 1)
    x[0, 0, 0] = 1.0  # first angle, innermost radius
    y = conv(x)[0, :, 0].reshape(4, 3)
    assert y[3, 0] == 1.0 and y[1, 0] == 1.0 and y[0, 1] == 1.0  # neighbours, angle wraps
    assert y[0, 2] == 0.0 and y[2, 0] == 0.0  # radius does not wrap; no long jumps
    assert y.sum() == 6.0  # the cell itself and its 5 neighbours inside the grid


def test_sampling_save_load(tmp_path):
    flow = _random(ConvCouplingFlow(12, context=1 + 12, transforms=2, hidden=[4], grid=(4, 3),
                                    grid_context=1))  # fmt: skip
    c = torch.randn(7, 13)
    x = flow.sample(7, c, generator=torch.Generator().manual_seed(0))
    assert x.shape == (7, 12) and torch.isfinite(flow.log_prob(x, c)).all()
    save(flow, tmp_path / "f.safetensors")
    back = load(tmp_path / "f.safetensors")
    torch.testing.assert_close(back.log_prob(x, c), flow.log_prob(x, c))


@pytest.mark.parametrize(("kw", "match"), [
    (dict(features=12, grid=(5, 3)), "A \\* R"),
    (dict(features=1, grid=(1, 1)), "one cell"),
    (dict(features=12, grid=(4, 3), context=5, grid_context=1), "grid_context"),
])  # fmt: skip
def test_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        ConvCouplingFlow(**kw)
