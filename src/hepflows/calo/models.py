"""The shower generators by name, and loading a saved one whatever its kind.

* ``"caloflow"``: :class:`~hepflows.calo.caloflow.CaloFlow` (one flow over all voxels;
  CaloGAN, dataset 1);
* ``"l2l"``: :class:`~hepflows.calo.l2lflow.L2LFlow` (layer by layer; datasets 2 and 3)
  with MAF layer flows, whose IAF student is the iCaloFlow-style fast sampler;
* ``"conv-l2l"``: L2LFlow with convolutional coupling layer flows (one pass both ways);
* ``"icaloflow"``: ``"l2l"`` trained for its student: the same model, and
  ``hepflows calo train --model icaloflow`` refuses to train it without one.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from hepflows.calo.caloflow import CaloFlow
from hepflows.calo.l2lflow import L2LFlow
from hepflows.errors import ConfigError
from hepflows.io.atomic import read_metadata

#: Shower models by name: the class and the keyword arguments that make it that model.
MODELS: dict[str, tuple[type[CaloFlow], dict[str, Any]]] = {
    "caloflow": (CaloFlow, {}),
    "l2l": (L2LFlow, {"layer_flow": "maf"}),
    "conv-l2l": (L2LFlow, {"layer_flow": "conv"}),
    "icaloflow": (L2LFlow, {"layer_flow": "maf"}),
}
#: Models that exist for their IAF student (trained with ``student=True`` only).
NEEDS_STUDENT = ("icaloflow",)


def model_class(name: str) -> type[CaloFlow]:
    """The class of the model called ``name`` (:data:`MODELS`).

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    if name not in MODELS:
        raise ConfigError(f"unknown shower model {name!r}: choose from {sorted(MODELS)}")
    return MODELS[name][0]


def build_model(name: str, geometry: Any, **kwargs: Any) -> CaloFlow:
    """A fresh model called ``name`` (:data:`MODELS`) for ``geometry``; ``kwargs`` go to
    its constructor (``flow1``, ``flow2``, ``student``, ``moments``, ``seed``).

    Raises:
        ConfigError: an unknown name or bad settings.
    """
    cls = model_class(name)
    return cls(geometry, **MODELS[name][1], **kwargs)


def load_model(
    path: str | os.PathLike, device: str | torch.device | None = None
) -> tuple[CaloFlow, dict[str, Any]]:
    """Load a saved shower model of any kind (CaloFlow or L2LFlow), by its file header.

    Returns:
        ``(model, extra)`` as :meth:`CaloFlow.load`.

    Raises:
        CheckpointError: missing or unreadable file, or not a saved shower model.
    """
    formats = {cls.format: cls for cls, _ in MODELS.values()}
    meta = read_metadata(path, tuple(formats), "shower model", "train it again with "
                         "hepflows calo train")  # fmt: skip
    return formats[meta["format"]].load(path, device=device)
