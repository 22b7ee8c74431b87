"""Devices: which one a model runs on, checked once, with a clear error.

CPU is the default everywhere. ``"cuda"`` (or ``"cuda:1"``) and ``"mps"`` run
training, integration, generation and calorimeter sampling on an accelerator:
the model, its data and its random generators live there, and results come
back to the CPU only to be written.

A run is reproducible on one device type: a CUDA generator draws other
numbers than a CPU generator with the same seed, so the same seed gives
another (equally valid) event set on CUDA than on the CPU.
"""

from __future__ import annotations

import hashlib
import os

import torch
from torch import Tensor

from hepflows.errors import ConfigError

DEVICES = ("cpu", "cuda", "mps")


def mps_available() -> bool:
    """Whether Apple's Metal backend is present and usable."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """The device types this torch build can use here, CPU first."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if mps_available():
        found.append("mps")
    return found


def resolve_device(device: str | torch.device | None = None, float64: bool = False) -> torch.device:
    """A checked :class:`torch.device` from a name (``None`` -> CPU).

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, a torch device or None.
        float64: the caller computes in float64 (integration weights): refused on
            MPS, which has no float64.

    Under ``torchrun``, plain ``"cuda"`` means this rank's own GPU, ``cuda:LOCAL_RANK``
    (modulo the GPUs present).

    Raises:
        ConfigError: an unknown name, a device this machine does not have, or
            float64 work on MPS; the message names the fix.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}: use one of {DEVICES} "
                          "(or cuda:N)") from None  # fmt: skip
    if dev.type not in DEVICES:
        raise ConfigError(f"unknown device {device!r}: use one of {DEVICES} (or cuda:N)")
    if dev.type == "cuda":
        if dev.index is None and "LOCAL_RANK" in os.environ and torch.cuda.is_available():
            dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} asked for, but this torch ({torch.__version__}) sees no "
                "CUDA GPU: install a CUDA build of torch on a machine with a GPU, or use "
                "--device cpu"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {device!r} asked for, but only {count} CUDA "
                              f"device(s) are present (cuda:0..cuda:{count - 1})")  # fmt: skip
    if dev.type == "mps":
        if not mps_available():
            raise ConfigError(f"device {device!r} asked for, but the MPS backend is not "
                              "available here (Apple silicon with a torch built for it): "
                              "use --device cpu")  # fmt: skip
        if float64:
            raise ConfigError("MPS has no float64, which integration weights need: use "
                              "--device cpu or cuda for integration and generation")  # fmt: skip
    return dev


def generator_on(device: torch.device, seed: int) -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


def stream_key(state: Tensor) -> int:
    """A 62-bit seed derived from a generator's saved state (a CPU byte tensor).

    Used to continue a stream saved on one device type on another, where the
    state itself does not fit.
    """
    digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
    return int.from_bytes(digest[:8], "little") >> 2
