"""A posterior on a device: ``Posterior(device=)``, ``Posterior.load(path, device=)``.

The networks live on the device; prior, scalers and draws stay on the CPU. As for
the integrator and CaloFlow (tests/integrate/test_device.py), the hygiene test trains,
samples and evaluates on ``device="cpu"`` while torch's default device is "meta", so a
tensor made without an explicit device breaks the run; the same test runs on every
device this machine has.
"""

from __future__ import annotations

import pytest
import torch

from helpers import meta_default_on_cpu
from hepflows.device import available_devices, generator_on, resolve_device
from hepflows.inference.posterior import Posterior, simulate
from hepflows.inference.priors import Normal, Prior, Uniform


def _problem() -> tuple[Prior, torch.Tensor, torch.Tensor]:
    prior = Prior(["mu", "a"], [Uniform(0.0, 3.0), Normal(1.0, 0.1)])

    def simulator(theta: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        noise = torch.randn(len(theta), 3, generator=g, dtype=torch.float64, device="cpu")
        return torch.stack([theta[:, 0], theta[:, 1], theta.sum(1)], 1) + 0.1 * noise

    theta, x = simulate(prior, simulator, 600, torch.Generator().manual_seed(0))
    return prior, theta, x


@pytest.mark.parametrize("device", available_devices())
def test_posterior_trains_and_samples_on_each_device(device, tmp_path) -> None:
    prior, theta, x = _problem()
    post = Posterior(prior, (3,), transforms=1, hidden=(16,), summary_hidden=(16,),
                     ensemble=2, device=device)  # fmt: skip
    dev = resolve_device(device)
    assert all(p.device.type == dev.type for p in post.members.parameters())
    with meta_default_on_cpu(device):  # nothing unplaced: every tensor gets its device
        post.train(theta, x, steps=20, batch_size=64, validate_every=10)
        draws, logq = post.sample_and_log_prob(x[:3], 50, generator_on(dev, 1))
        lp = post.log_prob(theta[:5], x[:5])
        box = post.interval(x[:2], samples=200, generator=generator_on(dev, 2))
    assert draws.shape == (50, 3, 2) and draws.device.type == "cpu"
    assert torch.isfinite(logq).all() and torch.isfinite(lp).all()
    assert box.shape == (2, 2, 2) and (draws[..., 0] >= 0).all() and (draws[..., 0] <= 3).all()
    post.save(tmp_path / "p.safetensors")
    again = Posterior.load(tmp_path / "p.safetensors")  # any device's file loads on the CPU
    assert next(again.members.parameters()).device.type == "cpu"
    torch.testing.assert_close(again.log_prob(theta[:5], x[:5]), lp, rtol=1e-5, atol=1e-6)


def test_cli_device_errors_exit_2_before_any_simulation(monkeypatch, capsys, tmp_path) -> None:
    import sys

    from hepflows import cli

    out = tmp_path / "p.safetensors"
    for bad in ("nonsense", *(() if torch.cuda.is_available() else ("cuda",))):
        monkeypatch.setattr(sys, "argv", ["hepflows", "posterior", "train", "--out", str(out),
                                          "--device", bad])  # fmt: skip
        with pytest.raises(SystemExit) as info:
            cli.run()
        err = capsys.readouterr().err
        assert info.value.code == 2 and "device" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
