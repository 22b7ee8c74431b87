"""Block generation: streams keyed by (seed, block), one w_max per run, pooled sums."""

import math

import pytest
import torch

from helpers import randomize
from hepflows import ConfigError
from hepflows.distributed import block_generator
from hepflows.integrate import NeuralIntegrator, camel, choose_wmax
from hepflows.integrate.blocks import (
    PILOT,
    PILOT_PIECES,
    fingerprint,
    generate_block,
    pilot,
    pooled_sigma,
)
from hepflows.integrate.integrands import resonance_channels, resonances

BATCH = 4096


def _integrator(seed: int = 1) -> NeuralIntegrator:
    """A small untrained camel integrator with random (non-identity) flow weights."""
    integ = NeuralIntegrator(camel(2), 2, seed=seed, hidden=(16, 16), vegas=False)
    randomize(integ.flow, std=0.1, seed=3)
    return integ


@pytest.fixture(scope="module")
def integ():
    return _integrator()


@pytest.fixture(scope="module")
def w_max(integ):
    return pilot(integ, 8000, seed=0, batch_size=BATCH)[0]


def _same(a, b) -> bool:
    sums = (a.calls, a.sum_w, a.sum_w2, a.w_max) == (b.calls, b.sum_w, b.sum_w2, b.w_max)
    tensors = all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("x", "weights", "channel"))
    return sums and tensors and a.index == b.index


def test_block_events_are_reproducible_and_independent_of_order(integ, w_max):
    first = [generate_block(integ, b, 200, w_max, seed=0, batch_size=BATCH) for b in range(4)]
    integ.sample(1000)  # the integrator's own generator moves on: blocks must not care
    again = {b: generate_block(integ, b, 200, w_max, seed=0, batch_size=BATCH)
             for b in (3, 1, 0, 2)}  # fmt: skip
    assert all(_same(first[b], again[b]) for b in range(4))
    # A fresh integrator object with the same weights gives the same block.
    assert _same(first[2], generate_block(_integrator(), 2, 200, w_max, 0, batch_size=BATCH))
    # Other blocks and other seeds are other events.
    assert not torch.equal(first[0].x, first[1].x)
    other = generate_block(integ, 0, 200, w_max, seed=1, batch_size=BATCH)
    assert not torch.equal(first[0].x, other.x)


def test_block_content(integ, w_max):
    block = generate_block(integ, 5, 300, w_max, seed=0, batch_size=BATCH)
    assert len(block) == 300 and block.index == 5 and block.x.shape == (300, 2)
    assert block.weights.dtype == torch.float64 and torch.all(block.weights >= 1)
    assert block.calls > 300 and torch.all(block.channel == 0)
    assert block.w_max == w_max
    short = generate_block(integ, 6, 7, w_max, seed=0, batch_size=BATCH)  # a last, short block
    assert len(short) == 7


def test_wmax_comes_from_the_reserved_pilot_pieces(integ, w_max):
    """16 pieces of 500 points, piece k from the stream of PILOT + k, in piece order."""
    w = torch.cat([w for k in range(PILOT_PIECES)
                   for _, w, _ in integ._weighted_batches(
                       8000 // PILOT_PIECES, BATCH, generator=block_generator(0, PILOT + k))])
    assert w_max == choose_wmax(w, "quantile", 0.999)
    integ.sample(500)
    assert pilot(integ, 8000, seed=0, batch_size=BATCH)[0] == w_max
    assert pilot(integ, 8000, seed=1, batch_size=BATCH)[0] != w_max
    assert pilot(integ, 8000, 0, rule="max", batch_size=BATCH)[0] > w_max


def test_pooled_sums_estimate_the_integral(integ, w_max):
    blocks = [generate_block(integ, b, 300, w_max, seed=0, batch_size=BATCH) for b in range(8)]
    value, error = pooled_sigma(math.fsum(b.sum_w for b in blocks),
                                math.fsum(b.sum_w2 for b in blocks),
                                sum(b.calls for b in blocks))  # fmt: skip
    assert abs(value - integ.f.exact) < 4 * error
    assert error < 0.05 * value


def test_pooled_sigma_is_plain_mc_on_the_concatenated_weights():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(10_000, generator=g, dtype=torch.float64) ** 3 * 5 - 0.5
    parts = torch.split(w, [1234, 4000, 4766])
    value, error = pooled_sigma(math.fsum(p.sum().item() for p in parts),
                                math.fsum((p**2).sum().item() for p in parts), len(w))  # fmt: skip
    n = len(w)
    assert value == pytest.approx(w.mean().item(), rel=1e-12)
    assert error == pytest.approx(math.sqrt(w.var(unbiased=False).item() / (n - 1)), rel=1e-9)
    with pytest.raises(ConfigError, match="at least 2 calls"):
        pooled_sigma(1.0, 1.0, 1)


def test_multichannel_blocks_keep_channels():
    f = resonances(2)
    integ = NeuralIntegrator(f, 2, seed=1, hidden=(16, 16), vegas=False,
                             channels=resonance_channels())  # fmt: skip
    w_max = pilot(integ, 10_000, seed=0, batch_size=BATCH)[0]
    a = generate_block(integ, 0, 300, w_max, seed=0, batch_size=BATCH)
    assert _same(a, generate_block(integ, 0, 300, w_max, seed=0, batch_size=BATCH))
    counts = a.channel.bincount(minlength=2)
    assert counts.sum() == 300 and torch.all(counts > 50)  # both channels, shuffled before the cut


def test_bad_arguments_and_a_hopeless_efficiency(integ, w_max):
    with pytest.raises(ConfigError, match="block must lie"):
        generate_block(integ, PILOT, 10, w_max, 0)
    with pytest.raises(ConfigError, match="events_per_block"):
        generate_block(integ, 0, 0, w_max, 0)
    with pytest.raises(ConfigError, match="w_max"):
        generate_block(integ, 0, 10, 0.0, 0)
    with pytest.raises(ConfigError, match="efficiency is too low"):
        generate_block(integ, 0, 100, 1e6 * w_max, 0, batch_size=BATCH, max_calls=8000)


def test_fingerprint_follows_the_weights(tmp_path, integ):
    path = tmp_path / "integ.safetensors"
    integ.save(path)
    loaded = NeuralIntegrator.load(path, camel(2))
    assert fingerprint(loaded) == fingerprint(integ)
    with torch.no_grad():
        next(loaded.flow.parameters()).add_(1e-6)
    assert fingerprint(loaded) != fingerprint(integ)
