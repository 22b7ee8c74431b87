"""CaloFlow on a device: ``train(..., device=)``, ``sample(..., device=)``, ``--device``.

Runs on every device this machine has (:func:`hepflows.device.available_devices`;
CUDA tests are skipped without a GPU). The device-hygiene test runs on any
machine: training and sampling on the CPU while torch's default device is
"meta", so that a tensor made without an explicit device (which would land on
the CPU while the model is on a GPU) breaks the run. Tiny flows (one block, 8
hidden units) on 400 toy showers, one epoch per stage.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hepflows import ConfigError
from hepflows.calo import CaloFlow, Showers, ToySimulator, TrainingPlan, train
from hepflows.cli import app
from hepflows.device import available_devices, generator_on, resolve_device

TINY = {"transforms": 1, "bins": 4, "hidden": [8]}
DEVICES = available_devices()
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@cache
def showers() -> Showers:
    return ToySimulator("calogan", seed=11).simulate(400)


def model(student: bool = True) -> CaloFlow:
    return CaloFlow("calogan", flow1=TINY, flow2=TINY, student=student, moments=2, seed=0)


def plan() -> TrainingPlan:
    return TrainingPlan(epochs={"flow1": 1, "teacher": 1, "student": 1}, batch_size=100)


def trained(device: str | None, checkpoint=None) -> CaloFlow:
    m = model()
    train(m, showers(), plan(), checkpoint=checkpoint, progress=False, device=device)
    return m


def energies() -> np.ndarray:
    return np.linspace(2e4, 4e4, 37)


def cpu_state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in m.state_dict().items()}


# ------------------------------------------------------------------ every device
@pytest.mark.parametrize("device", DEVICES)
def test_train_and_sample_on_each_device(device, tmp_path) -> None:
    ckpt = tmp_path / "m.ckpt"
    m = trained(device, ckpt)
    dev = resolve_device(device)
    assert m.device.type == dev.type
    assert all(p.device.type == dev.type for p in m.parameters())
    for which in ("teacher", "student"):
        s = m.sample(energies(), model=which, batch_size=16, generator=generator_on(dev, 1))
        assert isinstance(s.voxels, np.ndarray) and s.voxels.dtype == np.float64
        assert s.voxels.shape == (37, m.n_voxels) and np.isfinite(s.voxels).all()
        assert (s.voxels >= 0).all() and np.array_equal(s.energy, energies().astype(np.float32))
    # the checkpoint and the saved model hold CPU tensors: they load on the CPU
    loaded, extra = CaloFlow.load(ckpt)
    assert extra["stage"] == "done" and loaded.device.type == "cpu"
    state = cpu_state(m)
    assert all(torch.equal(v, state[k]) for k, v in cpu_state(loaded).items())
    m.save(tmp_path / "m.safetensors")
    again, _ = CaloFlow.load(tmp_path / "m.safetensors", device=device)
    assert again.device.type == dev.type
    a = again.sample(energies(), "student", generator=generator_on(dev, 3))
    b = m.sample(energies(), "student", generator=generator_on(dev, 3))
    assert np.array_equal(a.voxels, b.voxels)


def test_cpu_is_the_default_and_gives_the_same_bits() -> None:
    """device="cpu" is the run without a device: same weights, same showers."""
    default, cpu = trained(None), trained("cpu")
    state = cpu_state(default)
    assert all(torch.equal(v, state[k]) for k, v in cpu_state(cpu).items())
    for which in ("teacher", "student"):
        a = default.sample(energies(), which, generator=torch.Generator().manual_seed(5))
        b = cpu.sample(energies(), which, generator=generator_on(torch.device("cpu"), 5),
                       device="cpu")  # fmt: skip
        assert np.array_equal(a.voxels, b.voxels)


@needs_cuda
def test_cuda_training_follows_the_model_and_returns_cpu_showers() -> None:
    m = model().to("cuda")
    train(m, showers(), plan(), progress=False)  # device=None: where the model is
    assert m.device.type == "cuda"
    s = m.sample(energies(), "student", generator=generator_on(torch.device("cuda"), 0))
    assert np.isfinite(s.voxels).all()
    with pytest.raises(ConfigError, match="generator is on cpu but the model samples on cuda"):
        m.sample(energies(), "student", generator=torch.Generator().manual_seed(0))
    cpu = m.sample(energies(), "student", generator=torch.Generator().manual_seed(0),
                   device="cpu")  # fmt: skip
    assert m.device.type == "cpu" and np.isfinite(cpu.voxels).all()


# ------------------------------------------------------------------ device hygiene
@pytest.fixture
def meta_default():
    """torch's default device is "meta" inside the test (the CPU again afterwards)."""
    before = torch.get_default_device()
    assert before.type == "cpu"
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)
    assert torch.get_default_device().type == "cpu"


def test_every_runtime_tensor_is_placed_explicitly(meta_default, tmp_path) -> None:
    """With "meta" as the default device, a tensor made without device= is a meta tensor,
    and meeting a CPU tensor or being read (.item()) fails: so training (with a
    checkpoint) and sampling with device="cpu" pass only if every allocation names its
    device, which is what makes them run on a GPU."""
    torch.set_default_device(None)
    m, data = model(), showers()  # built on the CPU; only the run is under "meta"
    torch.set_default_device("meta")
    history = train(m, data, plan(), checkpoint=tmp_path / "m.ckpt", progress=False,
                    device="cpu")  # fmt: skip
    assert set(history) == {"flow1", "teacher", "student"}
    assert all(np.isfinite(h["val"]).all() for h in history.values())
    assert all(t.device.type == "cpu" for t in [*m.parameters(), *m.buffers()])
    cpu = torch.device("cpu")
    for which in ("teacher", "student"):
        s = m.sample(energies(), which, batch_size=16, generator=generator_on(cpu, 2),
                     device="cpu")  # fmt: skip
        assert np.isfinite(s.voxels).all() and s.voxels.shape == (37, m.n_voxels)
    m.save(tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").stat().st_size > 0


# ------------------------------------------------------------------ errors and ranks
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_config_error_naming_the_fix() -> None:
    with pytest.raises(ConfigError, match="--device cpu"):
        resolve_device("cuda")
    m = model()
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train(m, showers(), plan(), progress=False, device="cuda")
    assert not bool(m.fitted) and m.device.type == "cpu"  # refused before any work


@pytest.mark.parametrize("name", ["nonsense", "tpu", "gpu"])
def test_unknown_devices_are_config_errors(name) -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(name)
    m = model()
    with pytest.raises(ConfigError, match="unknown device"):
        train(m, showers(), plan(), progress=False, device=name)
    assert not bool(m.fitted)
    with pytest.raises(ConfigError, match="unknown device"):
        CaloFlow.load("never-read.safetensors", device=name)


def test_cuda_under_torchrun_is_the_local_rank_gpu(monkeypatch) -> None:
    """Plain "cuda" is cuda:LOCAL_RANK under torchrun (CUDA faked: 2 GPUs):
    the resolution train() and ``calo train --device`` use."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("cuda") == torch.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda:1")
    assert resolve_device("cuda:0") == torch.device("cuda:0")  # an explicit index stays
    assert resolve_device("cpu") == torch.device("cpu")  # gloo on the CPU, as before


# ------------------------------------------------------------------ the command line
@pytest.mark.parametrize("command", ["train", "generate"])
def test_cli_device_option_has_a_default_and_bad_names_exit_2(
    command, tmp_path, monkeypatch, capsys
) -> None:
    import sys

    from hepflows.cli import run

    help_ = CliRunner().invoke(app, ["calo", command, "--help"],
                               env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})  # fmt: skip
    assert help_.exit_code == 0
    text = " ".join(help_.output.split())
    assert "--device" in text and "cpu (the default)" in text
    bad = [("nonsense", "unknown device 'nonsense'")]
    if not torch.cuda.is_available():
        bad.append(("cuda", "--device cpu"))
    for name, message in bad:
        # the device is checked before the (missing) input is read
        argv = ["calo", command, str(tmp_path / "missing.h5"), "--out",
                str(tmp_path / ("m.safetensors" if command == "train" else "g.h5")),
                "--device", name]  # fmt: skip
        monkeypatch.setattr(sys, "argv", ["hepflows", *argv])
        with pytest.raises(SystemExit) as info:
            run()
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert info.value.code == 2 and len(lines) == 1, err
        assert lines[0].startswith("error:") and message in lines[0]
        assert "Traceback" not in err and list(tmp_path.iterdir()) == []
