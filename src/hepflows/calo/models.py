"""The shower generators by name, and loading a saved one whatever its kind.

* ``"caloflow"``: :class:`~hepflows.calo.caloflow.CaloFlow` (one flow over all voxels;
  CaloGAN, dataset 1);
* ``"l2l"``: :class:`~hepflows.calo.l2lflow.L2LFlow` (layer by layer; datasets 2 and 3),
  whose IAF student is the iCaloFlow-style fast sampler.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from hepflows.calo.caloflow import CaloFlow
from hepflows.calo.l2lflow import L2LFlow
from hepflows.errors import ConfigError
from hepflows.io.atomic import read_metadata

#: Model classes by name.
MODELS: dict[str, type[CaloFlow]] = {"caloflow": CaloFlow, "l2l": L2LFlow}


def model_class(name: str) -> type[CaloFlow]:
    """The model class called ``name`` (:data:`MODELS`).

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    if name not in MODELS:
        raise ConfigError(f"unknown shower model {name!r}: choose from {sorted(MODELS)}")
    return MODELS[name]


def load_model(
    path: str | os.PathLike, device: str | torch.device | None = None
) -> tuple[CaloFlow, dict[str, Any]]:
    """Load a saved shower model of any kind (CaloFlow or L2LFlow), by its file header.

    Returns:
        ``(model, extra)`` as :meth:`CaloFlow.load`.

    Raises:
        CheckpointError: missing or unreadable file, or not a saved shower model.
    """
    formats = {cls.format: cls for cls in MODELS.values()}
    meta = read_metadata(path, tuple(formats), "shower model", "train it again with "
                         "hepflows calo train")  # fmt: skip
    return formats[meta["format"]].load(path, device=device)
