"""Save and load flows: weights and configuration in one safetensors file.

Loading never executes pickled code: safetensors stores raw tensors and a
string metadata header, from which the flow is rebuilt by its registered class.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import load_file, save_file

import hepflows
from hepflows.errors import CheckpointError, HepflowsError
from hepflows.flows.flows import REGISTRY, ConfiguredFlow
from hepflows.io import atomic

FORMAT = "hepflows-flow"
FORMAT_VERSION = "1"


def save(flow: ConfiguredFlow, path: str | os.PathLike) -> None:
    """Save a flow's weights and configuration to ``path`` (safetensors, atomic).

    Args:
        flow: a :class:`CouplingFlow`, :class:`MAF` or :class:`IAF`.
        path: destination file (conventionally ``*.safetensors``).
    """
    if not isinstance(flow, ConfiguredFlow):
        raise CheckpointError(
            f"only flows built from a configuration (CouplingFlow, MAF, IAF) can be saved with "
            f"their configuration; for a {type(flow).__name__} save flow.state_dict() instead"
        )
    tensors = {k: v.detach().contiguous().cpu() for k, v in flow.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(flow).__name__,
        "config": json.dumps(flow.config),
        "hepflows_version": hepflows.__version__,
    }
    atomic.atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata header of a saved flow, without reading the weights."""
    return atomic.read_metadata(path, FORMAT, "flow", "save it again with hepflows.flows.save")


def load(
    path: str | os.PathLike,
    expected: type[ConfiguredFlow] | None = None,
    map_location: str | torch.device = "cpu",
) -> ConfiguredFlow:
    """Rebuild a flow saved with :func:`save`.

    Args:
        path: the file.
        expected: if given, the class the file must hold (a file of another
            architecture raises :class:`~hepflows.CheckpointError`).
        map_location: device to load onto.

    Returns:
        The flow, in evaluation mode, with the saved dtype.
    """
    meta = read_metadata(path)
    name = meta.get("class", "?")
    cls = REGISTRY.get(name)
    if cls is None:
        raise CheckpointError(f"{path} holds an unknown flow class {name!r}")
    try:
        config = json.loads(meta["config"])
        if not isinstance(config, dict):
            raise ValueError("configuration is not a JSON object")
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: stored flow configuration unreadable ({err})") from None
    if expected is not None and expected is not ConfiguredFlow and cls is not expected:
        raise CheckpointError(
            f"{path} holds a {name}({_short(config)}), not a {expected.__name__}: load it with "
            f"{name}.load(...) or hepflows.flows.load(...)"
        )
    try:
        flow = cls(**config)
    except (TypeError, HepflowsError) as err:
        raise CheckpointError(
            f"{path}: cannot rebuild a {name} from the stored configuration ({err}); the file may "
            "come from another hepflows version"
        ) from None
    state = load_file(str(path), device=str(map_location))
    dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(dtypes) == 1:
        flow.to(dtypes.pop())
    try:
        flow.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: weights do not fit a {name}({_short(config)}): {str(err).splitlines()[0]}"
        ) from None
    return flow.to(map_location).eval()


def _short(config: dict) -> str:
    keys = ("features", "context", "transforms", "bins", "hidden", "domain")
    return ", ".join(f"{k}={config[k]}" for k in keys if k in config)
