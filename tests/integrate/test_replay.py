"""Prioritised replay buffer: draws proportional to w, without replacement, ring, state."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from hepflows.errors import ConfigError
from hepflows.integrate.replay import PrioritisedReplayBuffer


def filled(weights, dims=2, capacity=None):
    """A buffer whose entry i has x = (i, -i), log w = log weights[i], log q = -i."""
    n = len(weights)
    buf = PrioritisedReplayBuffer(dims, capacity or n)
    i = torch.arange(n, dtype=torch.float64)
    x = torch.stack([i, -i], 1)[:, :dims]
    buf.add(x, torch.log(torch.as_tensor(weights, dtype=torch.float64)), -i)
    return buf


def test_single_draws_are_proportional_to_the_weights():
    w = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    buf = filled(w)
    gen = torch.Generator().manual_seed(0)
    draws = 20_000
    counts = np.zeros(len(w))
    for _ in range(draws):
        x, log_q, idx = buf.sample(1, gen)
        assert x.shape == (1, 2) and log_q.shape == (1,) and idx.shape == (1,)
        counts[int(idx)] += 1
        # the point and its log q belong to the drawn index
        assert x[0, 0].item() == int(idx) and log_q.item() == -int(idx)
    expected = draws * w / w.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, len(w) - 1) > 1e-3, (counts, expected)
    # each entry separately within 4.5 binomial standard deviations
    p = w / w.sum()
    assert np.all(np.abs(counts - expected) < 4.5 * np.sqrt(draws * p * (1 - p))), counts


def test_the_chi_square_check_has_power():
    """Sanity check of the check above: draws from unequal weights (4000 of them) fail a
    chi-square test against equal frequencies."""
    buf = filled([1.0, 1.0, 1.0, 5.0])
    gen = torch.Generator().manual_seed(1)
    counts = np.bincount([int(buf.sample(1, gen)[2]) for _ in range(4000)], minlength=4)
    expected = np.full(4, 1000.0)
    assert stats.chi2.sf(((counts - expected) ** 2 / expected).sum(), 3) < 1e-6


def test_batches_are_distinct_and_the_first_draw_is_proportional():
    """sample(n) draws without replacement (Gumbel top-k): n distinct indices, and as in
    successive draws the first-ranked entry follows w (topk returns the largest key first)."""
    w = torch.tensor([5.0, 1.0, 1.0, 1.0, 2.0, 0.5, 0.5, 3.0, 1.0, 1.0], dtype=torch.float64)
    buf = PrioritisedReplayBuffer(1, 10)
    buf.add(torch.arange(10.0)[:, None], torch.log(w), torch.zeros(10))
    gen = torch.Generator().manual_seed(2)
    first = np.zeros(10)
    inclusion = np.zeros(10)
    trials = 5000
    for _ in range(trials):
        x, _, idx = buf.sample(4, gen)
        assert len(idx) == 4 and len(set(idx.tolist())) == 4
        torch.testing.assert_close(x[:, 0], idx.to(torch.float64))
        first[int(idx[0])] += 1
        inclusion[idx.numpy()] += 1
    expected = trials * (w / w.sum()).numpy()
    assert stats.chi2.sf(((first - expected) ** 2 / expected).sum(), 9) > 1e-3
    # heavier entries are included more often (but at most once per batch)
    assert inclusion[0] > inclusion[7] > inclusion[4] > inclusion[1] > inclusion[5]
    assert inclusion.max() <= trials
    # asking for more than there are returns each entry once
    _, _, idx = buf.sample(50, gen)
    assert sorted(idx.tolist()) == list(range(10))


def test_non_finite_weights_are_never_drawn():
    log_w = torch.tensor([0.0, -math.inf, math.nan, 1.0, math.inf, -2.0], dtype=torch.float64)
    buf = PrioritisedReplayBuffer(1, 6)
    buf.add(torch.arange(6.0)[:, None], log_w, torch.zeros(6))
    assert torch.isneginf(buf.log_w[[1, 2, 4]]).all()
    gen = torch.Generator().manual_seed(3)
    seen = set()
    for _ in range(500):
        _, _, idx = buf.sample(2, gen)
        seen |= set(idx.tolist())
    assert seen == {0, 3, 5}
    # a request larger than the finite entries returns only those
    _, _, idx = buf.sample(6, gen)
    assert sorted(idx.tolist()) == [0, 3, 5]


def test_adjust_moves_the_weights_with_the_flow():
    buf = filled([1.0, 2.0, 3.0, 4.0])
    log_w0, log_q0 = buf.log_w.clone(), buf.log_q.clone()
    index = torch.tensor([1, 3])
    new = torch.tensor([0.5, -7.0], dtype=torch.float64)
    buf.adjust(index, new)
    torch.testing.assert_close(buf.log_w[index], log_w0[index] + log_q0[index] - new)
    torch.testing.assert_close(buf.log_q[index], new)
    # the other entries are untouched
    torch.testing.assert_close(buf.log_w[[0, 2]], log_w0[[0, 2]])
    torch.testing.assert_close(buf.log_q[[0, 2]], log_q0[[0, 2]])
    # adjusting again with the same log q changes nothing
    w1 = buf.log_w.clone()
    buf.adjust(index, new)
    torch.testing.assert_close(buf.log_w, w1)


def test_ring_keeps_the_newest_entries():
    buf = PrioritisedReplayBuffer(1, 4)

    def add(values):
        v = torch.tensor(values, dtype=torch.float64)
        buf.add(v[:, None], torch.zeros(len(v)), v)

    add([0, 1, 2])
    assert buf.size == 3 and buf.capacity == 4
    add([3, 4, 5])
    assert buf.size == 4
    assert sorted(buf.x[:, 0].tolist()) == [2, 3, 4, 5]
    torch.testing.assert_close(buf.log_q, buf.x[:, 0])  # rows stay aligned
    add(list(range(10, 17)))  # more than the capacity in one go: the last 4
    assert sorted(buf.x[:, 0].tolist()) == [13, 14, 15, 16]
    torch.testing.assert_close(buf.log_q, buf.x[:, 0])
    add([20])
    assert sorted(buf.x[:, 0].tolist()) == [14, 15, 16, 20]
    _, _, idx = buf.sample(10, torch.Generator().manual_seed(0))
    assert len(idx) == 4


def test_sampling_only_sees_the_filled_part():
    buf = PrioritisedReplayBuffer(1, 100)
    buf.add(torch.tensor([[1.0], [2.0]]), torch.zeros(2), torch.zeros(2))
    _, _, idx = buf.sample(100, torch.Generator().manual_seed(0))
    assert sorted(idx.tolist()) == [0, 1]


def test_state_round_trip():
    a = filled([1.0, 2.0, 3.0], capacity=5)
    a.adjust(torch.tensor([0]), torch.tensor([0.3], dtype=torch.float64))
    b = PrioritisedReplayBuffer(2, 5)
    b.load_state({k: v.clone() for k, v in a.state().items()})
    assert (b.size, b.next) == (a.size, a.next) == (3, 3)
    for name in ("x", "log_w", "log_q"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    # the same draws from the same random state
    ia = a.sample(2, torch.Generator().manual_seed(4))[2]
    ib = b.sample(2, torch.Generator().manual_seed(4))[2]
    assert torch.equal(ia, ib)
    # and the ring continues at the same place
    for buf in (a, b):
        buf.add(torch.ones(3, 2), torch.zeros(3), torch.zeros(3))
    assert torch.equal(a.x, b.x) and (b.size, b.next) == (5, 1)
    with pytest.raises(ConfigError, match="does not fit"):
        PrioritisedReplayBuffer(2, 4).load_state(a.state())
    with pytest.raises(ConfigError, match="does not fit"):
        PrioritisedReplayBuffer(3, 5).load_state(a.state())


def test_errors():
    with pytest.raises(ConfigError, match="empty"):
        PrioritisedReplayBuffer(2, 3).sample(1)
    with pytest.raises(ConfigError, match="capacity"):
        PrioritisedReplayBuffer(2, 0)
    with pytest.raises(ConfigError, match="capacity"):
        PrioritisedReplayBuffer(2, -5)
