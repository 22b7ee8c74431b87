"""Integration and generation on a device: ``NeuralIntegrator(device=)``, ``generate_*(device=)``.

Runs on every device this machine has (:func:`hepflows.device.available_devices`;
CUDA tests are skipped without a GPU). The device-hygiene tests run on any
machine: training, estimates, unweighting and sharded generation on the CPU
while torch's default device is "meta", so that any tensor the code makes
without an explicit device (which would land on the CPU while the flow is on a
GPU) breaks the run.
"""

from __future__ import annotations

import sys

import pytest
import torch
from typer.testing import CliRunner

from helpers import meta_default
from hepflows import ConfigError, cli
from hepflows.device import available_devices, resolve_device, stream_key
from hepflows.generate import generate_events, generate_sharded
from hepflows.integrate import NeuralIntegrator, camel
from hepflows.integrate.integrands import resonances
from hepflows.physics import DrellYan

DEVICES = [d for d in available_devices() if d != "mps"]  # MPS has no float64
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


# ----------------------------------------------------------------- resolve_device
def test_resolve_device_names_and_errors() -> None:
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("nonsense:x")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cpu"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="float64|MPS"):
        resolve_device("mps", float64=True)


def test_stream_key_is_deterministic_and_state_dependent() -> None:
    a = torch.Generator().manual_seed(1).get_state()
    b = torch.Generator().manual_seed(2).get_state()
    assert stream_key(a) == stream_key(a.clone()) and stream_key(a) != stream_key(b)
    assert 0 <= stream_key(a) < 2**62


def test_missing_gpu_is_refused_before_any_work(monkeypatch, capsys, tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="CUDA"):
        NeuralIntegrator(camel(2), 2, seed=0, device="cuda")
    out = tmp_path / "never.lhe"
    for args in (["integrate", "camel", "--dims", "2", "--device", "cuda"],
                 ["generate", "drell-yan", "--events", "10", "--out", str(out), "--device",
                  "cuda"],
                 ["generate", "decay", "lambda-c", "--device", "nonsense"]):  # fmt: skip
        monkeypatch.setattr(sys, "argv", ["hepflows", *args])
        with pytest.raises(SystemExit) as info:
            cli.run()
        err = capsys.readouterr().err
        assert info.value.code == 2, (args, err)
        assert "device" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_device_option_is_listed_with_its_default() -> None:
    for args in (["integrate", "--help"], ["generate", "drell-yan", "--help"],
                 ["generate", "decay", "--help"]):  # fmt: skip
        res = CliRunner().invoke(cli.app, args, env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "--device" in res.output and "cpu" in res.output


# ------------------------------------------------------------------ device hygiene
@pytest.mark.parametrize("trainer", ["variance", "fab", "pathwise-kl"])
def test_integrator_places_every_tensor(trainer, tmp_path) -> None:
    """Train, estimate, unweight, save and resume with every runtime tensor placed."""
    f = camel(2)
    calls = 12_000 if trainer == "fab" else 20_000
    kwargs = {} if trainer == "variance" else {"vegas": False}
    if trainer == "fab":
        kwargs["batch_size"] = 128
    integ = NeuralIntegrator(f, 2, seed=1, trainer=trainer, device="cpu", **kwargs)
    with meta_default():
        integ.train(calls=calls, progress=False)
        result = integ.integrate(calls=5000)
        events = integ.generate(200, progress=False)
    assert abs(result.value - f.exact) < 5 * result.error + 0.02
    assert events.x.device.type == "cpu" and len(events.x) == 200
    integ.save(tmp_path / "i.safetensors")  # the optimiser's own step counters are torch's
    again = NeuralIntegrator.load(tmp_path / "i.safetensors", f, device="cpu")
    with meta_default():
        again.integrate(calls=2000)
        again.train(calls=2 * calls, progress=False)


@pytest.mark.parametrize("weights", ["mixture", "learned"])
def test_multichannel_integrator_places_every_tensor(weights) -> None:
    f = resonances(2)
    integ = NeuralIntegrator(f, 2, seed=2, channels=f.channels, weights=weights, device="cpu")
    with meta_default():
        integ.train(calls=20_000, progress=False)
        result = integ.integrate(calls=8000)
    assert len(result.channels) == len(f.channels)


def test_drell_yan_generation_places_every_tensor(tmp_path) -> None:
    """PDF interpolation, channels, folding, blocks, particle records and HDF5 shards."""
    dy = DrellYan()
    opts = dict(train_calls=10_000, calls=10_000, progress=False, channel_weights="learned",
                transforms=2)  # fmt: skip
    with meta_default():
        run = generate_events(dy, 100, out=tmp_path / "dy.h5", device="cpu", **opts)
        sharded = generate_sharded(dy, 150, tmp_path / "shards", events_per_block=50,
                                   merge_to=tmp_path / "all.h5", device="cpu",
                                   integrator=tmp_path / "dy.safetensors", **opts)  # fmt: skip
    assert len(run.events.x) == 100 and sharded.merged.events == 150


# ---------------------------------------------------------------- on each device
@pytest.mark.parametrize("device", DEVICES)
def test_integrator_on_each_device(device, tmp_path) -> None:
    f = camel(2)
    integ = NeuralIntegrator(f, 2, seed=3, device=device)
    dev = resolve_device(device)
    assert all(p.device.type == dev.type for p in integ.parameters())
    integ.train(calls=20_000, progress=False)
    result = integ.integrate(calls=20_000)
    assert abs(result.value - f.exact) < 5 * result.error
    events = integ.generate(500, progress=False)
    assert events.x.device.type == "cpu" and events.weights.device.type == "cpu"
    integ.save(tmp_path / "i.safetensors")
    on_cpu = NeuralIntegrator.load(tmp_path / "i.safetensors", f)  # any device loads on the CPU
    assert on_cpu.device.type == "cpu"
    state = {k: v.cpu() for k, v in integ.flow.state_dict().items()}
    assert all(torch.equal(v, state[k]) for k, v in on_cpu.flow.state_dict().items())


def test_cpu_device_is_the_default_bit_for_bit() -> None:
    f = camel(2)
    a = NeuralIntegrator(f, 2, seed=4)
    b = NeuralIntegrator(f, 2, seed=4, device="cpu")
    for integ in (a, b):
        integ.train(calls=10_000, progress=False)
    ra, rb = a.integrate(calls=4000), b.integrate(calls=4000)
    assert (ra.value, ra.error) == (rb.value, rb.error)


@needs_cuda
def test_cuda_generation_matches_cpu_statistically(tmp_path) -> None:
    """Another stream on CUDA, the same physics: sigma agrees within the errors."""
    dy = DrellYan()
    opts = dict(train_calls=50_000, calls=50_000, progress=False)
    cpu = generate_events(dy, 1000, device="cpu", **opts).result
    gpu = generate_events(dy, 1000, device="cuda", **opts).result
    assert abs(cpu.value - gpu.value) < 5 * (cpu.error**2 + gpu.error**2) ** 0.5


def test_fit_trains_where_the_flow_is() -> None:
    """``fit`` moves each batch to the flow's device; under a meta default nothing is unplaced."""
    from hepflows.flows import CouplingFlow
    from hepflows.flows.training import fit

    data = torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
    flow = CouplingFlow(features=2, transforms=2, bins=4, hidden=(8,))
    with meta_default():
        losses = fit(flow, data, steps=5, batch_size=64, validation=(data[:64], None),
                     validate_every=5)  # fmt: skip
    assert len(losses) == 5 and all(torch.isfinite(torch.tensor(losses)))
