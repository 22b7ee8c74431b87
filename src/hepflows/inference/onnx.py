"""ONNX export of a portable likelihood: log q(x | c) for runtimes without Python or torch.

The graph computes exactly what :meth:`Likelihood.log_prob` computes — the
observables' bijections and standardisation, the flow's rational-quadratic
splines and the Jacobians — in float64 in and out (the flow in float32, as in
torch). It is traced with torch's TorchScript exporter; what does and does not
go through (measured with torch 2.13, onnx 1.23, onnxruntime 1.32):

* **exports**: coupling flows (k >= 2 observables) and MAFs (k = 1), every
  observable map (log, log1p, atanh, identity); a dynamic number of events.
* **does not**: the ``torch.export`` (dynamo) exporter, which stops at the
  input checks (``bool(tensor)`` on data: "GuardOnDataDependentSymNode");
  the input checks themselves, which are Python and stay out of the graph. The
  ONNX model therefore does **not** refuse out-of-range inputs: the declared
  ranges travel in its ``metadata_props`` (``hepflows.observables`` ...) and the
  caller must apply them. Sampling is not exported (only the density).

Needs the ``onnx`` extra (``pip install -c constraints.txt "hepflows[onnx]"``);
``onnxruntime`` checks the exported graph against torch.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hepflows.errors import InputError
from hepflows.extras import require
from hepflows.inference.likelihood import Likelihood, load_likelihood
from hepflows.io import atomic

#: The ONNX operator set the graph is written with.
OPSET = 17


class _LogProb(torch.nn.Module):
    """log q(x | c) of a likelihood's density as a module (for tracing)."""

    def __init__(self, likelihood: Likelihood) -> None:
        super().__init__()
        self.density = likelihood.density
        self.flow = likelihood.density.flow

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.density.log_prob(x, c)


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote and how well the graph reproduces torch.

    Attributes:
        path: the ``.onnx`` file.
        opset: its operator set.
        checked_events: events the graph was compared on (0: not checked).
        max_abs_diff: largest |log q_onnx - log q_torch| over them (nats).
    """

    path: Path
    opset: int
    checked_events: int
    max_abs_diff: float


def export_onnx(
    likelihood: Likelihood | str | os.PathLike,
    path: str | os.PathLike,
    check_events: int = 1000,
    seed: int = 0,
) -> OnnxExport:
    """Write a likelihood's log q(x | c) as an ONNX graph (atomic) and check it.

    Args:
        likelihood: a loaded :class:`Likelihood` or the path of a likelihood file.
        path: the ``.onnx`` file to write. Inputs ``x`` (n, k) and ``c`` (n, p),
            float64; output ``log_prob`` (n,), float64.
        check_events: events on which the graph is compared with torch through
            onnxruntime (conditions spread around the training mean by half its
            width, x drawn from the flow); 0 skips the check.
        seed: seeds the check's draws.

    Returns:
        An :class:`OnnxExport` with the largest difference found.
    """
    onnx = require("onnx", "onnx", "ONNX export")
    lik = likelihood if isinstance(likelihood, Likelihood) else load_likelihood(likelihood)
    path = atomic.check_writable(path, (".onnx",), "ONNX file")
    density = lik.density
    p = len(density.context_names)
    c0 = density.c_scaler.inverse(torch.zeros(1, p, dtype=torch.float64))
    x0 = density.sample(c0, 2, generator=torch.Generator().manual_seed(seed))[:, 0]
    module = _LogProb(lik).eval()
    tmp_model = Path(str(path) + ".trace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: the Python input checks are constants
        torch.onnx.export(module, (x0, c0.repeat(2, 1)), str(tmp_model), dynamo=False,
                          input_names=["x", "c"], output_names=["log_prob"], opset_version=OPSET,
                          dynamic_axes={"x": {0: "events"}, "c": {0: "events"},
                                        "log_prob": {0: "events"}})  # fmt: skip
    try:
        model = onnx.load(str(tmp_model))
    finally:
        tmp_model.unlink(missing_ok=True)
    meta = {
        "hepflows.observables": json.dumps(lik.metadata["observables"]),
        "hepflows.conditions": json.dumps(lik.metadata["conditions"]),
        "hepflows.levels": json.dumps(list(lik.levels)),
        "hepflows.note": "inputs are NOT range-checked in this graph: apply the declared ranges",
    }
    for key in ("hepflows_version", "training_data_sha256", "description"):
        meta[f"hepflows.{key}"] = str(lik.metadata.get(key, ""))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    atomic.atomic_write(path, lambda tmp: onnx.save(model, tmp))
    diff, n = 0.0, 0
    if check_events > 0:
        ort = require("onnxruntime", "onnx", "Checking the ONNX export")
        g = torch.Generator().manual_seed(seed + 1)
        spread = 0.5 * torch.randn(check_events, p, generator=g, dtype=torch.float64)
        c = density.c_scaler.inverse(spread)
        x = density.sample(c, 1, generator=g)[0]
        keep = _inside(lik, x, c)
        x, c = x[keep], c[keep]
        n = len(x)
        if n == 0:
            raise InputError("no check event fell inside the declared ranges: check the file")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": x.numpy(), "c": c.numpy()})[0]
        want = lik.log_prob(x, c)
        diff = float((torch.as_tensor(got) - want).abs().max())
    return OnnxExport(path, OPSET, n, diff)


def _inside(lik: Likelihood, x: Tensor, c: Tensor) -> Tensor:
    """(n,) mask of events whose x and c lie inside the declared ranges."""
    keep = torch.ones(len(x), dtype=torch.bool)
    for values, variables in ((x, lik.observables), (c, lik.conditions)):
        for j, v in enumerate(variables):
            keep &= (values[:, j] >= v.low) & (values[:, j] <= v.high)
    return keep
