"""Lambda_c^+ -> p K^- pi^+ with the LHCb amplitude model (2208.03262), differentiable.

The model comes from the ComPWA package ``polarimetry-lc2pkpi`` (optional:
``pip install -c constraints.txt "hepflows[amplitudes]"``, it pulls sympy and
JAX). Its symbolic amplitude is built with the published default parameters,
summed over helicities (unpolarised |M|^2 as a function of the three
invariants), turned into a JAX function and wrapped for torch autograd
(:mod:`hepflows.physics.decays.jax_bridge`).

Building the sympy expression takes about 25 s; it is cached on first use in
``$XDG_CACHE_HOME/hepflows`` (default ``~/.cache/hepflows``), one file per model
and package version, written atomically, never shipped with hepflows. The
JAX compilation (a few seconds per batch-size bucket) happens in each process.

Daughters here: 1 = p, 2 = K^-, 3 = pi^+, so s12 = m^2(pK) (the Lambda*
resonances, e.g. the narrow Lambda(1520)), s23 = m^2(K pi) (K*(892)), s13 =
m^2(p pi) (Delta++(1232)); the Dalitz variables of the LHCb analysis.
"""

from __future__ import annotations

import os
import pickle
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from torch import Tensor

from hepflows.errors import ConfigError, MissingExtraError
from hepflows.io.atomic import atomic_write
from hepflows.physics.decays.dalitz import DalitzPlot
from hepflows.physics.decays.decay import ThreeBodyDecay
from hepflows.physics.decays.jax_bridge import JaxFunction

PACKAGE = "polarimetry-lc2pkpi"
DEFAULT_MODEL = "Default amplitude model"
INSTALL = 'pip install -c constraints.txt "hepflows[amplitudes]"'


def cache_dir() -> Path:
    """Folder of hepflows' built amplitude expressions: $XDG_CACHE_HOME/hepflows."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "hepflows"


def _package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise MissingExtraError(
            f"the Lambda_c -> p K pi model needs the optional package {PACKAGE}: {INSTALL}"
        ) from None


def build_expression(
    model: str = DEFAULT_MODEL, progress: bool = True
) -> tuple[Any, dict[str, float]]:
    """The model's unpolarised |M|^2 as a sympy expression of sigma1, sigma2, sigma3, and masses.

    Cached in :func:`cache_dir` (built on first use, about 25 s).

    Args:
        model: a published model name of ``polarimetry-lc2pkpi``.
        progress: say so when building.

    Returns:
        ``(expression, masses)``: sympy expression with free symbols sigma1..3 (the
        package's numbering: 1 = p, 2 = pi^+, 3 = K^-; sigma_i = m^2 of the pair
        without i) and ``{"m0": M, "m1": m_p, "m2": m_pi, "m3": m_K}`` in GeV.
    """
    version = _package_version()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-").lower()
    path = cache_dir() / f"lc2pkpi-{slug}-{version}.pkl"
    if path.exists():
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except Exception:  # a damaged cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    import polarimetry
    from polarimetry.lhcb import _load_model_definitions

    names = list(_load_model_definitions(Path(polarimetry.__file__).parent
                                         / "lhcb/model-definitions.yaml"))  # fmt: skip
    if model not in names:
        raise ConfigError(f"unknown Lambda_c model {model!r}; published models: {names}")
    if progress:
        from hepflows.console import console

        console.print(f"building the Lambda_c -> p K pi amplitude ({model}); cached in {path}")
    m = polarimetry.published_model(model)
    expr = m.full_expression.xreplace(m.variables).xreplace(m.parameter_defaults).doit()
    masses = {str(k): float(v) for k, v in m.masses.items()}
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            pickle.dump((expr, masses), fh)

    atomic_write(path, write)
    return expr, masses


def lc2pkpi(model: str = DEFAULT_MODEL, progress: bool = True) -> ThreeBodyDecay:
    """Lambda_c^+ -> p K^- pi^+ (unpolarised LHCb model) as a density on the unit square.

    Args:
        model: a published model name of ``polarimetry-lc2pkpi``.
        progress: say when the expression is being built.

    Returns:
        A :class:`ThreeBodyDecay` with daughters (p, K^-, pi^+): s12 = m^2(pK) uniform in u0.
    """
    import jax.numpy as jnp
    import sympy as sp

    expr, masses = build_expression(model, progress)
    syms = sorted(expr.free_symbols, key=str)
    if [str(s) for s in syms] != ["sigma1", "sigma2", "sigma3"]:
        raise ConfigError(f"unexpected free symbols {syms} in the {model!r} expression")
    raw = sp.lambdify(syms, expr, modules="jax", cse=True)

    def fn(sigma1, sigma2, sigma3):
        return jnp.real(raw(sigma1, sigma2, sigma3))

    dalitz = DalitzPlot(masses["m0"], masses["m1"], masses["m3"], masses["m2"],
                        names=("p", "K-", "pi+"))  # fmt: skip
    # A point inside the Dalitz region to pad JAX batches with (sigma1, sigma2, sigma3).
    import torch

    c = dalitz.map(torch.full((1, 2), 0.5, dtype=torch.float64))
    s12, s23 = float(c[0][0]), float(c[1][0])
    s13 = dalitz.s_sum - s12 - s23
    jf = JaxFunction(fn, pad=(s23, s12, s13))

    def intensity(s12: Tensor, s23: Tensor, s13: Tensor) -> Tensor:
        # ours (p, K, pi) -> the package's sigma1 = m^2(K pi), sigma2 = m^2(p K), sigma3 = m^2(p pi)
        return jf(s23, s12, s13)

    ids = (4122, 2212, -321, 211)
    return ThreeBodyDecay(dalitz, intensity, "Lambda_c+ -> p K- pi+", pdg_ids=ids)
