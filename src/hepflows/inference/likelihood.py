"""Portable likelihood files: a trained conditional flow density q(x | c) in one file.

Araz et al., arXiv:2502.09494 ("Communicating likelihoods with normalising
flows", the nabu package): a flow fitted to samples of a likelihood is
shipped as a file that anyone can evaluate. Here the file is one safetensors
file (raw tensors, never pickles) whose JSON header holds everything else:

* the observables x and the conditions c (parameters theta, or the same
  observables at another level, e.g. T(reco | truth)), with units and the
  declared ranges (by default those of the training data): the file refuses
  inputs outside them instead of extrapolating silently;
* the flow's configuration and the coordinate maps (scalers);
* the SHA-256 of the training data, the hepflows version, the creation time
  and the validation results (:mod:`hepflows.inference.validation`).

:func:`load_likelihood` rebuilds the density with torch alone (numpy arrays
are accepted and returned): no training code, no unpickling.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

import hepflows
from hepflows.errors import CheckpointError, ConfigError, InputError
from hepflows.inference.conditional import ConditionalDensity
from hepflows.io import atomic

FORMAT = "hepflows-likelihood"
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class Variable:
    """One input of a likelihood: its name, unit and declared range [low, high]."""

    name: str
    unit: str
    low: float
    high: float


def data_hash(*arrays: Tensor) -> str:
    """SHA-256 (hex) of the arrays' float64 bytes and shapes: identifies the training data."""
    h = hashlib.sha256()
    for a in arrays:
        t = torch.as_tensor(a).detach().to(torch.float64).contiguous().cpu()
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _variables(
    names: tuple[str, ...],
    units: Mapping[str, str],
    ranges: Mapping[str, tuple[float, float]] | None,
    data: Tensor | None,
    side: str,
) -> list[Variable]:
    """Variables of one side: ranges given, or those of the training data."""
    out = []
    for j, name in enumerate(names):
        if ranges is not None and name in ranges:
            low, high = (float(v) for v in ranges[name])
        elif data is not None:
            low, high = float(data[:, j].min()), float(data[:, j].max())
        else:
            raise ConfigError(
                f"no range for the {side} {name!r}: pass {side}_ranges={{{name!r}: (low, high)}} "
                "or the training data (training=(x, c))"
            )
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError(f"the {side} {name!r} needs a finite range low < high, got "
                              f"({low}, {high})")  # fmt: skip
        out.append(Variable(name, str(units.get(name, "")), low, high))
    return out


def export_likelihood(
    density: ConditionalDensity,
    path: str | os.PathLike,
    *,
    units: Mapping[str, str] | None = None,
    x_ranges: Mapping[str, tuple[float, float]] | None = None,
    c_ranges: Mapping[str, tuple[float, float]] | None = None,
    training: tuple[Tensor, Tensor] | None = None,
    levels: tuple[str, str] = ("x", "c"),
    validation: Mapping[str, Any] | None = None,
    description: str = "",
) -> Path:
    """Write a trained conditional density q(x | c) as a portable likelihood file (atomic).

    Args:
        density: the trained :class:`ConditionalDensity`.
        path: the file (``*.safetensors``).
        units: unit per observable or condition name (e.g. ``{"m_ll": "GeV"}``).
        x_ranges, c_ranges: declared ranges per name; default: the training data's.
        training: the (n, k) x and (n, p) c the density was trained on: their
            hash goes into the file, and their ranges are the defaults.
        levels: what x and c are (e.g. ``("reco", "truth")`` for a transfer
            function, ``("x", "theta")`` for a likelihood in parameters);
            ``hepflows likelihood validate`` reads pair files by them.
        validation: results of :func:`hepflows.inference.validation.validate`
            (``report.to_dict()``) to ship with the file.
        description: free text.

    Returns:
        The path written.
    """
    if not isinstance(density, ConditionalDensity):
        raise ConfigError(f"can export a ConditionalDensity, got {type(density).__name__}")
    path = atomic.check_writable(path, (".safetensors",), "likelihood file")
    units = dict(units or {})
    x_data = c_data = None
    if training is not None:
        x_data, c_data = (torch.as_tensor(t) for t in training)
        density._check_pair(x_data, c_data)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hepflows_version": hepflows.__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "description": description,
        "levels": json.dumps(list(levels)),
        "observables": json.dumps(
            [asdict(v) for v in _variables(density.names, units, x_ranges, x_data, "x")]
        ),  # fmt: skip
        "conditions": json.dumps(
            [asdict(v) for v in _variables(density.context_names, units, c_ranges, c_data, "c")]
        ),  # fmt: skip
        "model": json.dumps(density.state()),
        "training_data_sha256": "" if training is None else data_hash(x_data, c_data),
        "training_events": "" if training is None else str(len(x_data)),
        "validation": json.dumps(dict(validation or {})),
    }
    tensors = {k: v.cpu() for k, v in density.tensors().items()}
    atomic.atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return path


class Likelihood:
    """A loaded likelihood file: log q(x | c) with its inputs checked.

    Attributes:
        observables, conditions: the declared :class:`Variable` s of x and c.
        levels: what x and c are (e.g. ``("reco", "truth")``).
        metadata: the file's header (hash, version, creation time...).
        validation: the validation results shipped with the file (may be empty).
    """

    def __init__(self, density: ConditionalDensity, metadata: dict[str, Any]) -> None:
        self.density = density
        self.metadata = metadata
        self.observables = [Variable(**v) for v in metadata["observables"]]
        self.conditions = [Variable(**v) for v in metadata["conditions"]]
        self.levels = tuple(metadata["levels"])
        self.validation: dict[str, Any] = metadata.get("validation", {})

    def _check(self, values: Any, variables: list[Variable], side: str) -> Tensor:
        """(n, d) values of ``variables`` as float64, or a clear error."""
        t = torch.as_tensor(np.asarray(values) if not isinstance(values, Tensor) else values)
        d = len(variables)
        names = [v.name for v in variables]
        if t.ndim == 1 and d > 1 and t.shape[0] == d:
            t = t[None]
        if t.ndim == 1 and d == 1:
            t = t[:, None]
        if t.ndim != 2 or t.shape[1] != d:
            raise InputError(
                f"this likelihood takes {side} as (n, {d}) values of {names}, got shape "
                f"{tuple(t.shape)}: pass the {d} {side} columns in that order"
            )
        t = t.to(torch.float64)
        if not bool(torch.isfinite(t).all()):
            raise InputError(f"{side} contain NaN or infinite values")
        for j, v in enumerate(variables):
            out = (t[:, j] < v.low) | (t[:, j] > v.high)
            if bool(out.any()):
                unit = f" {v.unit}" if v.unit else ""
                raise InputError(
                    f"{int(out.sum())} values of {v.name} lie outside the declared range "
                    f"[{v.low:g}, {v.high:g}]{unit} (e.g. {float(t[out, j][0]):g}): the "
                    "likelihood was not trained there; select events inside the range"
                )
        return t

    def _pair(self, x: Any, c: Any) -> tuple[Tensor, Tensor]:
        xt = self._check(x, self.observables, "observables")
        ct = self._check(c, self.conditions, "conditions")
        if len(ct) == 1 and len(xt) > 1:
            ct = ct.expand(len(xt), -1)
        if len(ct) != len(xt):
            raise InputError(f"{len(xt)} events but {len(ct)} conditions: give one condition "
                             "row per event, or one for all")  # fmt: skip
        return xt, ct

    def log_prob(self, x: Any, c: Any) -> Any:
        """log q(x | c) in the declared units: (n, k) x and (n, p) or (p,) c -> (n,).

        numpy in, numpy out; torch in, torch out (float64).
        """
        xt, ct = self._pair(x, c)
        out = self.density.log_prob(xt, ct)
        return out if isinstance(x, Tensor) else out.numpy()

    def latent(self, x: Any, c: Any) -> Tensor:
        """Base-space points z (n, k) of events x given c (standard normal if the flow is right)."""
        return self.density.latent(*self._pair(x, c))

    def summary(self) -> str:
        """A few lines a person reads: inputs, ranges, provenance, validation."""

        def line(v: Variable) -> str:
            unit = f" [{v.unit}]" if v.unit else ""
            return f"  {v.name}{unit}: {v.low:g} .. {v.high:g}"

        x_level, c_level = self.levels
        version, created = self.metadata["hepflows_version"], self.metadata["created"]
        lines = [f"likelihood q({x_level} | {c_level}), hepflows {version}, created {created}"]
        lines += [f"observables ({x_level}):"] + [line(v) for v in self.observables]
        lines += [f"conditions ({c_level}):"] + [line(v) for v in self.conditions]
        sha = self.metadata.get("training_data_sha256") or "not recorded"
        lines.append(f"training data: {self.metadata.get('training_events') or '?'} events, "
                     f"sha256 {sha[:16]}")  # fmt: skip
        if self.validation:
            v = self.validation
            lines.append(f"validation: r2 KS p = {v.get('r2_ks_pvalue', float('nan')):.3g}, "
                         f"passed = {v.get('passed')}")  # fmt: skip
        return "\n".join(lines)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The decoded header of a likelihood file (no tensors read)."""
    fix = "export it again with hepflows.inference.export_likelihood"
    raw = atomic.read_metadata(path, FORMAT, "likelihood", fix)
    if raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: likelihood format version {raw.get('format_version')!r}, "
                              f"this hepflows reads {FORMAT_VERSION!r}")  # fmt: skip
    meta: dict[str, Any] = dict(raw)
    try:
        for key in ("levels", "observables", "conditions", "model", "validation"):
            meta[key] = json.loads(raw[key])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: likelihood header unreadable ({err})") from None
    return meta


def load_likelihood(path: str | os.PathLike) -> Likelihood:
    """Load a file written by :func:`export_likelihood` (never unpickles).

    Raises:
        CheckpointError: missing, truncated or foreign files, or weights that
            do not fit the stored configuration.
    """
    meta = read_header(path)
    try:
        tensors = load_file(str(path))
        density = ConditionalDensity.from_saved(meta["model"], tensors)
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: cannot rebuild the density from the file ({str(err).splitlines()[0]}); "
            "it may come from another hepflows version"
        ) from None
    names = [v["name"] for v in meta["observables"]]
    if tuple(names) != density.names:
        raise CheckpointError(f"{path}: header observables {names} differ from the model's "
                              f"{list(density.names)}")  # fmt: skip
    return Likelihood(density, meta)
