"""Conditional flows on a device: ``ConditionalDensity(device=)`` and what is built on it.

The cINN and SPINUP unfoldings and the learned matrix-element method keep their
flows on the device; scalers, points, weights and the efficiency classifier stay
on the CPU. As for the integrator, CaloFlow and the posterior, the hygiene tests
run on ``device="cpu"`` while torch's default device is "meta", so a tensor made
without an explicit device breaks the run; the same tests run on every device
this machine has (CUDA and MPS where present).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from helpers import meta_default_on_cpu
from hepflows.device import available_devices, generator_on, resolve_device
from hepflows.inference import FlowTransfer, mem
from hepflows.inference.conditional import ConditionalDensity
from hepflows.inference.pairs import Pairs
from hepflows.inference.unfolding import UnfoldingModel, train, unfold

SMALL = {"transforms": 2, "bins": 6, "hidden": (16, 16)}


def _pairs(n: int = 3000, seed: int = 0) -> Pairs:
    """Two observables (m_ll, y_ll), smeared, detected with a smooth efficiency."""
    g = torch.Generator().manual_seed(seed)
    m = 91.0 + 5.0 * torch.randn(n, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    truth = torch.stack([m, y], 1)
    reco = truth + torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor([2.0, 0.2])
    passed = torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(1.0 + y)
    return Pairs(truth, reco, passed, torch.ones(n, dtype=torch.float64), ("m_ll", "y_ll"),
                 {"toy": seed})  # fmt: skip


@pytest.mark.parametrize("device", available_devices())
def test_conditional_density_trains_samples_and_reloads_on_each_device(device) -> None:
    pairs = _pairs()
    truth, reco = pairs.truth[pairs.passed], pairs.reco[pairs.passed]
    q = ConditionalDensity(pairs.observables, device=device, **SMALL)
    dev = resolve_device(device)
    assert all(p.device.type == dev.type for p in q.flow.parameters())
    with meta_default_on_cpu(device):
        q.fit(truth, reco, steps=30, batch_size=256, holdout=0.2, validate_every=10)
        x, logq = q.sample_and_log_prob(reco[:7], 20, generator_on(dev, 1))
        lp = q.log_prob(truth[:9], reco[:9])
        z = q.latent(truth[:9], reco[:9])
        back, lq = q.from_latent(z, reco[:9])
    assert x.shape == (20, 7, 2) and x.device.type == "cpu" and logq.device.type == "cpu"
    assert torch.isfinite(logq).all() and torch.isfinite(lp).all()
    # from_latent inverts latent, and its density is log_prob's
    torch.testing.assert_close(back, truth[:9], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(lq, lp, rtol=1e-4, atol=1e-3)
    # the log q returned with the draws is log_prob at them
    torch.testing.assert_close(q.log_prob(x.reshape(-1, 2), reco[:7].repeat(20, 1)),
                               logq.reshape(-1), rtol=1e-4, atol=1e-3)  # fmt: skip
    # the file's tensors are on the CPU and load on the CPU
    tensors = q.tensors()
    assert all(t.device.type == "cpu" for t in tensors.values())
    again = ConditionalDensity.from_saved(q.state(), tensors)
    assert next(again.flow.parameters()).device.type == "cpu"
    torch.testing.assert_close(again.log_prob(truth[:9], reco[:9]), lp, rtol=1e-5, atol=1e-5)


def test_a_seed_gives_the_same_initial_flow_on_any_device() -> None:
    """Weights are drawn on the CPU and moved: the device does not change the start."""
    for device in available_devices():
        a = ConditionalDensity(("m_ll", "y_ll"), seed=3, device=device, **SMALL)
        b = ConditionalDensity(("m_ll", "y_ll"), seed=3, **SMALL)
        for (name, pa), (_, pb) in zip(a.flow.state_dict().items(), b.flow.state_dict().items(),
                                       strict=True):  # fmt: skip
            torch.testing.assert_close(pa.cpu(), pb, msg=name)


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("method", ["cinn", "spinup"])
def test_unfolding_trains_unfolds_and_reloads_on_each_device(device, method, tmp_path) -> None:
    pairs = _pairs()
    measured = _pairs(800, seed=1)
    measured = measured.reco[measured.passed]
    with meta_default_on_cpu(device):
        model = train(pairs, method, ensemble=2, steps=30, batch_size=256, efficiency_epochs=2,
                      device=device, **SMALL)  # fmt: skip
        spinup = {"iterations": 1, "steps": 10, "batch_size": 256, **SMALL}
        out = unfold(model, measured, pairs.observables, samples=8, ensemble=1, seed=2,
                     spinup=spinup)  # fmt: skip
    assert model.device.type == resolve_device(device).type
    assert all(p.device.type == "cpu" for p in model.efficiency.parameters())
    assert out.points[0].shape == (8, len(measured), 2) and out.points[0].device.type == "cpu"
    assert all(bool(torch.isfinite(w).all()) for w in out.weights)
    assert out.total() > len(measured)  # the efficiency correction adds the missed events
    path = tmp_path / f"{method}.safetensors"
    model.save(path)
    again = UnfoldingModel.load(path)  # any device's file loads on the CPU
    assert again.device.type == "cpu"
    x = pairs.truth[:5]
    torch.testing.assert_close(again.posteriors[0].log_prob(x, pairs.reco[:5]),
                               model.posteriors[0].log_prob(x, pairs.reco[:5]),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


class _Gaussian:
    """x ~ N(theta, 1): a process with an analytic density, for the MEM."""

    parameters = ("theta",)

    def log_density(self, x: Tensor, theta: Sequence[float]) -> Tensor:
        return -0.5 * (x[:, 0] - theta[0]) ** 2 - 0.5 * math.log(2 * math.pi)

    def sigma_fid(self, thetas, efficiency) -> Tensor:  # noqa: ANN001 (protocol)
        return torch.ones(len(thetas), dtype=torch.float64, device="cpu")


@pytest.mark.parametrize("device", available_devices())
def test_learned_mem_on_each_device_gives_the_cpu_integrals(device) -> None:
    """The MEM's uniforms are drawn on the CPU: the device changes no point, only rounding."""
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(3000, 1, generator=g, dtype=torch.float64)
    reco = truth + 0.3 * torch.randn(3000, 1, generator=g, dtype=torch.float64)
    sizes = {"steps": 40, "batch_size": 256, "seed": 0, "names_x": ("x",), "transforms": 2,
             "bins": 6, "hidden": (16, 16)}  # fmt: skip
    thetas = torch.tensor([[-0.2], [0.0], [0.3]], dtype=torch.float64)
    with meta_default_on_cpu(device):
        learned = FlowTransfer.train(truth, reco, device=device, **sizes)
        ints = mem.event_integrals(_Gaussian(), learned, reco[:6], thetas, points=64, seed=3)
    assert learned.transfer.device.type == resolve_device(device).type
    assert ints.value.shape == (3, 6) and bool(torch.isfinite(ints.value).all())
    if device != "cpu":  # the same training on the CPU: the same integrals up to rounding
        cpu = FlowTransfer.train(truth, reco, **sizes)
        ref = mem.event_integrals(_Gaussian(), cpu, reco[:6], thetas, points=64, seed=3)
        torch.testing.assert_close(ints.value, ref.value, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("command", [["unfold", "train", "pairs.h5"],
                                     ["unfold", "apply", "model.safetensors", "pairs.h5"],
                                     ["mem", "fit", "--data", "pairs.h5"]])  # fmt: skip
def test_cli_device_errors_exit_2_before_any_work(command, monkeypatch, capsys, tmp_path) -> None:
    import sys

    from hepflows import cli

    monkeypatch.chdir(tmp_path)  # no input file exists: the device check comes first
    for bad in ("nonsense", *(() if torch.cuda.is_available() else ("cuda",))):
        monkeypatch.setattr(sys, "argv", ["hepflows", *command, "--device", bad])
        with pytest.raises(SystemExit) as info:
            cli.run()
        err = capsys.readouterr().err
        assert info.value.code == 2 and "device" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
