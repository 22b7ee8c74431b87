"""Unweighting: w_max rules, acceptance probability, signed weights."""

import pytest
import torch

from hepflows import ConfigError
from hepflows.integrate import choose_wmax, unweight


def test_wmax_rules():
    w = torch.arange(1, 1001, dtype=torch.float64)
    assert choose_wmax(w, "max") == 1000
    assert choose_wmax(w, "quantile", 0.99) == pytest.approx(991)
    assert choose_wmax(-w, "max") == 1000  # |w|
    with pytest.raises(ConfigError, match="unknown w_max rule"):
        choose_wmax(w, "median")
    with pytest.raises(ConfigError, match="all weights are zero"):
        choose_wmax(torch.zeros(5), "max")


def test_acceptance_is_proportional_to_weight():
    g = torch.Generator().manual_seed(0)
    n = 400_000
    x = torch.rand(n, 1, generator=g, dtype=torch.float64)
    w = x[:, 0]  # density 2x after unweighting
    xa, weights = unweight(x, w, 1.0, g)
    assert torch.all(weights == 1)
    # accepted fraction = <w>/w_max = 1/2
    assert abs(len(xa) / n - 0.5) < 4 * (0.25 / n) ** 0.5
    # accepted points follow 2x: mean 2/3
    assert abs(xa.mean().item() - 2 / 3) < 4 * (1 / 18 / len(xa)) ** 0.5


def test_overweights_keep_their_excess_and_sign():
    x = torch.zeros(4, 1)
    w = torch.tensor([4.0, -4.0, 0.5, -0.0], dtype=torch.float64)
    xa, weights = unweight(x, w, 2.0, torch.Generator().manual_seed(1))
    assert weights[:2].tolist() == [2.0, -2.0]  # overweight events: |w|/w_max with sign


def test_shuffled_unweighting_keeps_each_point_with_its_channel_and_mixes_the_order():
    from hepflows.integrate.unweighting import unweight_shuffled

    n = 20_000
    ch = torch.repeat_interleave(torch.arange(2), n // 2)  # drawn channel by channel
    x = torch.stack((torch.arange(n, dtype=torch.float64), ch.to(torch.float64) * 10), 1)
    w = torch.where(ch == 0, 0.5, 1.0).to(torch.float64)
    xa, wa, ca = unweight_shuffled(x, w, ch, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(xa[:, 1], ca.to(torch.float64) * 10)  # each point keeps its channel
    assert torch.equal(wa, torch.ones(len(wa), dtype=torch.float64))
    assert (ca == 1).sum() == n // 2  # weight 1 = w_max: all kept
    assert abs((ca == 0).sum().item() / (n // 2) - 0.5) < 0.03
    first = ca[: len(ca) // 2]  # the order is mixed: both channels in the first half
    assert 0.2 < (first == 0).double().mean().item() < 0.5
    again = unweight_shuffled(x, w, ch, 1.0, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip((xa, wa, ca), again, strict=True))
